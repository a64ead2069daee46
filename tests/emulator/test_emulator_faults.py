"""Rate limits and fault injection, observable and reproducible."""

from __future__ import annotations

import httpx
import pytest

from falcon_mc import APITimeoutError, AsyncMessageCenter
from falcon_mc.emulator import Emulator
from falcon_mc.emulator._app import ROUTES
from falcon_mc.emulator._faults import OPERATIONS
from falcon_mc.models import parse_retry_after

from .helpers import BASE, FakeClock

QUERY = "/message-center/queries/cases/v1"
GET = "/message-center/entities/cases/GET/v1"
COMMENT = "/message-center/entities/case-activity/v1"
COMMENT_BODY = {"case_id": "c2", "body": "hi", "type": "comment", "user_uuid": "u"}


async def test_rate_limit_window(
    http: httpx.AsyncClient, emu: Emulator, clock: FakeClock, wall: FakeClock
) -> None:
    emu.settings.rate_limit_per_minute = 3
    remaining = []
    for _ in range(3):
        reply = await http.get(QUERY)
        assert reply.status_code == 200
        assert reply.headers["X-RateLimit-Limit"] == "3"
        remaining.append(reply.headers["X-RateLimit-Remaining"])
        clock.advance(10)
    assert remaining == ["2", "1", "0"]
    limited = await http.get(QUERY)
    assert limited.status_code == 429
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    # the first request was at t=1000, now is 1030: a slot frees 30 s from now
    assert int(limited.headers["X-RateLimit-RetryAfter"]) == int((wall.now + 30) * 1000)
    assert limited.json()["errors"][0]["code"] == 429
    assert emu.stats.rate_limited == 1
    clock.advance(30)
    assert (await http.get(QUERY)).status_code == 200


async def test_unlimited_still_sends_headers(http: httpx.AsyncClient) -> None:
    for expected in ("5999", "5998"):
        reply = await http.get(QUERY)
        assert reply.headers["X-RateLimit-Limit"] == "6000"
        assert reply.headers["X-RateLimit-Remaining"] == expected


async def test_status_fault(http: httpx.AsyncClient, emu: Emulator) -> None:
    rule = emu.faults.add(operation="GetCaseEntitiesByIDs", kind="status", status=503, count=1)
    failed = await http.post(GET, json={"ids": ["c1"]})
    assert failed.status_code == 503
    assert failed.json()["errors"][0]["code"] == 503
    assert failed.headers["X-CS-TRACEID"]
    assert (await http.get(QUERY)).status_code == 200  # other operations unaffected
    assert (await http.post(GET, json={"ids": ["c1"]})).status_code == 200  # count used up
    assert rule.fired == 1
    assert emu.stats.faults["status"] == 1
    assert emu.stats.requests["GetCaseEntitiesByIDs"] == 2


async def test_status_fault_does_not_process(http: httpx.AsyncClient, emu: Emulator) -> None:
    emu.faults.add(operation="CaseAddActivity", kind="status", status=500)
    assert (await http.post(COMMENT, json=COMMENT_BODY)).status_code == 500
    assert emu.activity_ids("c2") == []


async def test_drop_before_has_no_effect(http: httpx.AsyncClient, emu: Emulator) -> None:
    emu.faults.add(operation="CaseAddActivity", kind="drop_before", count=1)
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        await http.post(COMMENT, json=COMMENT_BODY)
    assert emu.activity_ids("c2") == []
    assert (await http.post(COMMENT, json=COMMENT_BODY)).status_code == 200
    assert len(emu.activity_ids("c2")) == 1


async def test_drop_after_changes_state(http: httpx.AsyncClient, emu: Emulator) -> None:
    emu.faults.add(operation="CaseAddActivity", kind="drop_after")
    with pytest.raises(httpx.RemoteProtocolError):
        await http.post(COMMENT, json=COMMENT_BODY)
    assert len(emu.activity_ids("c2")) == 1
    assert emu.stats.faults["drop_after"] == 1


async def test_truncate(http: httpx.AsyncClient, emu: Emulator) -> None:
    att = emu.add_attachment("c1", "notes.txt", b"x" * 1000)
    emu.faults.add(operation="CaseDownloadAttachment", kind="truncate", fraction=0.25)
    async with http.stream(
        "GET", "/message-center/entities/case-attachment/v1", params={"id": att}
    ) as reply:
        assert reply.headers["Content-Length"] == "1000"
        received = bytearray()

        async def read() -> None:
            async for chunk in reply.aiter_raw():
                received.extend(chunk)

        with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
            await read()
    assert len(received) == 250


async def test_truncate_json(http: httpx.AsyncClient, emu: Emulator) -> None:
    emu.faults.add(operation="QueryCasesIdsByFilter", kind="truncate")
    with pytest.raises(httpx.RemoteProtocolError):
        await http.get(QUERY)


