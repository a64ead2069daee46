"""Token flow: issue, expiry, revoke, credentials, 401s."""

from __future__ import annotations

import httpx
import pytest

from falcon_mc.emulator import Emulator

from .helpers import BASE, FakeClock

QUERY = "/message-center/queries/cases/v1"


async def token(
    client: httpx.AsyncClient, cid: str = "id", secret: str = "secret"  # noqa: S107
) -> httpx.Response:
    return await client.post("/oauth2/token", data={"client_id": cid, "client_secret": secret})


async def test_token_issued(anon: httpx.AsyncClient, emu: Emulator) -> None:
    emu.settings.token_ttl = 1234
    reply = await token(anon)
    assert reply.status_code == 201
    body = reply.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["expires_in"] == 1234
    assert body["token_type"] == "bearer"
    assert reply.headers["X-CS-TRACEID"]
    assert reply.headers["Content-Type"] == "application/json"
    assert emu.stats.tokens_issued == 1
    ok = await anon.get(QUERY, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert ok.status_code == 200


async def test_member_cid_accepted(anon: httpx.AsyncClient) -> None:
    reply = await anon.post(
        "/oauth2/token", data={"client_id": "a", "client_secret": "b", "member_cid": "c" * 32}
    )
    assert reply.status_code == 201


@pytest.mark.parametrize(
    "header", [None, "Bearer", "Bearer nope", "Basic abc", "bearer"], ids=str
)
async def test_401_without_valid_token(anon: httpx.AsyncClient, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    reply = await anon.get(QUERY, headers=headers)
    assert reply.status_code == 401
    body = reply.json()
    assert body["errors"][0]["code"] == 401
    assert body["meta"]["trace_id"] == reply.headers["X-CS-TRACEID"]
    assert "X-RateLimit-Limit" in reply.headers


async def test_token_expires(anon: httpx.AsyncClient, emu: Emulator, clock: FakeClock) -> None:
    emu.settings.token_ttl = 60
    access = (await token(anon)).json()["access_token"]
    auth = {"Authorization": f"Bearer {access}"}
    clock.advance(59.9)
    assert (await anon.get(QUERY, headers=auth)).status_code == 200
    clock.advance(0.2)
    assert (await anon.get(QUERY, headers=auth)).status_code == 401


async def test_revoke(anon: httpx.AsyncClient, emu: Emulator) -> None:
    access = (await token(anon)).json()["access_token"]
    auth = {"Authorization": f"Bearer {access}"}
    assert (await anon.get(QUERY, headers=auth)).status_code == 200
    reply = await anon.post("/oauth2/revoke", data={"token": access}, auth=("id", "secret"))
    assert reply.status_code == 200
    assert reply.json()["errors"] == []
    assert emu.stats.tokens_revoked == 1
    assert (await anon.get(QUERY, headers=auth)).status_code == 401


async def test_revoke_needs_basic_auth(anon: httpx.AsyncClient) -> None:
    access = (await token(anon)).json()["access_token"]
    reply = await anon.post("/oauth2/revoke", data={"token": access})
    assert reply.status_code == 401
    missing = await anon.post("/oauth2/revoke", data={}, auth=("id", "secret"))
    assert missing.status_code == 400


async def test_configured_credentials(anon: httpx.AsyncClient, emu: Emulator) -> None:
    emu.settings.credentials = ("good-id", "good-secret")
    wrong = await token(anon, "good-id", "bad")
    assert wrong.status_code == 403
    assert wrong.json()["errors"][0]["code"] == 403
    assert (await token(anon, "good-id", "good-secret")).status_code == 201
    revoke = await anon.post("/oauth2/revoke", data={"token": "x"}, auth=("good-id", "bad"))
    assert revoke.status_code == 403


@pytest.mark.parametrize("form", [{}, {"client_id": "a"}, {"client_secret": "b"}])
async def test_token_missing_fields(anon: httpx.AsyncClient, form: dict[str, str]) -> None:
    reply = await anon.post("/oauth2/token", data=form)
    assert reply.status_code == 400
    assert reply.json()["errors"][0]["message"]


async def test_unknown_route_and_method(http: httpx.AsyncClient) -> None:
    missing = await http.get("/message-center/nope/v1")
    assert missing.status_code == 404
    assert missing.headers["X-CS-TRACEID"]
    wrong = await http.delete(QUERY)
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "GET"
    assert wrong.json()["errors"][0]["code"] == 405


@pytest.mark.parametrize(
    ("base", "region"),
    [
        ("https://api.crowdstrike.com", "us-1"),
        ("https://api.eu-1.crowdstrike.com", "us-1"),
        ("https://api.laggar.gcw.crowdstrike.com", "us-1"),
        ("http://127.0.0.1:8080", None),
        ("http://localhost:8080", None),
        ("http://[::1]:8080", None),
        ("http://0.0.0.0:8080", None),
        ("http://192.0.2.2:8080", None),
        ("http://falcon-emulator:8080", None),
        (BASE, None),
        ("https://api.crowdstrike.com.evil.example", None),
    ],
)
async def test_region_header_only_for_crowdstrike_hosts(
    emu: Emulator, base: str, region: str | None
) -> None:
    """FalconPy follows X-Cs-Region whatever its base_url: an emulator reached by a LAN
    address or a service name must not send it off to the real cloud."""
    async with httpx.AsyncClient(transport=emu.transport(), base_url=base) as client:
        reply = await token(client)
    assert reply.status_code == 201
    assert reply.headers.get("X-Cs-Region") == region


@pytest.mark.parametrize("host", ["API.CrowdStrike.com:443", "api.us-2.crowdstrike.com."])
async def test_region_header_host_spellings(anon: httpx.AsyncClient, host: str) -> None:
    reply = await anon.post(
        "/oauth2/token", data={"client_id": "a", "client_secret": "b"}, headers={"Host": host}
    )
    assert reply.headers.get("X-Cs-Region") == "us-1"


def test_region_header_not_sent_over_socket_to_a_service_name(emu: Emulator) -> None:
    with emu.serve(host="0.0.0.0") as url, httpx.Client() as client:  # noqa: S104
        port = url.rsplit(":", 1)[1]
        reply = client.post(
            f"http://127.0.0.1:{port}/oauth2/token",
            data={"client_id": "a", "client_secret": "b"},
            headers={"Host": f"falcon-emulator:{port}"},
        )
    assert reply.status_code == 201
    assert "X-Cs-Region" not in reply.headers


async def test_region_header_can_be_disabled(anon: httpx.AsyncClient, emu: Emulator) -> None:
    emu.settings.region = None
    assert "X-Cs-Region" not in (await token(anon)).headers
