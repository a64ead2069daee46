"""The token request under the options of the calls that need it (``with_options``): the call
that fetches uses its own timeout and retries; a call waiting for that fetch gives up where its
own options would have, and carries the fetch on where they would have gone on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest
from anyio.abc import SocketAttribute, SocketStream

from falcon_mc import APITimeoutError, AsyncMessageCenter, FalconError, OAuthError

from .conftest import BASE, SECRET, envelope

QUERY = "/message-center/queries/cases/v1"

Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]
Outcome = dict[str, object]


def granted() -> httpx.Response:
    return httpx.Response(201, json={"access_token": "tok-1", "expires_in": 1799})


def client(token: Handler, **options: object) -> AsyncMessageCenter:
    """A client (30 s timeouts, 3 retries, no back-off) whose token endpoint is ``token``."""

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            return await token(request)
        if request.url.path == "/oauth2/revoke":
            return httpx.Response(200, json=envelope())
        return httpx.Response(200, json=envelope(["a"]))

    return AsyncMessageCenter(client_id="cid-123", client_secret=SECRET, base_url=BASE,
                              retry_base_delay=0, transport=httpx.MockTransport(handler),
                              **options)  # type: ignore[arg-type]


async def outcome(results: Outcome, name: str, view: AsyncMessageCenter) -> None:
    """Run a query on ``view``; ``results[name]`` is "ok" or the error it raised."""
    try:
        await view.query_cases()
    except FalconError as exc:
        results[name] = exc
    else:
        results[name] = "ok"


@asynccontextmanager
async def stalled_server() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A loopback server that reads requests and never answers: its URL, and what it read."""
    received: list[bytes] = []
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")

    async def serve(stream: SocketStream) -> None:
        async with stream:
            received.append(await stream.receive())
            await anyio.sleep_forever()

    async with tcp, anyio.create_task_group() as tg:
        tg.start_soon(tcp.serve, serve)
        yield f"http://127.0.0.1:{tcp.extra(SocketAttribute.local_port)}", received  # noqa: S610
        tg.cancel_scope.cancel()


# -- the call that fetches: its own timeout and retries --------------------------------------------

async def test_a_views_token_request_gives_up_under_the_views_timeout() -> None:
    # the client would wait 30 s per request, 4 times; the view allows one request of 0.2 s
    async with stalled_server() as (url, received), AsyncMessageCenter(
        client_id="cid-123", client_secret=SECRET, base_url=url
    ) as mc:
        with anyio.fail_after(10), pytest.raises(APITimeoutError) as info:
            await mc.with_options(timeout=0.2, max_retries=0).query_cases()
    assert info.value.may_have_been_applied is False
    assert len(received) == 1
    assert received[0].startswith(b"POST /oauth2/token ")


async def test_the_token_request_is_sent_with_the_views_timeout() -> None:
    seen: list[object] = []

    async def token(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return granted()

    async with client(token) as mc:
        await mc.with_options(timeout=httpx.Timeout(7, connect=3)).query_cases()
    assert seen == [{"connect": 3, "read": 7, "write": 7, "pool": 7}]


async def test_the_token_request_is_retried_as_often_as_the_view_allows() -> None:
    sent: list[int] = []

    async def token(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        return httpx.Response(503, json=envelope())

    async with client(token) as mc:
        with pytest.raises(OAuthError) as info:
            await mc.with_options(max_retries=1).query_cases()
    assert info.value.status_code == 503
    assert len(sent) == 2  # not the client's 1 + 3


# -- a call waiting for another's fetch: its own bounds --------------------------------------------

async def test_a_waiting_call_gives_up_under_its_own_timeout() -> None:
    sent: list[int] = []

    async def token(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        await anyio.sleep_forever()  # the fetching call (30 s timeout) would wait long
        raise AssertionError("unreachable")

    results: Outcome = {}
    async with client(token) as mc, anyio.create_task_group() as tg:
        tg.start_soon(outcome, results, "patient", mc)
        await anyio.wait_all_tasks_blocked()  # its token request is in flight
        with anyio.fail_after(10), pytest.raises(APITimeoutError) as info:
            await mc.with_options(timeout=0.05, max_retries=0).query_cases()
        tg.cancel_scope.cancel()
    assert info.value.may_have_been_applied is False
    assert len(sent) == 1  # it waited for the fetch in flight, and made no request of its own


async def test_a_waiting_call_gives_up_where_its_own_retries_end() -> None:
    release = anyio.Event()
    sent: list[int] = []

    async def token(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        if len(sent) == 1:
            await release.wait()
            return httpx.Response(503, json=envelope())
        await anyio.sleep_forever()  # the retry hangs
        raise AssertionError("unreachable")

    results: Outcome = {}
    async with client(token) as mc, anyio.create_task_group() as tg:
        tg.start_soon(outcome, results, "retrying", mc)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(outcome, results, "once", mc.with_options(max_retries=0))
        await anyio.wait_all_tasks_blocked()  # following the fetch in flight
        release.set()
        await anyio.wait_all_tasks_blocked()
        once = results.get("once")
        tg.cancel_scope.cancel()
    assert isinstance(once, OAuthError) and once.status_code == 503  # as its own fetch would
    assert len(sent) == 2  # the fetching call's retry, still in flight


async def test_a_fetch_that_gave_up_under_stricter_retries_is_carried_on() -> None:
    release = anyio.Event()
    sent: list[int] = []

    async def token(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        if len(sent) == 1:
            await release.wait()
            return httpx.Response(503, json=envelope())
        return granted()

    results: Outcome = {}
    async with client(token) as mc:
        strict = mc.with_options(max_retries=0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(outcome, results, "fetching", strict)
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(outcome, results, "same options", strict)
            tg.start_soon(outcome, results, "more retries", mc)
            await anyio.wait_all_tasks_blocked()
            release.set()
    assert [type(results[n]) for n in ("fetching", "same options")] == [OAuthError] * 2
    assert results["more retries"] == "ok"  # it would have retried: it did
    assert len(sent) == 2  # one fetch, and one retry


async def test_a_fetch_that_timed_out_under_a_shorter_timeout_is_carried_on() -> None:
    release = anyio.Event()
    sent: list[object] = []

    async def token(request: httpx.Request) -> httpx.Response:
        sent.append(request.extensions["timeout"])
        if len(sent) == 1:  # slower than the first call's 0.5 s allow
            await release.wait()
            raise httpx.ReadTimeout("no reply in time", request=request)
        return granted()

    results: Outcome = {}
    async with client(token) as mc, anyio.create_task_group() as tg:
        tg.start_soon(outcome, results, "hasty", mc.with_options(timeout=0.5, max_retries=0))
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(outcome, results, "patient", mc.with_options(max_retries=0))
        await anyio.wait_all_tasks_blocked()
        release.set()
    assert isinstance(results["hasty"], APITimeoutError)
    assert results["patient"] == "ok"  # the timeout was not one its own 30 s would have had
    assert [t["read"] for t in sent] == [0.5, 30]  # type: ignore[index]


async def test_concurrent_calls_of_a_view_share_one_token_request() -> None:
    release = anyio.Event()
    sent: list[int] = []

    async def token(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        await release.wait()
        return granted()

    results: Outcome = {}
    async with client(token) as mc:
        view = mc.with_options(timeout=5, max_retries=1)
        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(outcome, results, str(i), view if i % 2 else mc)
            await anyio.wait_all_tasks_blocked()
            release.set()
    assert set(results.values()) == {"ok"}
    assert len(sent) == 1