async def test_slow_body(http: httpx.AsyncClient, emu: Emulator) -> None:
    emu.faults.add(operation="QueryCasesIdsByFilter", kind="slow_body", delay=0, chunk_size=7)
    async with http.stream("GET", QUERY) as reply:
        chunks = [chunk async for chunk in reply.aiter_raw()]
    assert all(len(c) == 7 for c in chunks[:-1])
    assert len(chunks) > 3
    body = b"".join(chunks)
    assert b'"total":6' in body


async def test_rate_limit_storm(http: httpx.AsyncClient, emu: Emulator, wall: FakeClock) -> None:
    emu.faults.add(kind="rate_limit", retry_after=2.5, count=3)
    statuses = [(await http.get(QUERY)).status_code for _ in range(4)]
    assert statuses == [429, 429, 429, 200]
    limited = await http.post(GET, json={"ids": ["c1"]})
    assert limited.status_code == 200
    emu.faults.add(kind="rate_limit", retry_after=2.5)
    reply = await http.get(QUERY)
    assert reply.headers["X-RateLimit-RetryAfter"] == str(int((wall.now + 2.5) * 1000))
    assert reply.headers["X-RateLimit-Remaining"] == "0"
    assert emu.stats.rate_limited == 4


async def test_latency_fault_counts(http: httpx.AsyncClient, emu: Emulator) -> None:
    emu.faults.add(kind="latency", delay=0.001)
    assert (await http.get(QUERY)).status_code == 200
    assert emu.stats.faults["latency"] == 1


async def test_star_leaves_token_endpoint_alone(anon: httpx.AsyncClient, emu: Emulator) -> None:
    emu.faults.add(kind="status", status=500)
    token = await anon.post("/oauth2/token", data={"client_id": "a", "client_secret": "b"})
    assert token.status_code == 201
    emu.faults.add(operation="oauth2AccessToken", kind="status", status=502)
    token = await anon.post("/oauth2/token", data={"client_id": "a", "client_secret": "b"})
    assert token.status_code == 502
    emu.faults.clear()
    token = await anon.post("/oauth2/token", data={"client_id": "a", "client_secret": "b"})
    assert token.status_code == 201


async def pattern(seed: int) -> list[int]:
    emu = Emulator(seed=seed)
    emu.faults.add(kind="status", status=503, rate=0.5)
    headers = {"Authorization": f"Bearer {emu.issue_token()}"}
    async with httpx.AsyncClient(
        transport=emu.transport(), base_url=BASE, headers=headers
    ) as client:
        return [(await client.get(QUERY)).status_code for _ in range(32)]


async def test_faults_are_reproducible() -> None:
    first, again, other = await pattern(5), await pattern(5), await pattern(6)
    assert first == again
    assert first != other
    assert 503 in first
    assert 200 in first


async def test_faults_reseed(http: httpx.AsyncClient, emu: Emulator) -> None:
    emu.faults.add(kind="status", rate=0.5)
    emu.faults.seed(11)
    one = [(await http.get(QUERY)).status_code for _ in range(16)]
    emu.faults.seed(11)
    two = [(await http.get(QUERY)).status_code for _ in range(16)]
    assert one == two


def test_bad_rules_rejected(emu: Emulator) -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        emu.faults.add(operation="GetCases")
    with pytest.raises(ValueError, match="kind"):
        emu.faults.add(kind="explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rate"):
        emu.faults.add(rate=2)
    assert len(emu.faults) == 0


async def test_settings_latency(http: httpx.AsyncClient, emu: Emulator) -> None:
    emu.settings.latency = 0.001
    assert (await http.get(QUERY)).status_code == 200


def test_fault_operations_match_routes() -> None:
    assert {op for methods in ROUTES.values() for op in methods.values()} == OPERATIONS


async def test_oauth2_alias(anon: httpx.AsyncClient, emu: Emulator) -> None:
    emu.faults.add(operation="oauth2", kind="status", status=500, count=1)
    token = await anon.post("/oauth2/token", data={"client_id": "a", "client_secret": "b"})
    assert token.status_code == 500


# -- a fault counts only when it is injected -------------------------------------------------------

async def test_status_fault_not_used_up_by_a_401(
    anon: httpx.AsyncClient, http: httpx.AsyncClient, emu: Emulator
) -> None:
    rule = emu.faults.add(operation="QueryCasesIdsByFilter", kind="status", status=503, count=1)
    assert (await anon.get(QUERY)).status_code == 401
    assert (rule.fired, emu.stats.faults["status"]) == (0, 0)
    assert (await http.get(QUERY)).status_code == 503
    assert (await http.get(QUERY)).status_code == 200
    assert (rule.fired, emu.stats.faults["status"]) == (1, 1)


async def test_status_fault_not_used_up_by_a_429(http: httpx.AsyncClient, emu: Emulator) -> None:
    emu.settings.rate_limit_per_minute = 1
    assert (await http.get(QUERY)).status_code == 200
    rule = emu.faults.add(operation="QueryCasesIdsByFilter", kind="status", status=503, count=1)
    assert (await http.get(QUERY)).status_code == 429
    assert rule.fired == 0
    emu.settings.rate_limit_per_minute = None
    assert [(await http.get(QUERY)).status_code for _ in range(2)] == [503, 200]


