"""The token request under the options of the calls that need it (``with_options``): a fetch
runs under the stricter of the calling view's options and the client's, phase by phase and in
retries (a view can tighten the token request, never loosen it). A call waiting for another's
fetch waits as long as it runs unless its own options are stricter, then about as long as its
own fetch could take; a failure more time or retries might mend is fetched again by a waiting
call whose options allow more.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest
from anyio.abc import SocketAttribute, SocketStream, TaskGroup

from falcon_mc import (
    APIConnectionError,
    APITimeoutError,
    AsyncMessageCenter,
    FalconError,
    OAuthError,
)
from falcon_mc.emulator import Emulator

from .conftest import BASE, SECRET, envelope

QUERY = "/message-center/queries/cases/v1"

Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]
Outcome = dict[str, object]


def granted() -> httpx.Response:
    return httpx.Response(201, json={"access_token": "tok-1", "expires_in": 1799})


def client(token: Handler, **options: object) -> AsyncMessageCenter:
    """A client (by default 30 s timeouts, 3 retries, no back-off; else ``options``) whose
    token endpoint is ``token``."""

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            return await token(request)
        if request.url.path == "/oauth2/revoke":
            return httpx.Response(200, json=envelope())
        return httpx.Response(200, json=envelope(["a"]))

    options = {"retry_base_delay": 0, **options}
    return AsyncMessageCenter(client_id="cid-123", client_secret=SECRET, base_url=BASE,
                              transport=httpx.MockTransport(handler),
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


CLIENT_TIMEOUT = {"connect": 2, "read": 5, "write": 5, "pool": 5}


@pytest.mark.parametrize(
    ("view", "sent_with", "requests"),
    [
        ({"timeout": 60, "max_retries": 5}, CLIENT_TIMEOUT, 2),  # looser: the client's
        ({"timeout": None}, CLIENT_TIMEOUT, 2),  # no limit is the loosest
        ({"timeout": httpx.Timeout(60, connect=1), "max_retries": 0},  # phase by phase
         {"connect": 1, "read": 5, "write": 5, "pool": 5}, 1),
        ({"timeout": 0.5}, {"connect": 0.5, "read": 0.5, "write": 0.5, "pool": 0.5}, 2),
    ],
    ids=["looser", "no-limit", "mixed", "stricter"],
)
async def test_the_token_request_runs_under_the_stricter_of_the_view_and_the_client(
    view: dict[str, object], sent_with: dict[str, float], requests: int
) -> None:
    seen: list[object] = []

    async def token(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(503, json=envelope())

    async with client(token, timeout=httpx.Timeout(5, connect=2), max_retries=1) as mc:
        with pytest.raises(OAuthError):
            await mc.with_options(**view).query_cases()  # type: ignore[arg-type]
    assert seen == [sent_with] * requests


async def test_a_view_without_a_timeout_cannot_hold_up_the_token() -> None:
    # the first token request never gets its reply: sent without a timeout, it would hang, and
    # every other call of the client with it
    emu = Emulator.seeded(n_cases=3, seed=1)
    emu.faults.add(operation="oauth2AccessToken", kind="latency", delay=60, count=1)
    results: Outcome = {}
    with emu.serve() as url:
        async with AsyncMessageCenter(client_id="a", client_secret="b", base_url=url,
                                      timeout=0.2, retry_base_delay=0) as mc:
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(outcome, results, "unbounded view", mc.with_options(timeout=None))
                    await anyio.wait_all_tasks_blocked()  # its token request is in flight
                    tg.start_soon(outcome, results, "client", mc)
    assert results == {"unbounded view": "ok", "client": "ok"}  # the client's 0.2 s, retried
    assert emu.stats.requests["oauth2AccessToken"] == 2


# -- a call waiting for another's fetch ------------------------------------------------------------

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


async def test_a_stricter_call_started_with_the_fetching_one_waits_no_longer() -> None:
    # started in the same turn of the event loop: the fetch is known before the stricter call
    # looks at it
    sent: list[int] = []

    async def token(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    results: Outcome = {}
    async with client(token) as mc:

        async def hasty(tg: TaskGroup) -> None:
            await outcome(results, "hasty", mc.with_options(timeout=0.05, max_retries=0))
            tg.cancel_scope.cancel()

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(outcome, results, "patient", mc)
                tg.start_soon(hasty, tg)
    assert isinstance(results["hasty"], APITimeoutError)
    assert len(sent) == 1


async def test_calls_with_the_fetchs_options_wait_for_a_trickled_token_reply() -> None:
    # the token reply trickles in (4 bytes every 0.05 s: ~1.5 s), no read waiting 0.25 s: the
    # fetch succeeds, and so do the calls waiting for it under the same options
    emu = Emulator.seeded(n_cases=3, seed=1)
    emu.faults.add(operation="oauth2AccessToken", kind="slow_body", chunk_size=4, delay=0.05)
    results: Outcome = {}
    with emu.serve() as url:
        async with AsyncMessageCenter(client_id="a", client_secret="b", base_url=url,
                                      timeout=0.25, retry_base_delay=0) as mc:
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(outcome, results, "fetching", mc)
                    await anyio.wait_all_tasks_blocked()
                    for i in range(3):
                        tg.start_soon(outcome, results, f"waiting {i}", mc)
    assert set(results.values()) == {"ok"} and len(results) == 4
    assert emu.stats.requests["oauth2AccessToken"] == 1


async def test_a_stricter_waiting_call_is_not_held_beyond_its_own_options() -> None:
    # the eager view's token requests time out (its 0.1 s is too short for the endpoint); the
    # patient call (one request of 1 s per phase) must not wait out the eager one's retries
    sent: list[float] = []

    async def token(request: httpx.Request) -> httpx.Response:
        sent.append(request.extensions["timeout"]["read"])
        if sent[-1] < 1:
            raise httpx.ReadTimeout("no reply in time", request=request)
        return granted()

    results: Outcome = {}
    async with client(token, timeout=1, max_retries=1, retry_base_delay=0.5) as mc:
        eager = mc.with_options(timeout=0.1, max_retries=8)
        with anyio.fail_after(5):  # its own fetch could take 4 s
            async with anyio.create_task_group() as tg:
                tg.start_soon(outcome, results, "eager", eager)
                await anyio.wait_all_tasks_blocked()  # pausing before its retry
                tg.start_soon(outcome, results, "patient", mc.with_options(max_retries=0))
    assert isinstance(results["eager"], APITimeoutError)
    assert results["patient"] == "ok"  # fetched again under its own, longer timeout
    assert sent == [0.1, 0.1, 1]  # the eager view's retries are the client's 1, not its 8


async def test_a_waiting_call_is_judged_again_when_another_fetch_starts() -> None:
    # the hasty call waits for a fetch under its own options; that fetch fails, and the patient
    # call fetches again under looser ones (30 s): the hasty call must not wait that one out
    release = anyio.Event()
    sent: list[float] = []

    async def token(request: httpx.Request) -> httpx.Response:
        sent.append(request.extensions["timeout"]["read"])
        if len(sent) == 1:
            await release.wait()
            raise httpx.ReadTimeout("no reply in time", request=request)
        await anyio.sleep_forever()  # the patient call's fetch
        raise AssertionError("unreachable")

    results: Outcome = {}
    async with client(token) as mc:
        hasty = mc.with_options(timeout=0.05, max_retries=0)

        async def last(tg: TaskGroup) -> None:  # covers the first fetch: waits for it
            await outcome(results, "hasty", hasty)
            tg.cancel_scope.cancel()  # the patient call's fetch would hang on

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(outcome, results, "first", hasty)
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(outcome, results, "patient", mc)
                tg.start_soon(last, tg)
                await anyio.wait_all_tasks_blocked()
                release.set()
    assert isinstance(results["hasty"], APITimeoutError)
    assert sent == [0.05, 30.0]


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


# -- a failure that more time or retries might mend ------------------------------------------------

async def test_a_fetch_that_failed_under_fewer_retries_is_fetched_again() -> None:
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
    assert results["more retries"] == "ok"  # it would have retried: it fetched again
    assert len(sent) == 2  # one fetch, and one of its own


async def test_a_fetch_that_timed_out_under_a_shorter_timeout_is_fetched_again() -> None:
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


async def test_a_fetch_made_again_is_shared_by_the_waiting_calls_it_covers() -> None:
    release = anyio.Event()
    sent: list[int] = []

    async def token(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        await release.wait()
        return httpx.Response(503, json=envelope())

    results: Outcome = {}
    async with client(token) as mc, anyio.create_task_group() as tg:
        tg.start_soon(outcome, results, "no retry", mc.with_options(max_retries=0))
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(outcome, results, "3 retries", mc)  # fetches again, with 3 retries
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(outcome, results, "2 retries", mc.with_options(max_retries=2))
        await anyio.wait_all_tasks_blocked()
        release.set()
    assert {name: getattr(exc, "status_code", exc) for name, exc in results.items()} == {
        "no retry": 503, "3 retries": 503, "2 retries": 503}
    assert len(sent) == 1 + 4  # the 2-retry call shared the 3-retry fetch's failure


# -- the client closed while a fetch is under way --------------------------------------------------

async def test_a_waiting_call_sends_no_token_request_once_the_client_is_closing() -> None:
    release = anyio.Event()
    sent: list[int] = []

    async def token(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        await release.wait()
        return httpx.Response(500, json=envelope())

    results: Outcome = {}
    mc = client(token)
    async with anyio.create_task_group() as tg:
        tg.start_soon(outcome, results, "fetching", mc.with_options(max_retries=0))
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(outcome, results, "waiting", mc)  # its retries would fetch again
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(mc.aclose)  # waits for the fetch in flight
        await anyio.wait_all_tasks_blocked()
        release.set()
    waiting = results["waiting"]
    assert type(waiting) is APIConnectionError and str(waiting) == "the client was closed"
    assert waiting.may_have_been_applied is False
    assert len(sent) == 1


async def test_closing_cuts_short_a_token_fetch_pausing_before_a_retry() -> None:
    sent: list[int] = []

    async def token(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        return httpx.Response(429, json=envelope(), headers={"Retry-After": "60"})

    results: Outcome = {}
    mc = client(token)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(outcome, results, "fetching", mc)
            tg.start_soon(outcome, results, "waiting", mc)
            await anyio.wait_all_tasks_blocked()  # the fetch pauses 60 s before its retry
            await mc.aclose()
    assert {type(exc) for exc in results.values()} == {APIConnectionError}
    assert {str(exc) for exc in results.values()} == {"the client was closed"}
    assert len(sent) == 1  # no token request after aclose() began
