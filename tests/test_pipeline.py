"""The request pipeline: tokens, retries, rate limits, errors, pagination."""

from __future__ import annotations

import copy
import gzip
import json
import logging
import pickle
import random
import time
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import respx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

import falcon_mc
from falcon_mc import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AsyncMessageCenter,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    OAuthError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from falcon_mc._auth import TokenManager
from falcon_mc._pipeline import _decoded
from falcon_mc._retry import RetryPolicy

from .conftest import BASE, SECRET, TOKEN, envelope, paged

GET_CASES = "/message-center/entities/cases/GET/v1"
QUERY = "/message-center/queries/cases/v1"
CREATE = "/message-center/entities/case/v2"


def client(router: respx.MockRouter, **kwargs: object) -> AsyncMessageCenter:
    return AsyncMessageCenter(
        client_id="cid-123", client_secret=SECRET, retry_base_delay=0,
        transport=httpx.MockTransport(router.async_handler), **kwargs,  # type: ignore[arg-type]
    )


async def test_token_form_fields_and_member_cid(router: respx.MockRouter) -> None:
    router.post(GET_CASES).respond(200, json=envelope([{"id": "c"}]))
    async with client(router, member_cid="child-cid") as mc:
        await mc.get_cases(["c"])
    form = dict(httpx.QueryParams(router.routes["token"].calls.last.request.content.decode()))
    assert form == {"client_id": "cid-123", "client_secret": SECRET, "member_cid": "child-cid"}
    revoke = router.routes["revoke"].calls.last.request
    assert dict(httpx.QueryParams(revoke.content.decode())) == {"token": TOKEN}
    assert revoke.headers["Authorization"].startswith("Basic ")