async def test_pre_empted_faults_wait_for_the_next_request(
    http: httpx.AsyncClient, emu: Emulator
) -> None:
    emu.faults.add(operation="QueryCasesIdsByFilter", kind="drop_before", count=1)
    emu.faults.add(operation="QueryCasesIdsByFilter", kind="rate_limit", count=1)
    emu.faults.add(operation="QueryCasesIdsByFilter", kind="status", status=502, count=1)
    emu.faults.add(operation="QueryCasesIdsByFilter", kind="drop_after", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        await http.get(QUERY)
    assert [(await http.get(QUERY)).status_code for _ in range(2)] == [429, 502]
    with pytest.raises(httpx.RemoteProtocolError):
        await http.get(QUERY)
    assert (await http.get(QUERY)).status_code == 200
    assert emu.stats.faults == {"drop_before": 1, "rate_limit": 1, "status": 1, "drop_after": 1}


# -- the in-process transport honours the read timeout ---------------------------------------------

async def test_latency_beyond_the_read_timeout_times_out(emu: Emulator) -> None:
    emu.faults.add(operation="CaseAddActivity", kind="latency", delay=3.0)
    headers = {"Authorization": f"Bearer {emu.issue_token()}"}
    async with httpx.AsyncClient(
        transport=emu.transport(), base_url=BASE, headers=headers, timeout=0.05
    ) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(COMMENT, json=COMMENT_BODY)
    assert len(emu.activity_ids("c2")) == 1  # as on a server: the work was done, the reply late


async def test_slow_body_beyond_the_read_timeout_times_out(emu: Emulator) -> None:
    att = emu.add_attachment("c1", "notes.txt", b"x" * 1000)
    emu.faults.add(operation="CaseDownloadAttachment", kind="slow_body", chunk_size=600, delay=3.0)
    headers = {"Authorization": f"Bearer {emu.issue_token()}"}
    async with httpx.AsyncClient(
        transport=emu.transport(), base_url=BASE, headers=headers, timeout=0.05
    ) as client, client.stream(
        "GET", "/message-center/entities/case-attachment/v1", params={"id": att}
    ) as reply:
        assert reply.status_code == 200
        received = bytearray()

        async def read() -> None:
            async for chunk in reply.aiter_raw():  # the first piece comes at once
                received.extend(chunk)

        with pytest.raises(httpx.ReadTimeout):
            await read()
    assert len(received) == 600


async def test_client_timeout_in_process(emu: Emulator) -> None:
    emu.faults.add(operation="QueryCasesIdsByFilter", kind="latency", delay=3.0)
    async with AsyncMessageCenter(
        client_id="a", client_secret="b", transport=emu.transport(), timeout=0.05, max_retries=0
    ) as mc:
        with pytest.raises(APITimeoutError):
            await mc.query_cases()


# -- Date, by the same clock as X-RateLimit-RetryAfter -----------------------------------------------

async def test_every_reply_has_a_date_by_the_wall_clock(
    anon: httpx.AsyncClient, http: httpx.AsyncClient, wall: FakeClock
) -> None:
    replies = [
        await anon.get(QUERY),
        await anon.post("/oauth2/token", data={"client_id": "a", "client_secret": "b"}),
        await http.get(QUERY),
        await http.get("/message-center/nope/v1"),
    ]
    wall.advance(61)
    replies.append(await http.post(GET, json={"ids": ["c1"]}))
    dates = [reply.headers["Date"] for reply in replies]
    assert dates == ["Sat, 01 Jun 2024 00:00:00 GMT"] * 4 + ["Sat, 01 Jun 2024 00:01:01 GMT"]


async def test_retry_after_reads_right_whatever_the_wall_clock(
    http: httpx.AsyncClient, emu: Emulator
) -> None:
    emu.faults.add(kind="rate_limit", retry_after=2.0)
    limited = await http.get(QUERY)
    assert limited.status_code == 429
    # the wall clock is in 2024, the client's clock is not: the client measures by Date
    assert parse_retry_after(limited.headers) == 2.0


async def test_rate_limit_lowered_below_the_window(
    http: httpx.AsyncClient, emu: Emulator, clock: FakeClock, wall: FakeClock
) -> None:
    for _ in range(10):  # at t = 1000, 1001, ... 1009
        assert (await http.get(QUERY)).status_code == 200
        clock.advance(1)
    emu.settings.rate_limit_per_minute = 5
    limited = await http.get(QUERY)
    assert limited.status_code == 429
    # five of the ten must age out: the sixth, at t=1005, does at 1065, 55 s from now (1010)
    assert int(limited.headers["X-RateLimit-RetryAfter"]) == int((wall.now + 55) * 1000)
