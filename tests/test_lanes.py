"""The default HTTP/1.1 transport (:mod:`falcon_mc._lanes`) against the emulator on loopback.

Nothing sleeps to measure time: the moments that matter (a request being written, waiting for
its reply) are observed through the ``trace`` request extension (httpcore's event names), which
the tests can also hold open.
"""

from __future__ import annotations

import gc
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, contextmanager
from functools import partial
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import TaskGroup

from falcon_mc import AsyncMessageCenter, _lanes, _pipeline
from falcon_mc._lanes import LaneTransport, default_transport
from falcon_mc._pipeline import _gc_paused
from falcon_mc.emulator import Emulator, FaultKind

QUERY = "/message-center/queries/cases/v1"
GET_CASES = "/message-center/entities/cases/GET/v1"
DEADLINE = 5  # fail instead of hanging when a wait that must end does not


@pytest.fixture
def emu() -> Emulator:
    return Emulator.seeded(n_cases=20, seed=13)


@pytest.fixture
def auth(emu: Emulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {emu.issue_token()}"}


@pytest.fixture
async def lanes(url: str) -> AsyncIterator[tuple[LaneTransport, httpx.AsyncClient]]:
    """A 4-lane transport in a client for the served emulator."""
    transport = LaneTransport(4)
    async with httpx.AsyncClient(transport=transport, base_url=url) as client:
        yield transport, client


def with_connection(transport: LaneTransport) -> list[_lanes._Lane]:
    """The lanes that hold a connection."""
    return [lane for lane in transport.lanes if lane.connected]


async def query(client: httpx.AsyncClient, auth: dict[str, str]) -> httpx.Response:
    reply = await client.get(QUERY, params={"limit": 1}, headers=auth)
    assert reply.status_code == 200
    return reply


class Hold:
    """A trace callback that stops its request at one httpcore event until :meth:`release`."""

    def __init__(self, event: str) -> None:
        self.event = event
        self.reached = anyio.Event()
        self._go = anyio.Event()

    def release(self) -> None:
        self._go.set()

    async def __call__(self, name: str, info: dict[str, Any]) -> None:
        if name == self.event:
            self.reached.set()
            await self._go.wait()


async def start_held(
    tg: TaskGroup, client: httpx.AsyncClient, auth: dict[str, str], hold: Hold
) -> None:
    """Start a query in ``tg`` and return once it is held at ``hold``'s event."""
    tg.start_soon(partial(client.get, QUERY, headers=auth, extensions={"trace": hold}))
    with anyio.fail_after(DEADLINE):
        await hold.reached.wait()


async def assert_no_free_lane(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """A query with a short pool timeout finds every lane taken."""
    with pytest.raises(httpx.PoolTimeout), anyio.fail_after(DEADLINE):
        await client.get(QUERY, headers=auth, timeout=httpx.Timeout(5, pool=0.05))


# -- lanes: one request per connection --------------------------------------------------------
async def test_a_burst_takes_one_lane_and_connection_per_request(
    lanes: tuple[LaneTransport, httpx.AsyncClient], auth: dict[str, str]
) -> None:
    transport, client = lanes
    replies: list[httpx.Response] = []

    async def one() -> None:
        replies.append(await query(client, auth))

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(one)
    assert len(replies) == 3
    streams = {id(reply.extensions["network_stream"]) for reply in replies}
    assert len(streams) == 3  # three connections, not three requests queued on one
    assert len(with_connection(transport)) == 3  # of 4 lanes: the idle one opened nothing
    assert transport.busy == 0
    await transport.aclose()
    assert with_connection(transport) == []


async def test_sequential_requests_reuse_the_most_recently_used_lane(
    lanes: tuple[LaneTransport, httpx.AsyncClient], auth: dict[str, str]
) -> None:
    transport, client = lanes
    replies = [await query(client, auth) for _ in range(10)]
    assert len({id(reply.extensions["network_stream"]) for reply in replies}) == 1
    assert with_connection(transport) == [transport.lanes[0]]
    assert transport.busy == 0


# -- a lane is held until its reply is closed -------------------------------------------------
async def test_a_streamed_reply_holds_its_lane_and_the_next_request_times_out(
    url: str, auth: dict[str, str]
) -> None:
    transport = LaneTransport(2)
    async with httpx.AsyncClient(transport=transport, base_url=url) as client:
        async with AsyncExitStack() as stack:
            for held in (1, 2):
                await stack.enter_async_context(client.stream("GET", QUERY, headers=auth))
                assert transport.busy == held
            await assert_no_free_lane(client, auth)
            assert transport.busy == 2
        assert transport.busy == 0
        await query(client, auth)
        assert transport.busy == 0


async def test_a_request_waits_for_a_lane_and_gets_the_one_released(
    url: str, auth: dict[str, str]
) -> None:
    transport = LaneTransport(1)
    got: list[httpx.Response] = []

    async def waiting() -> None:
        got.append(await query(client, auth))

    async with httpx.AsyncClient(transport=transport, base_url=url) as client:
        async with (
            client.stream("GET", QUERY, headers=auth) as streamed,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(waiting)
            await anyio.wait_all_tasks_blocked()
            assert got == []  # waiting for the lane, not failing nor sent elsewhere
            assert transport.busy == 1
            await streamed.aread()  # read to the end: closed, its connection kept
        assert len(got) == 1
        assert got[0].extensions["network_stream"] is streamed.extensions["network_stream"]
        assert transport.busy == 0


async def test_a_request_cancelled_while_waiting_for_a_lane_takes_none(
    url: str, auth: dict[str, str]
) -> None:
    transport = LaneTransport(1)
    async with httpx.AsyncClient(transport=transport, base_url=url) as client:
        async with client.stream("GET", QUERY, headers=auth):
            async with anyio.create_task_group() as tg:
                tg.start_soon(query, client, auth)
                await anyio.wait_all_tasks_blocked()
                tg.cancel_scope.cancel()
            assert transport.busy == 1
        assert transport.busy == 0
        # exactly one lane is free again: one stream takes it, a second request times out
        async with client.stream("GET", QUERY, headers=auth):
            await assert_no_free_lane(client, auth)
        assert transport.busy == 0


# -- failures and cancellation give the lane back ---------------------------------------------
@pytest.mark.parametrize("kind", ["drop_before", "truncate"])
async def test_a_failed_exchange_gives_the_lane_back(
    emu: Emulator, lanes: tuple[LaneTransport, httpx.AsyncClient], auth: dict[str, str],
    kind: FaultKind,
) -> None:
    transport, client = lanes
    emu.faults.add(operation="QueryCasesIdsByFilter", kind=kind, count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        await client.get(QUERY, headers=auth)
    assert transport.busy == 0
    assert transport.writing == 0
    await query(client, auth)  # the lane works again
    assert transport.busy == 0


async def test_a_refused_connection_gives_the_lane_back() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = LaneTransport(2)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://127.0.0.1:{port}") as client:
        for _ in range(3):  # more attempts than lanes: none is lost
            with pytest.raises(httpx.ConnectError):
                await client.get("/")
            assert transport.busy == 0
            assert transport.writing == 0


async def test_cancelled_while_the_server_holds_the_reply_frees_the_lane(
    emu: Emulator, lanes: tuple[LaneTransport, httpx.AsyncClient], auth: dict[str, str]
) -> None:
    transport, client = lanes
    emu.settings.latency = 2.0  # the reply would come long after the cancellation
    waiting = anyio.Event()

    async def trace(name: str, info: dict[str, Any]) -> None:
        if name == "http11.receive_response_headers.started":
            waiting.set()

    async def send() -> None:
        await client.get(QUERY, headers=auth, extensions={"trace": trace})

    async with anyio.create_task_group() as tg:
        tg.start_soon(send)
        with anyio.fail_after(DEADLINE):
            await waiting.wait()
        assert transport.busy == 1
        tg.cancel_scope.cancel()
    assert transport.busy == 0
    assert transport.writing == 0
    emu.settings.latency = 0
    await query(client, auth)


async def test_cancelled_while_being_written_stops_counting_it(
    lanes: tuple[LaneTransport, httpx.AsyncClient], auth: dict[str, str]
) -> None:
    transport, client = lanes
    await query(client, auth)  # a connection is open: the next request starts by writing
    async with anyio.create_task_group() as tg:
        await start_held(tg, client, auth, Hold("http11.send_request_headers.started"))
        assert transport.writing == 1
        tg.cancel_scope.cancel()
    assert transport.writing == 0
    assert transport.busy == 0
    with anyio.fail_after(DEADLINE):
        await transport.writes_done()
    await query(client, auth)


async def test_writes_done_gives_up_on_a_write_that_does_not_finish(
    lanes: tuple[LaneTransport, httpx.AsyncClient], auth: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A peer that stops reading cannot hold parses back longer than ``_WRITE_WAIT_MAX``."""
    monkeypatch.setattr(_lanes, "_WRITE_WAIT_MAX", 0.01)
    transport, client = lanes
    await query(client, auth)
    async with anyio.create_task_group() as tg:
        await start_held(tg, client, auth, Hold("http11.send_request_headers.started"))
        with anyio.fail_after(DEADLINE):
            await transport.writes_done()  # returns although the write is still held
        assert transport.writing == 1
        tg.cancel_scope.cancel()
    assert transport.writing == transport.busy == 0


# -- write tracking -----------------------------------------------------------------------------
async def test_a_request_waiting_for_its_reply_is_written(
    lanes: tuple[LaneTransport, httpx.AsyncClient], auth: dict[str, str]
) -> None:
    transport, client = lanes
    hold = Hold("http11.receive_response_headers.started")
    replies: list[httpx.Response] = []

    async def send() -> None:
        replies.append(await client.get(QUERY, headers=auth, extensions={"trace": hold}))

    async with anyio.create_task_group() as tg:
        tg.start_soon(send)
        with anyio.fail_after(DEADLINE):
            await hold.reached.wait()
            assert transport.busy == 1
            assert transport.writing == 0
            await transport.writes_done()
        hold.release()
    assert replies[0].status_code == 200
    assert transport.busy == transport.writing == 0


async def test_writes_done_waits_for_requests_being_written_not_later_ones(
    lanes: tuple[LaneTransport, httpx.AsyncClient], auth: dict[str, str]
) -> None:
    transport, client = lanes
    async with anyio.create_task_group() as tg:  # two lanes with an open connection
        tg.start_soon(query, client, auth)
        tg.start_soon(query, client, auth)
    assert len(with_connection(transport)) == 2
    first = Hold("http11.send_request_headers.started")
    later = Hold("http11.send_request_headers.started")
    waiter_called = anyio.Event()
    waiter_returned = anyio.Event()
    writing_when_done: list[int] = []

    async def send(hold: Hold) -> None:
        await client.get(QUERY, headers=auth, extensions={"trace": hold})

    async def wait_for_writes() -> None:
        waiter_called.set()
        await transport.writes_done()
        writing_when_done.append(transport.writing)
        waiter_returned.set()

    async with anyio.create_task_group() as tg:
        with anyio.fail_after(DEADLINE):
            tg.start_soon(send, first)
            await first.reached.wait()
            assert transport.writing == 1
            tg.start_soon(wait_for_writes)
            await waiter_called.wait()
            tg.start_soon(send, later)  # starts writing after writes_done was called
            await later.reached.wait()
            assert transport.writing == 2
            await anyio.wait_all_tasks_blocked()
            assert writing_when_done == []  # the first request is not out yet
            first.release()
            await waiter_returned.wait()
        assert writing_when_done == [1]  # returned with the later request still being written
        later.release()
    assert transport.busy == transport.writing == 0


async def test_a_request_opening_a_connection_is_not_counted_as_being_written(
    lanes: tuple[LaneTransport, httpx.AsyncClient], auth: dict[str, str]
) -> None:
    transport, client = lanes
    seen: dict[str, int] = {}

    async def trace(name: str, info: dict[str, Any]) -> None:
        seen[name] = transport.writing

    await client.get(QUERY, headers=auth, extensions={"trace": trace})
    assert seen["connection.connect_tcp.started"] == 0
    assert seen["http11.send_request_headers.started"] == 0
    assert transport.busy == 0


@pytest.mark.parametrize(
    ("size", "counted"), [(64 * 1024, 1), (64 * 1024 + 1, 0)], ids=["64KiB", "64KiB+1"]
)
async def test_only_small_bodies_count_as_being_written(
    lanes: tuple[LaneTransport, httpx.AsyncClient], auth: dict[str, str], size: int,
    counted: int,
) -> None:
    transport, client = lanes
    await query(client, auth)  # reuse a connection: no connect step that ends the tracking
    seen: dict[str, int] = {}

    async def trace(name: str, info: dict[str, Any]) -> None:
        seen[name] = transport.writing

    body = b"x" * size
    reply = await client.post(GET_CASES, content=body, extensions={"trace": trace})
    assert reply.request.headers["Content-Length"] == str(size)
    assert reply.status_code == 401  # no token: refused, the body read and dropped
    assert seen["http11.send_request_headers.started"] == counted
    assert seen["http11.send_request_body.started"] == counted
    assert seen["http11.send_request_body.complete"] == 0
    assert transport.busy == transport.writing == 0


async def test_a_chunked_body_is_not_counted_as_being_written(
    lanes: tuple[LaneTransport, httpx.AsyncClient], auth: dict[str, str]
) -> None:
    """No Content-Length, so no bound on the time it takes to write: not waited for."""
    transport, client = lanes
    await query(client, auth)
    seen: dict[str, int] = {}

    async def trace(name: str, info: dict[str, Any]) -> None:
        seen[name] = transport.writing

    async def body() -> AsyncIterator[bytes]:
        yield b'{"ids": ["x"]}'

    reply = await client.post(GET_CASES, content=body(), extensions={"trace": trace})
    assert reply.request.headers["Transfer-Encoding"] == "chunked"
    assert seen["http11.send_request_body.started"] == 0
    assert transport.busy == transport.writing == 0


async def test_an_unreadable_content_length_neither_counts_nor_keeps_the_lane(
    lanes: tuple[LaneTransport, httpx.AsyncClient], auth: dict[str, str]
) -> None:
    """``"²"`` passes ``str.isdigit`` but not ``int``: the lane must come back whatever happens."""
    transport, client = lanes
    request = client.build_request("POST", GET_CASES, content=b"{}", headers=auth)
    request.headers["Content-Length"] = "²"
    with pytest.raises(httpx.HTTPError):
        await client.send(request)
    assert transport.busy == transport.writing == 0
    assert (await query(client, auth)).status_code == 200


async def test_the_callers_trace_extension_is_restored_after_the_exchange(
    lanes: tuple[LaneTransport, httpx.AsyncClient], auth: dict[str, str]
) -> None:
    _, client = lanes

    async def trace(name: str, info: dict[str, Any]) -> None:
        pass

    mine = client.build_request("GET", QUERY, headers=auth, extensions={"trace": trace})
    bare = client.build_request("GET", QUERY, headers=auth)
    await client.send(mine)
    await client.send(bare)
    assert mine.extensions["trace"] is trace
    assert "trace" not in bare.extensions


def test_a_transport_needs_at_least_one_lane() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LaneTransport(0)


async def test_a_trace_callback_of_the_caller_still_sees_httpcore_events(
    lanes: tuple[LaneTransport, httpx.AsyncClient], auth: dict[str, str]
) -> None:
    _, client = lanes
    names: list[str] = []

    async def trace(name: str, info: dict[str, Any]) -> None:
        names.append(name)

    for _ in range(2):  # a new connection, then a reused one
        await client.get(QUERY, headers=auth, extensions={"trace": trace})
    assert names.count("connection.connect_tcp.started") == 1
    assert names.count("http11.send_request_headers.started") == 2
    assert names.count("http11.send_request_body.complete") == 2
    assert names.count("http11.receive_response_headers.complete") == 2
    assert names.index("http11.send_request_body.complete") < names.index(
        "http11.receive_response_headers.started"
    )


# -- one client, successive event loop runs ---------------------------------------------------
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_one_client_serves_successive_event_loop_runs(
    url: str, auth: dict[str, str], backend: str
) -> None:
    """A sync wrapper running each call in an event loop of its own (``asyncio.run``): a
    connection kept by a run that has ended (its asyncio loop closed) is dropped, without that
    loop and without leaving a socket open, and the next run opens its own."""
    transport = LaneTransport(1)
    client = httpx.AsyncClient(transport=transport, base_url=url)
    for _ in range(3):
        assert anyio.run(query, client, auth, backend=backend).status_code == 200
        assert transport.connections == 1
    anyio.run(client.aclose, backend=backend)  # closing from a later run too
    assert transport.connections == transport.busy == 0
    gc.collect()  # an unclosed socket or transport would warn now (an error in this suite)


# -- default_transport ------------------------------------------------------------------------
async def test_default_transport_for_http11_is_lanes_sharing_one_verifying_tls_context() -> None:
    transport = default_transport(8, http2=False)
    assert isinstance(transport, LaneTransport)
    assert len(transport.lanes) == 8
    assert all(lane._ssl_context is transport.ssl_context for lane in transport.lanes)
    assert transport.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert transport.ssl_context.check_hostname is True
    assert transport.busy == transport.writing == 0


async def test_default_transport_for_http2_is_httpx_pool() -> None:
    pytest.importorskip("h2")
    assert default_transport(8, http2=True) is None  # httpx builds its pool, with HTTP/2
    async with AsyncMessageCenter(client_id="a", client_secret="b", http2=True) as mc:
        transport = mc._pipeline.http._transport
        assert isinstance(transport, httpx.AsyncHTTPTransport)
        assert transport._pool._http2 is True


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "HTTP_PROXY"])
async def test_a_proxy_in_the_environment_is_honoured(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx only reads proxy variables when it builds the transport: so it does, then."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, "http://proxy.example:3128")
    assert default_transport(8, http2=False) is None
    async with AsyncMessageCenter(client_id="a", client_secret="b") as mc:
        http = mc._pipeline.http
        assert not isinstance(http._transport, LaneTransport)
        proxied = [t for t in http._mounts.values() if t is not None]
        assert proxied  # the request to the API goes through the proxy transport
        assert all(isinstance(t, httpx.AsyncHTTPTransport) for t in proxied)


# -- _gc_paused ---------------------------------------------------------------------------------
@pytest.fixture
def gc_state() -> Iterator[None]:
    """Whatever a test does, the collector ends as it was."""
    enabled = gc.isenabled()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        else:
            gc.disable()


@pytest.mark.usefixtures("gc_state")
def test_gc_paused_disables_the_collector_and_enables_it_again() -> None:
    gc.enable()
    with _gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


@pytest.mark.usefixtures("gc_state")
def test_gc_paused_enables_the_collector_again_when_the_body_raises() -> None:
    gc.enable()
    inside: list[bool] = []

    def fail_while_paused() -> None:
        with _gc_paused():
            inside.append(gc.isenabled())
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        fail_while_paused()
    assert inside == [False]
    assert gc.isenabled()


@pytest.mark.usefixtures("gc_state")
def test_gc_paused_leaves_a_disabled_collector_disabled() -> None:
    gc.disable()
    with _gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()
    with pytest.raises(ValueError, match="boom"), _gc_paused():
        raise ValueError("boom")
    assert not gc.isenabled()


# -- the client parses replies only once the requests being written are out -------------------
class ParseOrder:
    """Stands in for ``Pipeline._parsing`` and wraps ``_gc_paused`` (where a reply becomes
    models) to record, for every parse, the requests that were being written when the reply
    got its turn to be parsed, and how many of those were still being written at the parse."""

    def __init__(self, lock: anyio.Lock, transport: LaneTransport) -> None:
        self._lock = lock
        self._transport = transport
        self._pending: frozenset[anyio.Event] = frozenset()
        self.waited: list[int] = []
        self.late: list[int] = []

    async def __aenter__(self) -> None:
        await self._lock.acquire()
        self._pending = frozenset(self._transport._writing)

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()

    @contextmanager
    def parse(self) -> Iterator[None]:
        self.waited.append(len(self._pending))
        self.late.append(len(self._pending & self._transport._writing))
        with _gc_paused():
            yield


async def test_replies_are_parsed_after_the_requests_being_written_are_out(
    emu: Emulator, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu.settings.latency = 0.05  # replies land in bursts, while the next requests leave
    ids = list(emu.cases)[:12]
    async with AsyncMessageCenter(
        client_id="x", client_secret="y", base_url=url, max_concurrency=4, max_ids_per_request=1
    ) as mc:
        transport = mc._pipeline.http._transport
        assert isinstance(transport, LaneTransport)
        order = ParseOrder(mc._pipeline._parsing, transport)
        monkeypatch.setattr(mc._pipeline, "_parsing", order)
        monkeypatch.setattr(_pipeline, "_gc_paused", order.parse)
        result = await mc.get_cases(ids)
        assert transport.busy == transport.writing == 0
    assert [case.id for case in result.resources] == ids
    assert len(order.waited) == 12  # every reply went through the recorded path
    assert any(order.waited)  # some reply got its turn while a request was being written...
    assert order.late == [0] * 12  # ...and was parsed only once that request was out