async def test_credentials_from_environment(
    router: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FALCON_CLIENT_ID", "env-id")
    monkeypatch.setenv("FALCON_CLIENT_SECRET", "env-secret")
    router.post(GET_CASES).respond(200, json=envelope([]))
    async with AsyncMessageCenter(transport=httpx.MockTransport(router.async_handler)) as mc:
        await mc.get_cases("c")
    form = dict(httpx.QueryParams(router.routes["token"].calls[0].request.content.decode()))
    assert form["client_id"] == "env-id" and form["client_secret"] == "env-secret"


async def test_one_token_for_fifty_concurrent_calls(router: respx.MockRouter) -> None:
    route = router.post(GET_CASES).respond(200, json=envelope([{"id": "c"}]))
    async with client(router, max_concurrency=50) as mc, anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(mc.get_cases, ["c"])
    assert router.routes["token"].call_count == 1
    assert route.call_count == 50


async def test_401_refreshes_token_and_replays_once(router: respx.MockRouter) -> None:
    route = router.post(GET_CASES).mock(side_effect=[
        httpx.Response(401, json=envelope(errors=[{"code": 401, "message": "access denied"}])),
        httpx.Response(200, json=envelope([{"id": "c"}])),
    ])
    async with client(router) as mc:
        result = await mc.get_cases("c")
    assert [c.id for c in result.resources] == ["c"]
    assert router.routes["token"].call_count == 2
    assert route.call_count == 2


async def test_second_401_raises_authentication_error(router: respx.MockRouter) -> None:
    router.post(GET_CASES).respond(401, json=envelope(errors=[{"code": 401, "message": "nope"}]))
    async with client(router) as mc:
        with pytest.raises(AuthenticationError) as info:
            await mc.get_cases("c")
    assert info.value.status_code == 401
    assert router.routes["token"].call_count == 2


async def test_wrong_credentials_raise_oauth_error_at_once(router: respx.MockRouter) -> None:
    router.routes["token"].respond(401, json=envelope(errors=[{"code": 401, "message": "bad"}]))
    async with client(router) as mc:
        with pytest.raises(OAuthError) as info:
            await mc.get_cases("c")
    assert info.value.status_code == 401
    assert router.routes["token"].call_count == 1
    assert SECRET not in str(info.value)


async def test_429_then_success_on_a_read(router: respx.MockRouter) -> None:
    now_ms = int(time.time() * 1000)
    route = router.post(GET_CASES).mock(side_effect=[
        httpx.Response(429, headers={"X-RateLimit-RetryAfter": str(now_ms),
                                     "X-RateLimit-Limit": "6000",
                                     "X-RateLimit-Remaining": "0"},
                       json=envelope(errors=[{"code": 429, "message": "rate limited"}])),
        httpx.Response(200, headers={"X-RateLimit-Limit": "6000", "X-RateLimit-Remaining": "5999"},
                       json=envelope([{"id": "c"}])),
    ])
    async with client(router) as mc:
        result = await mc.get_cases("c")
        assert mc.rate_limit is not None and mc.rate_limit.remaining == 5999
    assert route.call_count == 2 and result.resources[0].id == "c"


async def test_500_on_create_is_not_retried(router: respx.MockRouter) -> None:
    route = router.post(CREATE).respond(
        500, json=envelope(errors=[{"code": 500, "message": "boom"}]),
        headers={"X-CS-TRACEID": "trace-500"},
    )
    async with client(router) as mc:
        with pytest.raises(InternalServerError) as info:
            await mc.create_case_v2(content="b", title="t", type="fc:contact")
    assert route.call_count == 1
    assert info.value.may_have_been_applied is True
    assert info.value.trace_id == "trace-500"
    assert info.value.errors[0].message == "boom"


async def test_500_on_a_read_is_retried(router: respx.MockRouter) -> None:
    route = router.post(GET_CASES).mock(side_effect=[
        httpx.Response(503, json=envelope()),
        httpx.Response(200, json=envelope([{"id": "c"}])),
    ])
    async with client(router) as mc:
        await mc.get_cases("c")
    assert route.call_count == 2


async def test_write_reset_is_not_retried_but_connect_error_is(router: respx.MockRouter) -> None:
    route = router.post(CREATE).mock(side_effect=httpx.ReadError("reset"))
    async with client(router) as mc:
        with pytest.raises(APIConnectionError) as info:
            await mc.create_case_v2(content="b", title="t", type="fc:contact")
        assert info.value.may_have_been_applied is True
        assert route.call_count == 1
        route.mock(side_effect=[httpx.ConnectError("refused"),
                                httpx.Response(200, json=envelope([{"id": "c", "path": "p"}]))])
        created = await mc.create_case_v2(content="b", title="t", type="fc:contact")
    assert created.resources[0].id == "c"
    assert route.call_count == 3


async def test_read_gives_up_after_max_retries(router: respx.MockRouter) -> None:
    route = router.post(GET_CASES).respond(502, text="<html>Bad gateway</html>")
    async with client(router, max_retries=2) as mc:
        with pytest.raises(InternalServerError) as info:
            await mc.get_cases("c")
    assert route.call_count == 3
    assert info.value.status_code == 502


@pytest.mark.parametrize(
    ("status", "exc_type"),
    [
        (400, BadRequestError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, UnprocessableEntityError),
        (418, APIStatusError),
        (429, RateLimitError),
        (500, InternalServerError),
        (503, InternalServerError),
    ],
)
async def test_status_to_exception_map(
    router: respx.MockRouter, status: int, exc_type: type[APIStatusError]
) -> None:
    router.get(QUERY).respond(
        status,
        json=envelope(errors=[{"code": status, "message": f"status {status}"}], trace_id="meta-t"),
    )
    async with client(router, max_retries=0) as mc:
        with pytest.raises(exc_type) as info:
            await mc.query_cases()
    assert type(info.value) is exc_type
    assert info.value.status_code == status
    assert info.value.errors[0].message == f"status {status}"
    assert info.value.trace_id == "meta-t"


@pytest.mark.parametrize("make", [
    lambda: falcon_mc.InvalidArgumentError("limit", "must be between 1 and 500"),
    lambda: falcon_mc.OAuthError("refused", status_code=403, trace_id="t-1"),
    lambda: falcon_mc.APITimeoutError("read timed out", may_have_been_applied=False),
    lambda: falcon_mc.RateLimitError("slow down", status_code=429, retry_after=2.5, trace_id="t"),
    lambda: falcon_mc.NotFoundError("gone", status_code=404),
])
def test_exceptions_copy_and_pickle_with_their_attributes(make: Any) -> None:
    # keyword-only constructor arguments made copy.copy and pickle raise TypeError
    exc = make()
    for again in (copy.copy(exc), pickle.loads(pickle.dumps(exc))):  # noqa: S301 - our bytes
        assert type(again) is type(exc)
        assert (again.args, vars(again), str(again)) == (exc.args, vars(exc), str(exc))


async def test_pagination_walks_three_pages_and_stops_at_total(router: respx.MockRouter) -> None:
    ids = [f"c-{i}" for i in range(7)]
    route = router.get(QUERY).mock(side_effect=lambda request: paged(ids, request, total=7))
    async with client(router) as mc:
        got = [i async for i in mc.query_cases(limit=3)]
    assert got == ids
    assert route.call_count == 3
    offsets = sorted(int(c.request.url.params.get("offset", 0)) for c in route.calls)
    assert offsets == [0, 3, 6]


async def test_pagination_guards_against_a_server_that_does_not_advance(
    router: respx.MockRouter,
) -> None:
    route = router.get(QUERY).respond(200, json=envelope(["a", "b"], total=100, offset=0, limit=2))
    async with client(router) as mc:
        got = [i async for i in mc.query_cases(limit=2)]
    assert got == ["a", "b"]
    assert route.call_count <= 1 + 16


async def test_pagination_without_total_walks_by_offset_to_an_empty_page(
    router: respx.MockRouter,
) -> None:
    ids = [f"c-{i}" for i in range(5)]
    route = router.get(QUERY).mock(side_effect=lambda request: paged(ids, request, total=None))
    async with client(router) as mc:
        got = [i async for i in mc.query_cases(limit=2)]
    assert got == ids
    offsets = [int(c.request.url.params.get("offset", 0)) for c in route.calls]
    assert offsets == [0, 2, 4, 5]  # the empty page at 5 ends it


@pytest.mark.parametrize("reported", ["none", "next"])
async def test_pagination_does_not_depend_on_the_offset_the_reply_reports(
    router: respx.MockRouter, reported: str
) -> None:
    ids = [f"c-{i}" for i in range(7)]

    def query(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params.get("offset", 0))
        page = ids[offset:offset + 3]
        pagination = {"limit": 3, "total": 7}
        if reported == "next":  # the next page's offset, as some Falcon APIs report it
            pagination["offset"] = offset + len(page)
        meta = {"query_time": 0.01, "trace_id": "t", "pagination": pagination}
        return httpx.Response(200, json={"meta": meta, "resources": page})

    router.get(QUERY).mock(side_effect=query)
    async with client(router) as mc:
        assert [i async for i in mc.query_cases(limit=3)] == ids
        page = await mc.query_cases(limit=3, offset=3)
    assert (page.offset, page.next_offset) == (3, 6)


async def test_pagination_without_total_stops_when_the_server_ignores_the_offset(
    router: respx.MockRouter,
) -> None:
    def same_page(request: httpx.Request) -> httpx.Response:
        if route.call_count > 20:
            raise AssertionError("the walk does not stop")
        meta = {"query_time": 0.01, "trace_id": "t", "pagination": {"offset": 0, "limit": 2}}
        return httpx.Response(200, json={"meta": meta, "resources": ["a", "b"], "errors": []})

    route = router.get(QUERY).mock(side_effect=same_page)
    async with client(router) as mc:
        got = [i async for i in mc.query_cases(limit=2)]
    assert got == ["a", "b"]
    assert route.call_count == 2


async def test_pagination_does_not_repeat_ids_pushed_on_by_a_case_created_meanwhile(
    router: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    before = [f"c-{i}" for i in range(7)]
    after = ["new", *before]  # created at the top once the first page is out

    def query(request: httpx.Request) -> httpx.Response:
        first = not route.calls  # a call is recorded once its reply is made
        return paged(before if first else after, request, total=len(before if first else after))

    route = router.get(QUERY).mock(side_effect=query)
    caplog.set_level(logging.INFO, logger="falcon_mc")
    async with client(router) as mc:
        got = [i async for i in mc.query_cases(limit=3)]
    assert got == before  # c-2 ends page 1 and starts page 2: yielded once
    assert "total changed from 7 to 8" in caplog.text


async def test_pagination_goes_on_when_the_total_grew_during_the_walk(
    router: respx.MockRouter,
) -> None:
    before = [f"c-{i}" for i in range(7)]
    after = [*before, "c-7", "c-8", "c-9", "c-10"]  # created at the end meanwhile

    def query(request: httpx.Request) -> httpx.Response:
        first = not route.calls  # a call is recorded once its reply is made
        return paged(before if first else after, request, total=len(before if first else after))

    route = router.get(QUERY).mock(side_effect=query)
    async with client(router) as mc:
        got = [i async for i in mc.query_cases(limit=3)]
    assert got == after
    offsets = sorted(int(c.request.url.params.get("offset", 0)) for c in route.calls)
    assert offsets == [0, 3, 6, 6, 9]  # from the page whose total changed, the walk starts again


async def test_pagination_loses_no_id_when_a_wave_straddles_a_new_case(
    router: respx.MockRouter,
) -> None:
    # A case created at the top while a wave is in flight: the page at 6 is read after it
    # (everything shifted by one), the page at 9 before. c-8 moved from page 6 to page 9 and
    # was in neither page read.
    before = [f"c-{i}" for i in range(12)]
    after = ["new", *before]
    served_after = {6}

    def query(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params.get("offset", 0))
        if route.call_count >= 4:  # the first page and the wave are answered
            served_after.add(offset)
        ids = after if offset in served_after else before
        return paged(ids, request, total=len(ids))

    route = router.get(QUERY).mock(side_effect=query)
    async with client(router, max_concurrency=4) as mc:
        got = [i async for i in mc.query_cases(limit=3)]
    assert got == before  # each once, in order ("new" is above where the walk was)


@pytest.mark.parametrize(
    "body",
    [b"<html><body>502 Bad Gateway</body></html>", b'{"meta": {}, "resources": [',
     b'{"meta": {}, "resources": [{"id": "c", "title": ["not", "a", "string"]}]}', b""],
)
async def test_unexpected_reply_raises_validation_error(
    router: respx.MockRouter, body: bytes
) -> None:
    router.post(GET_CASES).respond(200, content=body, headers={"X-CS-TRACEID": "t-html"})
    async with client(router) as mc:
        with pytest.raises(APIResponseValidationError) as info:
            await mc.get_cases("c")
    assert info.value.status_code == 200 and info.value.trace_id == "t-html"


async def test_secrets_stay_out_of_repr_and_logs(
    router: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    router.post(GET_CASES).respond(200, json=envelope([{"id": "c"}]))
    async with client(router) as mc:
        await mc.get_cases("c")
        assert SECRET not in repr(mc) and TOKEN not in repr(mc)
        assert SECRET not in repr(mc._pipeline.auth)
        falcon_mc._log.logger.debug("header Authorization: Bearer %s", TOKEN)
    assert caplog.records
    assert SECRET not in caplog.text and TOKEN not in caplog.text


async def test_redirect_is_not_followed_with_the_token(router: respx.MockRouter) -> None:
    router.post(GET_CASES).respond(307, headers={"Location": "https://evil.example/steal"})
    evil = respx.MockRouter(assert_all_called=False)
    async with client(router) as mc:
        with pytest.raises(APIStatusError) as info:
            await mc.get_cases("c")
    assert info.value.status_code == 307
    assert not evil.calls


async def test_with_options_shares_the_token(router: respx.MockRouter) -> None:
    route = router.post(GET_CASES).respond(503, json=envelope())
    async with client(router, max_retries=3) as mc:
        quick = mc.with_options(max_retries=0, timeout=1.0)
        with pytest.raises(InternalServerError):
            await quick.get_cases("c")
        assert route.call_count == 1
    assert router.routes["token"].call_count == 1


async def test_bulk_get_batches_concurrently_and_keeps_order(router: respx.MockRouter) -> None:
    ids = [f"c-{i}" for i in range(1050)]
    missing = {"c-7", "c-1049"}

    def get(request: httpx.Request) -> httpx.Response:
        wanted = json.loads(request.content)["ids"]
        found = [{"id": i} for i in reversed(wanted) if i not in missing]
        errors = [{"code": 404, "message": "not found", "id": i} for i in wanted if i in missing]
        return httpx.Response(200, json=envelope(found, errors=errors))

    route = router.post(GET_CASES).mock(side_effect=get)
    async with client(router) as mc:
        result = await mc.get_cases(ids + ids[:10])
    assert route.call_count == 3
    assert sorted(len(json.loads(c.request.content)["ids"]) for c in route.calls) == [50, 500, 500]
    assert [c.id for c in result.resources] == [i for i in ids if i not in missing]
    assert sorted(e.id or "" for e in result.errors) == sorted(missing)


async def test_a_request_with_a_free_slot_is_sent_before_the_next_is_built(
    router: respx.MockRouter,
) -> None:
    """The requests of a burst reach the transport one by one, each as soon as it is built: when
    the k-th arrives, only k slots are taken (not all of them, as when every task first yields
    on taking its slot and the burst advances in lockstep)."""
    taken: list[int] = []
    all_in = anyio.Event()

    async def get(request: httpx.Request) -> httpx.Response:
        ids = json.loads(request.content)["ids"]
        if ids != ["warm-up"]:
            taken.append(int(mc._pipeline.limiter.borrowed_tokens))
            if len(taken) == 4:
                all_in.set()
            with anyio.fail_after(5):
                await all_in.wait()  # replies held until the first 4 requests are in
        return httpx.Response(200, json=envelope([{"id": i} for i in ids]))

    router.post(GET_CASES).mock(side_effect=get)
    async with client(router, max_concurrency=4, max_ids_per_request=1) as mc:
        await mc.get_cases(["warm-up"])  # the token, fetched once
        result = await mc.get_cases(["a", "b", "c", "d", "e", "f"])
    assert [c.id for c in result.resources] == ["a", "b", "c", "d", "e", "f"]
    assert taken[:4] == [1, 2, 3, 4]


def _refuse(request: httpx.Request, *, batch_with: str = "", offset: int = -1) -> bool:
    """Whether the scripted server refuses ``request`` (a get naming ``batch_with``, or the
    query page at ``offset``)."""
    if request.method == "POST":
        return batch_with in json.loads(request.content)["ids"]
    return int(request.url.params.get("offset", 0)) == offset


@pytest.mark.parametrize("way", ["get_cases", "async for", "iter_cases"])
async def test_a_failure_inside_concurrent_work_is_raised_as_itself(
    router: respx.MockRouter, way: str
) -> None:
    # A failed batch or page surfaced as an ExceptionGroup from anyio's task group, which
    # ``except BadRequestError`` (and ``except FalconError``) do not catch.
    ids = [f"c-{i:03d}" for i in range(300)]
    refused = httpx.Response(400, json=envelope(errors=[{"code": 400, "message": "no"}]))

    def query(request: httpx.Request) -> httpx.Response:
        return refused if _refuse(request, offset=200) else paged(ids, request, total=300)

    def get(request: httpx.Request) -> httpx.Response:
        if _refuse(request, batch_with="c-150"):
            return refused
        asked = json.loads(request.content)["ids"]
        return httpx.Response(200, json=envelope([{"id": i} for i in asked]))

    router.get(QUERY).mock(side_effect=query)
    router.post(GET_CASES).mock(side_effect=get)
    async with client(router, max_ids_per_request=50, max_concurrency=4) as mc:
        work: Callable[[], Awaitable[object]] = {
            "get_cases": lambda: mc.get_cases(ids),
            "async for": lambda: _drain(mc.query_cases(limit=100)),
            "iter_cases": lambda: _drain(mc.iter_cases(window=100)),
        }[way]
        with pytest.raises(BadRequestError) as info:
            await work()
    assert info.value.status_code == 400


async def _drain(items: AsyncIterable[object]) -> None:
    async for _ in items:
        pass


@pytest.mark.parametrize("shuffle", ["in_order", "one_batch_reversed", "one_item_repeated"])
async def test_bulk_get_merge_puts_every_item_in_the_place_asked(
    router: respx.MockRouter, shuffle: str
) -> None:
    """Replies that list their batch in order are concatenated; any other reply (reordered,
    repeating an item) is merged by id: either way each id appears once, in the order asked."""
    ids = [f"c-{i}" for i in range(1200)]

    def get(request: httpx.Request) -> httpx.Response:
        wanted = json.loads(request.content)["ids"]
        if wanted[0] == "c-500" and shuffle == "one_batch_reversed":
            wanted = wanted[::-1]
        if wanted[0] == "c-1000" and shuffle == "one_item_repeated":
            wanted = [*wanted, wanted[0]]
        return httpx.Response(200, json=envelope([{"id": i} for i in wanted]))

    router.post(GET_CASES).mock(side_effect=get)
    async with client(router) as mc:
        result = await mc.get_cases(ids)
    assert [c.id for c in result.resources] == ids
    assert result.errors == []


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("eu-1", "https://api.eu-1.crowdstrike.com"),
        (falcon_mc.Cloud.USGOV1, "https://api.laggar.gcw.crowdstrike.com"),
        ("US2", "https://api.us-2.crowdstrike.com"),  # FalconPy's short names
        ("usgov1", "https://api.laggar.gcw.crowdstrike.com"),
        (" EU-1 ", "https://api.eu-1.crowdstrike.com"),
    ],
)
async def test_base_url_from_cloud_and_region_name(base_url: str, expected: str) -> None:
    async with AsyncMessageCenter(client_id="a", client_secret="b", base_url=base_url) as mc:
        assert mc.base_url == expected


@pytest.mark.parametrize("region", ["us-2", "us2", "US2"])
async def test_cloud_autodiscovery_follows_x_cs_region(region: str) -> None:
    us1 = respx.MockRouter(assert_all_called=False)
    us1.post(f"{BASE}/oauth2/token").respond(
        201, json={"access_token": "t1", "expires_in": 1799}, headers={"X-Cs-Region": region}
    )
    us2_token = us1.post("https://api.us-2.crowdstrike.com/oauth2/token").respond(
        201, json={"access_token": "t2", "expires_in": 1799}, headers={"X-Cs-Region": "us-2"}
    )
    us2 = us1.post(f"https://api.us-2.crowdstrike.com{GET_CASES}").respond(
        200, json=envelope([{"id": "c"}])
    )
    us1.post("https://api.us-2.crowdstrike.com/oauth2/revoke").respond(200, json=envelope())
    async with AsyncMessageCenter(client_id="a", client_secret="b", base_url="auto",
                                  transport=httpx.MockTransport(us1.async_handler)) as mc:
        await mc.get_cases("c")
        assert mc.base_url == "https://api.us-2.crowdstrike.com"
    assert us2_token.call_count == 1
    assert us2.calls.last.request.headers["Authorization"] == "Bearer t2"


async def test_json_body_is_compact_json(router: respx.MockRouter) -> None:
    route = router.post(GET_CASES).respond(200, json=envelope([]))
    async with client(router) as mc:
        await mc.get_cases(["a", "b"])
    assert json.loads(route.calls.last.request.content) == {"ids": ["a", "b"]}


async def test_pacing_starts_when_the_budget_runs_low(router: respx.MockRouter) -> None:
    route = router.post(GET_CASES).respond(
        200, json=envelope([{"id": "c"}]),
        headers={"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "3"},
    )
    async with client(router, max_concurrency=4) as mc:
        gate = mc._pipeline.gate

        def pacing() -> bool:
            return gate.pacing

        assert not pacing()
        await mc.get_cases("c")
        assert mc.rate_limit is not None
        assert (mc.rate_limit.limit, mc.rate_limit.remaining) == (600, 3)
        assert pacing()
        first, second = gate.delay(), gate.delay()
        assert second - first == pytest.approx(0.1, abs=0.01)  # 60 s / 600 requests
        route.respond(200, json=envelope([{"id": "c"}]),
                      headers={"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "500"})
        await mc.get_cases("c")
        assert not pacing()


async def test_retry_after_header_forms_are_all_understood(router: respx.MockRouter) -> None:
    for value in (str(int(time.time() * 1000)), str(int(time.time())), "0"):
        route = router.post(GET_CASES).mock(side_effect=[
            httpx.Response(429, headers={"X-RateLimit-RetryAfter": value}, json=envelope()),
            httpx.Response(200, json=envelope([{"id": "c"}])),
        ])
        before = route.call_count
        async with client(router) as mc:
            await mc.get_cases("c")
        assert route.call_count - before == 2


async def test_a_write_answered_200_with_only_errors_raises(router: respx.MockRouter) -> None:
    router.post(CREATE).respond(
        200, json=envelope(errors=[{"code": 400, "message": "invalid case type"}],
                           trace_id="t-200"),
    )
    async with client(router) as mc:
        with pytest.raises(APIStatusError) as info:
            await mc.create_case_v2(content="b", title="t", type="fc:nope")
    assert info.value.status_code == 200
    assert info.value.trace_id == "t-200"
    assert info.value.errors[0].message == "invalid case type"
    assert info.value.may_have_been_applied is False


WRITES_200: dict[str, tuple[str, Callable[[AsyncMessageCenter], Awaitable[object]]]] = {
    "create_case_v2": (CREATE, lambda mc: mc.create_case_v2(content="b", title="t",
                                                            type="fc:contact")),
    "add_case_activity": ("/message-center/entities/case-activity/v1", lambda mc: (
        mc.add_case_activity(case_id="c", content="x", user_uuid="u"))),
    "add_case_attachment": ("/message-center/entities/case-attachment/v1", lambda mc: (
        mc.add_case_attachment(case_id="c", user_uuid="u", file_data=b"x", filename="x.txt"))),
}


@pytest.mark.parametrize("write", sorted(WRITES_200))
@pytest.mark.parametrize(("meta_trace", "expected"), [(None, "hdr-t"), ("meta-t", "hdr-t")])
async def test_a_write_answered_200_with_only_errors_carries_the_header_trace_id(
    router: respx.MockRouter, write: str, meta_trace: str | None, expected: str
) -> None:
    """As every APIError: the reply's X-CS-TRACEID header (it was meta.trace_id only: None
    when the meta carries none)."""
    path, call = WRITES_200[write]
    meta: dict[str, object] = {"query_time": 0.01}
    if meta_trace is not None:
        meta["trace_id"] = meta_trace
    router.post(path).respond(
        200, headers={"X-CS-TRACEID": "hdr-t"},
        json={"meta": meta, "resources": [], "errors": [{"code": 404, "message": "no case"}]},
    )
    async with client(router) as mc:
        with pytest.raises(APIStatusError) as info:
            await call(mc)
    assert type(info.value) is APIStatusError
    assert (info.value.status_code, info.value.trace_id) == (200, expected)
    assert str(info.value).endswith("(trace id hdr-t)")


async def test_a_read_answered_200_with_errors_keeps_them_on_the_envelope(
    router: respx.MockRouter,
) -> None:
    router.post(GET_CASES).respond(
        200, json=envelope([{"id": "a"}], errors=[{"code": 404, "message": "nf", "id": "b"}])
    )
    async with client(router) as mc:
        result = await mc.get_cases(["a", "b"])
    assert [c.id for c in result.resources] == ["a"]
    assert [(e.code, e.id) for e in result.errors] == [(404, "b")]


async def test_download_shorter_than_its_content_length_is_a_typed_error(
    router: respx.MockRouter, tmp_path: Path
) -> None:
    class Short(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b"only part"

    router.get("/message-center/entities/case-attachment/v1").mock(
        return_value=httpx.Response(
            200, headers={"Content-Length": "100", "Content-Type": "text/plain",
                          "X-CS-TRACEID": "t-dl"}, stream=Short(),
        )
    )
    async with client(router, max_retries=1) as mc:
        with pytest.raises(APIError) as info:
            async with mc.download_case_attachment("a-1") as download:
                await download.save(tmp_path / "x.txt")
    assert isinstance(info.value, APIResponseValidationError | APIConnectionError)
    assert info.value.trace_id == "t-dl"
    assert not list(tmp_path.iterdir())


async def test_empty_body_with_an_error_status_still_gives_the_typed_error(
    router: respx.MockRouter,
) -> None:
    router.post(GET_CASES).respond(502, content=b"", headers={"X-CS-TRACEID": "t-502"})
    async with client(router, max_retries=0) as mc:
        with pytest.raises(InternalServerError) as info:
            await mc.get_cases("c")
    assert info.value.status_code == 502 and info.value.trace_id == "t-502"


async def test_aclose_never_raises_when_revoke_fails() -> None:
    router = respx.MockRouter(base_url=BASE, assert_all_called=False)
    router.post("/oauth2/token").respond(201, json={"access_token": TOKEN, "expires_in": 1799})
    router.post(GET_CASES).respond(200, json=envelope([]))
    router.post("/oauth2/revoke").mock(side_effect=httpx.ConnectError("down"))
    mc = client(router)
    await mc.get_cases("c")
    await mc.aclose()  # the revoke fails; closing still succeeds
    router.post("/oauth2/revoke").respond(500)
    async with client(router) as other:
        await other.get_cases("c")


async def test_per_phase_timeouts_per_client_and_per_call(router: respx.MockRouter) -> None:
    route = router.post(GET_CASES).respond(200, json=envelope([]))
    phases = httpx.Timeout(connect=2.0, read=7.0, write=3.0, pool=1.5)
    async with client(router, timeout=phases) as mc:
        await mc.get_cases("c")
        assert route.calls.last.request.extensions["timeout"] == phases.as_dict()
        await mc.with_options(timeout=httpx.Timeout(0.5, read=9.0)).get_cases("c")
        assert route.calls.last.request.extensions["timeout"] == {
            "connect": 0.5, "read": 9.0, "write": 0.5, "pool": 0.5}
        await mc.get_cases("c")  # the client's own setting is untouched
        assert route.calls.last.request.extensions["timeout"] == phases.as_dict()


async def test_with_options_timeout_none_means_no_limit(router: respx.MockRouter) -> None:
    """``None`` is a setting (no limit), as on the client; it was taken for "unchanged"."""
    route = router.post(GET_CASES).respond(200, json=envelope([]))
    unlimited = {"connect": None, "read": None, "write": None, "pool": None}
    async with client(router, timeout=0.2) as mc:
        await mc.with_options(timeout=None).get_cases("c")
        assert route.calls.last.request.extensions["timeout"] == unlimited
        await mc.with_options(max_retries=0).get_cases("c")  # timeout not given: unchanged
        assert route.calls.last.request.extensions["timeout"] == httpx.Timeout(0.2).as_dict()
        await mc.with_options(timeout=None).with_options(max_retries=1).get_cases("c")
        assert route.calls.last.request.extensions["timeout"] == unlimited


async def test_a_read_timeout_is_a_typed_error_and_retried_for_reads(
    router: respx.MockRouter,
) -> None:
    route = router.post(GET_CASES).mock(side_effect=[
        httpx.ReadTimeout("slow"), httpx.Response(200, json=envelope([{"id": "c"}]))])
    async with client(router) as mc:
        result = await mc.get_cases("c")
        assert route.call_count == 2 and result.resources[0].id == "c"
        route.mock(side_effect=httpx.ReadTimeout("slow"))
        with pytest.raises(APITimeoutError):
            await mc.with_options(max_retries=0).get_cases("c")


@pytest.mark.parametrize(("expires_in", "valid_for"), [(1799, 1739), (60, 30), (1, 1)])
async def test_token_is_refreshed_a_margin_early_or_halfway_through_a_short_life(
    expires_in: float, valid_for: float
) -> None:
    now = [1000.0]
    replies = iter(["t1", "t2"])

    def token(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={"access_token": next(replies), "expires_in": expires_in})

    async with httpx.AsyncClient(base_url=BASE, transport=httpx.MockTransport(token)) as http:
        manager = TokenManager(
            http=http, client_id="cid", client_secret=SecretStr(SECRET), member_cid=None,
            autodiscover=False, policy=RetryPolicy(), clock=lambda: now[0],
        )
        assert await manager.get() == "t1"
        now[0] += valid_for - 0.001
        assert await manager.get() == "t1"
        now[0] += 0.001
        assert await manager.get() == "t2"


async def test_bulk_get_keeps_items_the_server_returns_under_other_ids(
    router: respx.MockRouter,
) -> None:
    def get(request: httpx.Request) -> httpx.Response:
        wanted = json.loads(request.content)["ids"]  # answered in lower case, and one without id
        return httpx.Response(200, json=envelope([*({"id": i.lower()} for i in wanted),
                                                  {"title": "no id"}]))

    router.post(GET_CASES).mock(side_effect=get)
    async with client(router) as mc:
        result = await mc.get_cases(["c-1", "C-2", "c-3"])
    assert [c.id for c in result.resources] == ["c-1", "c-3", "c-2", None]


POOL = [f"c-{i}" for i in range(12)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    asked=st.lists(st.sampled_from(POOL), min_size=1, max_size=30),
    fate=st.dictionaries(st.sampled_from(POOL), st.sampled_from(["upper", "missing", "twice"])),
    seed=st.integers(0, 2**16),
)
def test_bulk_get_merge_keeps_the_order_asked_and_every_item_sent(
    router: respx.MockRouter, asked: list[str], fate: dict[str, str], seed: int
) -> None:
    rng = random.Random(seed)

    def get(request: httpx.Request) -> httpx.Response:
        wanted = json.loads(request.content)["ids"]
        items = []
        for i in wanted:
            kind = fate.get(i, "found")
            if kind != "missing":
                items += [{"id": i.upper() if kind == "upper" else i}] * (2 if kind == "twice" else 1)
        rng.shuffle(items)
        errors = [{"code": 404, "message": "not found", "id": i}
                  for i in wanted if fate.get(i) == "missing"]
        return httpx.Response(200, json=envelope(items, errors=errors))

    router.post(GET_CASES).mock(side_effect=get)

    async def run() -> list[str | None]:
        async with client(router, max_ids_per_request=4) as mc:
            return [c.id for c in (await mc.get_cases(asked)).resources]

    got = anyio.run(run)
    unique = list(dict.fromkeys(asked))
    matched = [i for i in unique if fate.get(i, "found") in ("found", "twice")]
    assert got[: len(matched)] == matched
    assert sorted(got[len(matched):]) == sorted(  # type: ignore[type-var]
        i.upper() for i in unique if fate.get(i) == "upper"
    )


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate", "identity", "br", "broken"])
def test_an_error_body_is_decoded_to_at_most_the_limit(coding: str) -> None:
    """An error reply is read up to 1 MiB of wire bytes and decoded to at most 1 MiB: a small
    gzip body can decode to gigabytes (httpx decodes a whole wire chunk at once)."""
    envelope_bytes = b'{"errors": [{"code": 500, "message": "boom"}]}'
    bomb = b"\0" * (8 * 1024 * 1024)
    def raw_deflate(data: bytes) -> bytes:
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        return packer.compress(data) + packer.flush()

    compress: dict[str, Callable[[bytes], bytes]] = {
        "gzip": gzip.compress, "deflate": zlib.compress, "raw-deflate": raw_deflate,
    }
    header = coding.removeprefix("raw-")
    if coding in compress:
        assert _decoded(header, compress[coding](envelope_bytes), 1024) == envelope_bytes
        assert len(_decoded(header, compress[coding](bomb), 1024)) == 1024
    elif coding == "identity":
        assert _decoded(None, envelope_bytes, 10) == envelope_bytes[:10]
    else:  # a coding this does not know, or garbage: nothing, the status says what happened
        assert _decoded("br" if coding == "br" else "gzip", b"\x00not compressed", 1024) == b""
