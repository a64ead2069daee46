"""Shared fixtures: a respx router as the client's transport; a module's emulator on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx

from falcon_mc import AsyncMessageCenter
from falcon_mc.emulator import Emulator

BASE = "https://api.crowdstrike.com"
TOKEN = "tok-0123456789abcdef"
SECRET = "s3cr3t-value-never-logged"


def envelope(
    resources: object = (), *, errors: object = (), total: int | None = None, offset: int = 0,
    limit: int = 100, trace_id: str = "trace-1",
) -> dict[str, object]:
    """A wire envelope as the API sends it."""
    meta: dict[str, object] = {"query_time": 0.01, "powered_by": "msa-api", "trace_id": trace_id}
    if total is not None:
        meta["pagination"] = {"offset": offset, "limit": limit, "total": total}
    return {"meta": meta, "resources": list(resources), "errors": list(errors)}  # type: ignore[call-overload]


def paged(ids: list[str], request: httpx.Request, *, total: int | None) -> httpx.Response:
    """A query reply: the page of ``ids`` the request asks for, with ``total`` (None: none)."""
    offset = int(request.url.params.get("offset", 0))
    limit = int(request.url.params["limit"])
    return httpx.Response(200, json=envelope(ids[offset:offset + limit], total=total,
                                             offset=offset, limit=limit))


@pytest.fixture
def router() -> respx.MockRouter:
    """A respx router with the token and revoke endpoints mocked."""
    mock = respx.MockRouter(base_url=BASE, assert_all_called=False)
    mock.post("/oauth2/token", name="token").respond(
        201, json={"access_token": TOKEN, "expires_in": 1799, "token_type": "bearer"}
    )
    mock.post("/oauth2/revoke", name="revoke").respond(200, json=envelope())
    return mock


@pytest.fixture
async def mc(router: respx.MockRouter) -> AsyncIterator[AsyncMessageCenter]:
    """A client wired to the router, with zero retry delays."""
    client = AsyncMessageCenter(
        client_id="cid-123",
        client_secret=SECRET,
        transport=httpx.MockTransport(router.async_handler),
        retry_base_delay=0,
    )
    async with client:
        yield client


@pytest.fixture
def url(emu: Emulator) -> Iterator[str]:
    """The test module's ``emu`` fixture, served on loopback: its base URL."""
    with emu.serve() as served:
        yield served
