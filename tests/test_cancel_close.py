"""Closing the client: under asyncio's own cancellation, and with calls in flight.

Against the emulator on loopback, with the default transport. Nothing sleeps to measure time:
the moments that matter (the token being revoked, a request waiting for its reply) are caught
by wrapping the transport's ``handle_async_request``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import SocketAttribute

from falcon_mc import APIConnectionError, AsyncMessageCenter
from falcon_mc._lanes import LaneTransport
from falcon_mc.emulator import Emulator

DEADLINE = 10  # fail instead of hanging when a wait that must end does not


@pytest.fixture
def emu() -> Emulator:
    return Emulator.seeded(n_cases=30, seed=23)


def client(url: str, **kwargs: Any) -> AsyncMessageCenter:
    return AsyncMessageCenter(client_id="cl", client_secret="cl-secret", base_url=url,
                              retry_base_delay=0, **kwargs)


def lanes(mc: AsyncMessageCenter) -> LaneTransport:
    transport = mc._pipeline.http._transport
    assert isinstance(transport, LaneTransport)
    return transport


Send = Callable[[httpx.Request], Awaitable[httpx.Response]]


def spy_on(
    transport: LaneTransport, wrap: Callable[[httpx.Request, Send], Awaitable[httpx.Response]]
) -> None:
    """Send every request of ``transport`` through ``wrap(request, send)``."""
    send = transport.handle_async_request

    async def spy(request: httpx.Request) -> httpx.Response:
        return await wrap(request, send)

    transport.handle_async_request = spy  # type: ignore[method-assign]


# -- aclose() cancelled by asyncio ------------------------------------------------------------
@pytest.mark.parametrize("second", [None, 0, 1, 2, 3], ids=lambda turns: f"second-{turns}")
async def test_aclose_cancelled_by_asyncio_while_revoking_still_closes_the_pool(
    emu: Emulator, url: str, second: int | None
) -> None:
    # asyncio.timeout/wait_for/task.cancel() cancel through any anyio shield: the token revoke
    # is cut short, and the pool must be closed all the same. ``second``: a second
    # cancellation, that many turns of the event loop after the first (None: none).
    emu.faults.add(operation="oauth2RevokeToken", kind="latency", delay=60)
    mc = client(url, max_concurrency=4)
    transport = lanes(mc)
    await asyncio.gather(*(mc.query_cases(limit=1) for _ in range(4)))
    sockets = [lane._stream.extra(SocketAttribute.raw_socket)  # type: ignore[union-attr]  # noqa: S610
               for lane in transport.lanes if lane.connected]
    assert len(sockets) >= 2
    revoking = asyncio.Event()

    async def watch(request: httpx.Request, send: Send) -> httpx.Response:
        if request.url.path.endswith("/oauth2/revoke"):
            revoking.set()
        return await send(request)

    spy_on(transport, watch)
    closing = asyncio.get_running_loop().create_task(mc.aclose())
    async with asyncio.timeout(DEADLINE):
        await revoking.wait()
    closing.cancel()
    if second is not None:
        for _ in range(second):
            await asyncio.sleep(0)
        closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(DEADLINE):
            await closing
    await asyncio.sleep(0)  # one turn: asyncio closes the sockets of aborted transports
    assert mc._pipeline.http.is_closed
    assert transport.connections == 0
    assert [sock.fileno() for sock in sockets] == [-1] * len(sockets)


# -- calls in flight when the client closes ---------------------------------------------------
class Held:
    """Holds requests to paths ending in ``suffix`` at one trace event until :meth:`release`."""

    def __init__(self, suffix: str, event: str) -> None:
        self.suffix = suffix
        self.event = event
        self.reached = anyio.Event()
        self._go = anyio.Event()

    def release(self) -> None:
        self._go.set()

    async def _trace(self, name: str, info: dict[str, Any]) -> None:
        if name == self.event:
            self.reached.set()
            await self._go.wait()

    async def __call__(self, request: httpx.Request, send: Send) -> httpx.Response:
        if request.url.path.endswith(self.suffix) and "trace" not in request.extensions:
            request.extensions["trace"] = self._trace
        return await send(request)


async def in_flight_at_close(
    url: str, held: Held, call: Callable[[AsyncMessageCenter], Awaitable[object]]
) -> BaseException | None:
    """What ``call`` raises when the client is closed while ``held`` holds its request."""
    outcome: list[BaseException | None] = []

    async def run(mc: AsyncMessageCenter) -> None:
        try:
            await call(mc)
            outcome.append(None)
        except Exception as exc:  # the outcome is the test's to judge
            outcome.append(exc)

    mc = client(url)  # max_retries=2: the call would try again
    await mc.query_cases(limit=1)  # the token first
    spy_on(lanes(mc), held)
    async with anyio.create_task_group() as tg:
        tg.start_soon(run, mc)
        with anyio.fail_after(DEADLINE):
            await held.reached.wait()
        await mc.aclose()
        held.release()
    assert lanes(mc).busy == 0
    return outcome[0]


async def download(mc: AsyncMessageCenter, attachment_id: str) -> None:
    async with mc.download_case_attachment(attachment_id) as reply:
        await reply.aread()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_calls_in_flight_when_the_client_closes_end_in_connection_errors(
    emu: Emulator, url: str, backend: str
) -> None:
    ids = list(emu.cases)
    attachment_id = emu.add_attachment(ids[0], "big.bin", b"x" * 300_000)
    reply_head = "http11.receive_response_headers.started"
    cases = Held("/entities/cases/GET/v1", reply_head)
    body = Held("/case-attachment/v1", "http11.receive_response_body.started")
    comment = Held("/entities/case-activity/v1", reply_head)

    async def main() -> list[BaseException | None]:
        return [
            await in_flight_at_close(url, cases, lambda mc: mc.get_cases(ids[:5])),
            await in_flight_at_close(url, body, lambda mc: download(mc, attachment_id)),
            await in_flight_at_close(url, comment, lambda mc: mc.add_case_activity(
                case_id=ids[0], user_uuid="u-1", content="sent before the close")),
        ]

    errors = anyio.run(main, backend=backend)
    assert [type(exc) for exc in errors] == [APIConnectionError] * 3
    assert all("the client was closed" in str(exc) for exc in errors)
    sent = errors[2]
    assert isinstance(sent, APIConnectionError) and sent.may_have_been_applied  # it was written


async def test_a_call_waiting_for_its_turn_when_the_client_closes_ends_in_a_connection_error(
    emu: Emulator, url: str
) -> None:
    held = Held("/entities/cases/GET/v1", "http11.receive_response_headers.started")
    outcome: dict[str, BaseException | None] = {}

    async def run(name: str, call: Callable[[], Awaitable[object]]) -> None:
        try:
            await call()
            outcome[name] = None
        except Exception as exc:  # the outcome is the test's to judge
            outcome[name] = exc

    mc = client(url, max_concurrency=1)
    await mc.query_cases(limit=1)  # the token first
    spy_on(lanes(mc), held)
    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "sent", lambda: mc.get_cases(list(emu.cases)[:5]))
        with anyio.fail_after(DEADLINE):
            await held.reached.wait()
        tg.start_soon(run, "queued", lambda: mc.query_cases(limit=1))
        await anyio.wait_all_tasks_blocked()  # the second call waits for the one slot
        await mc.aclose()
        held.release()
    assert {name: type(exc) for name, exc in outcome.items()} == {
        "sent": APIConnectionError, "queued": APIConnectionError
    }
    queued = outcome["queued"]
    assert isinstance(queued, APIConnectionError) and not queued.may_have_been_applied
    assert "the client was closed" in str(queued)


async def test_a_call_made_after_aclose_is_a_programming_error(url: str) -> None:
    # as docs/errors.md says: httpx's RuntimeError, not a FalconError
    mc = client(url)
    await mc.query_cases(limit=1)
    await mc.aclose()
    with pytest.raises(RuntimeError, match="client has been closed"):
        await mc.get_cases(["c-1"])
