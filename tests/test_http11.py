"""HTTP/1.1 as :class:`~falcon_mc._lanes.LaneTransport` speaks it (with h11, over anyio streams).

Keep-alive, reply framing, the request bytes on the wire and the mapping of failures to httpx's
exceptions, against small scripted servers on loopback (test_lanes covers the lanes themselves:
pool, write tracking, traces).

The servers work on raw non-blocking sockets (``anyio.wait_readable``) rather than anyio's socket
streams, which read ahead on their own: a server here reads exactly when its script says so, so
"a server that never reads" fills the socket buffers, and what the client has put on the wire
and nobody has read yet can be peeked at. Over TLS (``serve(..., tls=ca)``, a certificate from
the tests' own authority) the socket is an :class:`ssl.SSLSocket`: each send is a TLS record.

Nothing sleeps to measure time; every test runs within ``DEADLINE`` seconds or fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import httpx
import pytest
import trustme
from anyio.abc import TaskGroup

from falcon_mc import AsyncMessageCenter, InternalServerError, _lanes
from falcon_mc._lanes import LaneTransport

DEADLINE = 5  # no test waits longer: a wait that must end and does not fails the test
SHORT = httpx.Timeout(DEADLINE, connect=0.2, read=0.2, write=0.2)  # for the timeout cases
MiB = 1024 * 1024
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
STALE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale"
HALF = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf"  # the rest never comes
CLOSE_FRAMED_10 = b"HTTP/1.0 200 OK\r\n\r\nuntil the end"  # no Content-Length: ends at EOF
CLOSE_FRAMED_11 = b"HTTP/1.1 200 OK\r\n\r\nuntil the end"


# -- scripted servers -------------------------------------------------------------------------
class Peer:
    """The server's end of one accepted connection: a raw non-blocking socket, read only when
    the script asks, and a record of what was read."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received = bytearray()  # every byte read, in order
        self.reads: list[bytes] = []  # what each read returned
        self.requests: list[bytes] = []  # the whole requests read by read_request
        self.done = anyio.Event()  # set once the server has closed the connection
        self._unparsed = bytearray()

    def _decrypted(self) -> int:
        """Bytes TLS has decrypted and not handed out yet (no socket read needed for them)."""
        return self.sock.pending() if isinstance(self.sock, ssl.SSLSocket) else 0

    async def handshake(self) -> None:
        """The server's side of the TLS handshake."""
        assert isinstance(self.sock, ssl.SSLSocket)
        while True:
            try:
                self.sock.do_handshake()
                return
            except ssl.SSLWantReadError:
                await anyio.wait_readable(self.sock)
            except ssl.SSLWantWriteError:
                await anyio.wait_writable(self.sock)

    async def receive(self) -> bytes:
        """What arrives next (b"" when the client has closed or reset the connection)."""
        while True:
            if not self._decrypted():
                await anyio.wait_readable(self.sock)
            try:
                data = self.sock.recv(256 * 1024)
            except (BlockingIOError, ssl.SSLWantReadError):
                continue
            except ConnectionResetError:
                data = b""
            self.reads.append(data)
            self.received += data
            self._unparsed += data
            return data

    def peek(self) -> bytes:
        """What the client has sent and nobody has read yet (left unread)."""
        if self.sock.fileno() < 0:
            return b""
        try:
            return self.sock.recv(256 * 1024, socket.MSG_PEEK)
        except BlockingIOError:
            return b""

    async def _until(self, pattern: bytes, start: int) -> int | None:
        """Where ``pattern`` ends in the unparsed bytes, reading as needed (None at EOF)."""
        while (found := self._unparsed.find(pattern, start)) < 0:
            if not await self.receive():
                return None
        return found + len(pattern)

    async def read_request(self) -> bytes | None:
        """Read one whole request (its body framed by Content-Length or chunked); its bytes,
        or None when the client closes first."""
        end = await self._until(b"\r\n\r\n", 0)
        if end is None:
            return None
        head = bytes(self._unparsed[:end]).lower()
        if b"\r\ntransfer-encoding: chunked\r\n" in head:
            end = await self._until(b"0\r\n\r\n", end)
        elif length := re.search(rb"\r\ncontent-length: *(\d+)\r\n", head):
            end += int(length[1])
            while len(self._unparsed) < end:
                if not await self.receive():
                    return None
        if end is None:
            return None
        request = bytes(self._unparsed[:end])
        del self._unparsed[:end]
        self.requests.append(request)
        return request

    async def drain(self) -> None:
        """Read until the client closes the connection."""
        while await self.receive():
            pass

    async def send(self, data: bytes) -> None:
        """Send ``data``, returning without a pause when the socket buffer takes it all (two
        sends in a row then reach the client together)."""
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view):]
            except (BlockingIOError, ssl.SSLWantWriteError):
                await anyio.wait_writable(self.sock)

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            anyio.notify_closing(self.sock)
            self.sock.close()

    def reset(self) -> None:
        """Close with a TCP reset (RST) instead of an orderly shutdown (FIN)."""
        if self.sock.fileno() >= 0:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()


Handler = Callable[[Peer], Awaitable[None]]


class Server:
    """Accepts connections on loopback (over TLS with ``tls``); the nth is handled by
    ``handlers[n]`` (the last handler takes any further one) and closed when its handler
    returns."""

    def __init__(
        self, listener: socket.socket, handlers: tuple[Handler, ...], tls: ssl.SSLContext | None
    ) -> None:
        self._listener = listener
        self._handlers = handlers
        self._tls = tls
        self.port: int = listener.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.peers: list[Peer] = []
        self._accepted = anyio.Event()

    async def peer(self, index: int) -> Peer:
        """The ``index``th connection accepted (waiting for it)."""
        while len(self.peers) <= index:
            await self._accepted.wait()
        return self.peers[index]

    async def accept(self, tg: TaskGroup) -> None:
        while True:
            await anyio.wait_readable(self._listener)
            try:
                sock, _ = self._listener.accept()
            except BlockingIOError:
                continue
            sock.setblocking(False)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            peer = Peer(sock)
            self.peers.append(peer)
            self._accepted.set()
            self._accepted = anyio.Event()
            handler = self._handlers[min(len(self.peers), len(self._handlers)) - 1]
            tg.start_soon(self._handle, handler, peer)

    async def _handle(self, handler: Handler, peer: Peer) -> None:
        try:
            if self._tls is not None:
                await peer.handshake()
            await handler(peer)
        except (OSError, anyio.ClosedResourceError):  # the client went away, or the test
            pass  # closed the connection itself: the script ends there
        finally:
            peer.close()
            peer.done.set()


@asynccontextmanager
async def serve(
    transport: LaneTransport, *handlers: Handler, tls: trustme.CA | None = None
) -> AsyncIterator[tuple[Server, httpx.AsyncClient]]:
    """A :class:`Server` running ``handlers`` and a client for it over ``transport``, all of it
    within ``DEADLINE`` seconds. An exception of the test comes out as is, not in a group.

    With ``tls``, the server speaks TLS with a certificate from that authority, which the
    transport is made to trust."""
    error: Exception | None = None
    context: ssl.SSLContext | None = None
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.issue_cert("127.0.0.1").configure_cert(context)
        tls.configure_trust(transport.ssl_context)
    with anyio.fail_after(DEADLINE), socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        server = Server(listener, handlers, context)
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.accept, tg)
            try:
                async with httpx.AsyncClient(transport=transport, base_url=server.url) as client:
                    yield server, client
            except Exception as exc:
                error = exc
            tg.cancel_scope.cancel()
    if error is not None:
        raise error


def answer(reply: bytes, *, requests: int | None = None) -> Handler:
    """Answer each request with ``reply`` (no bytes: no answer); after ``requests`` of them,
    close, else go on until the client closes."""

    async def handle(peer: Peer) -> None:
        count = 0
        while count != requests and await peer.read_request() is not None:
            await peer.send(reply)
            count += 1

    return handle


stalls = answer(b"")  # reads the request, never answers, waits for the client to close


def early(reply: bytes) -> Handler:
    """Send ``reply`` once the first bytes arrive, and close without reading the rest."""

    async def handle(peer: Peer) -> None:
        await peer.receive()
        await peer.send(reply)

    return handle


async def deaf(peer: Peer) -> None:
    """Never read anything."""
    await anyio.sleep_forever()


async def resets(peer: Peer) -> None:
    """Reset the connection once the first bytes arrive."""
    await peer.receive()
    peer.reset()


async def hangs_up(peer: Peer) -> None:
    """Shut its side down (FIN) once the first bytes arrive; wait for the client to close."""
    await peer.receive()
    peer.sock.shutdown(socket.SHUT_WR)
    await peer.drain()


def answer_then(reply: bytes, stray: bytes) -> Handler:
    """Answer the first request with ``reply`` and at once ``stray`` (over TLS, a record of its
    own): both are in the client's socket buffer before it reads. Then answer ``OK``."""

    async def handle(peer: Peer) -> None:
        if await peer.read_request() is not None:
            await peer.send(reply)
            await peer.send(stray)
            await answer(OK)(peer)

    return handle


# -- the client side --------------------------------------------------------------------------
@pytest.fixture
def transport() -> LaneTransport:
    return LaneTransport(1)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """The tests' own certificate authority."""
    return trustme.CA()


@pytest.fixture(params=[False, True], ids=["http", "https"])
def tls(request: pytest.FixtureRequest, ca: trustme.CA) -> trustme.CA | None:
    """For a test run over plain HTTP and over TLS: the ``tls`` argument of :func:`serve`."""
    return ca if request.param else None


def streamed(*chunks: bytes) -> AsyncIterator[bytes]:
    """A request body read as it is sent."""

    async def chunked() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    return chunked()


def upload(size: int = 64 * MiB) -> AsyncIterator[bytes]:
    """A streamed body far larger than the socket buffers."""
    return streamed(*[bytes(MiB)] * (size // MiB))


def stop_at(event: str, reached: anyio.Event) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """A trace callback that sets ``reached`` at httpcore's ``event``."""

    async def trace(name: str, info: dict[str, Any]) -> None:
        if name == event:
            reached.set()

    return trace


def assert_released(transport: LaneTransport) -> None:
    """The lane is free again and holds no connection."""
    assert transport.busy == 0
    assert transport.connections == 0


# -- keep-alive -------------------------------------------------------------------------------
async def test_sequential_requests_share_one_connection(
    transport: LaneTransport, tls: trustme.CA | None
) -> None:
    async with serve(transport, answer(OK), tls=tls) as (server, client):
        for _ in range(3):
            assert (await client.get("/")).content == b"ok"
        assert len(server.peers) == 1
        assert len(server.peers[0].requests) == 3
        assert transport.connections == 1
        assert transport.busy == 0


@pytest.mark.parametrize(
    ("reply", "headers", "version"),
    [
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", {}, "HTTP/1.1"),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", {}, "HTTP/1.0"),
        (OK, {"Connection": "close"}, "HTTP/1.1"),
    ],
    ids=["server-connection-close", "server-http-1.0", "client-connection-close"],
)
async def test_a_connection_to_be_closed_is_closed_after_its_reply(
    transport: LaneTransport, reply: bytes, headers: dict[str, str], version: str
) -> None:
    """The server leaves the closing to the client: it waits for another request."""
    async with serve(transport, answer(reply)) as (server, client):
        first = await client.get("/", headers=headers)
        assert (first.content, first.http_version) == (b"ok", version)
        assert transport.connections == 0
        await server.peers[0].done.wait()  # the client closed it
        assert (await client.get("/")).content == b"ok"
        assert len(server.peers) == 2
        assert transport.busy == 0


async def closes_it(peer: Peer) -> None:
    peer.close()


async def resets_it(peer: Peer) -> None:
    peer.reset()


async def writes_on_it(peer: Peer) -> None:
    await peer.send(STALE)


@pytest.mark.parametrize(
    "meanwhile", [closes_it, resets_it, writes_on_it], ids=["closed", "reset", "stray-bytes"]
)
async def test_an_idle_connection_the_server_closed_or_wrote_on_is_not_reused(
    transport: LaneTransport, meanwhile: Handler
) -> None:
    async with serve(transport, answer(OK)) as (server, client):
        await client.get("/")
        await meanwhile(server.peers[0])  # while the connection is idle in the lane
        assert (await client.get("/")).content == b"ok"  # no error: a new connection
        assert len(server.peers) == 2
        await server.peers[0].done.wait()
        assert transport.connections == 1


async def test_an_idle_connection_past_the_keepalive_expiry_is_not_reused(
    transport: LaneTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_lanes, "KEEPALIVE_EXPIRY", -1.0)  # expired as soon as idle
    async with serve(transport, answer(OK)) as (server, client):
        await client.get("/")
        assert transport.connections == 1  # kept until the next request finds it expired
        await client.get("/")
        assert len(server.peers) == 2
        await server.peers[0].done.wait()  # the expired one was closed, not left open
        assert transport.connections == 1


async def test_a_request_to_another_origin_does_not_take_the_idle_connection(
    transport: LaneTransport,
) -> None:
    async with (
        serve(transport, answer(OK)) as (first, client),
        serve(LaneTransport(1), answer(OK)) as (second, _),
    ):
        await client.get("/")
        await client.get(f"{second.url}/")
        assert (len(first.peers), len(second.peers)) == (1, 1)
        await first.peers[0].done.wait()  # one lane, one connection: the first one closed
        assert transport.connections == 1


@pytest.mark.parametrize(
    ("method", "handler", "closed"),
    [
        ("GET", answer(OK + STALE), False),
        ("HEAD", answer(OK), False),  # a body to a HEAD: bytes past the reply
        ("GET", answer(OK + STALE, requests=1), True),
        ("GET", answer(CLOSE_FRAMED_11, requests=1), True),
        ("GET", answer(CLOSE_FRAMED_10, requests=1), True),
    ],
    ids=[
        "stray-reply", "body-to-head", "stray-reply-then-close", "http-1.1-close-framed",
        "http-1.0-close-framed",
    ],
)
async def test_the_next_request_gets_its_own_reply_on_a_fresh_connection(
    transport: LaneTransport, method: str, handler: Handler, closed: bool
) -> None:
    """Nothing of a connection that ended, or holds bytes nobody asked for, reaches the next
    request: it gets a connection of its own, and its own reply."""
    async with serve(transport, handler, answer(OK)) as (server, client):
        await client.request(method, "/")
        if closed:
            await server.peers[0].done.wait()
        assert (await client.get("/")).content == b"ok"
        assert len(server.peers) == 2
        assert len(server.peers[1].requests) == 1


@pytest.mark.parametrize(
    ("reply", "stray"),
    [(OK, STALE), (b"HTTP/1.1 204 No Content\r\n\r\n", b'{"resources": []}')],
    ids=["stray-reply", "body-to-204"],
)
async def test_bytes_right_after_a_reply_keep_its_connection_from_the_next_request(
    transport: LaneTransport, tls: trustme.CA | None, reply: bytes, stray: bytes
) -> None:
    """Over TLS they are read from the socket with the reply, still to be decrypted: neither
    h11 nor a poll of the socket sees them, the TLS layer does."""
    async with serve(transport, answer_then(reply, stray), answer(OK), tls=tls) as (server, client):
        await client.get("/")
        assert (await client.get("/")).content == b"ok"
        assert len(server.peers) == 2
        assert len(server.peers[1].requests) == 1


# -- reply framing ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reply", "content", "kept"),
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n7;note=x\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n",
            b"hello, world",
            True,
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % MiB + b"z" * MiB, b"z" * MiB, True),
        (CLOSE_FRAMED_10, b"until the end", False),
        (CLOSE_FRAMED_11, b"until the end", False),
    ],
    ids=["chunked", "content-length-1MiB", "http-1.0-close-framed", "http-1.1-close-framed"],
)
async def test_a_reply_body_is_read_in_full_however_it_is_framed(
    transport: LaneTransport, reply: bytes, content: bytes, kept: bool
) -> None:
    async with serve(transport, answer(reply, requests=None if kept else 1)) as (server, client):
        assert (await client.get("/")).content == content
        assert transport.busy == 0
        if kept:  # and the connection serves the next request
            assert (await client.get("/")).content == content
            assert len(server.peers) == 1


@pytest.mark.parametrize(
    "reply",
    [
        CLOSE_FRAMED_10,
        CLOSE_FRAMED_11,
    ],
    ids=["http-1.0", "http-1.1"],
)
async def test_a_close_framed_reply_leaves_no_connection_open(
    transport: LaneTransport, reply: bytes
) -> None:
    async with serve(transport, answer(reply, requests=1)) as (server, client):
        assert (await client.get("/")).content == b"until the end"
        await server.peers[0].done.wait()
        assert transport.connections == 0


@pytest.mark.parametrize(
    "interim",
    [
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 100 Continue\r\n\r\n",
    ],
    ids=["100", "103-then-100"],
)
async def test_informational_replies_are_skipped(transport: LaneTransport, interim: bytes) -> None:
    async with serve(transport, answer(interim + OK)) as (server, client):
        for _ in range(2):  # and the connection is fit for the next request
            reply = await client.get("/")
            assert (reply.status_code, reply.content) == (200, b"ok")
        assert len(server.peers) == 1


@pytest.mark.parametrize(
    ("method", "reply"),
    [
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"),
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n"),
    ],
    ids=["head", "204", "304"],
)
async def test_a_reply_without_a_body_is_not_waited_for(
    transport: LaneTransport, method: str, reply: bytes
) -> None:
    async with serve(transport, answer(reply)) as (server, client):
        for _ in range(2):
            assert (await client.request(method, "/")).content == b""
        assert len(server.peers) == 1


async def test_the_reply_status_version_reason_and_headers_are_as_sent(
    transport: LaneTransport,
) -> None:
    reply = (
        b"HTTP/1.1 299 Quite Custom\r\nSet-Cookie: a=1\r\nX-Case: MiXeD\r\n"
        b"Set-Cookie: b=2\r\nContent-Length: 2\r\n\r\nok"
    )
    async with serve(transport, answer(reply)) as (_, client):
        got = await client.get("/")
    assert got.status_code == 299
    assert got.reason_phrase == "Quite Custom"
    assert got.http_version == "HTTP/1.1"
    assert got.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert got.headers.raw == [
        (b"Set-Cookie", b"a=1"),
        (b"X-Case", b"MiXeD"),
        (b"Set-Cookie", b"b=2"),
        (b"Content-Length", b"2"),
    ]


# -- the request on the wire ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "content", "headers", "wire"),
    [
        ("GET", None, {}, b"\r\n"),
        (
            "POST", b'{"ids": ["a"]}', {"X-Token": "t0k"},
            b'X-Token: t0k\r\nContent-Length: 14\r\n\r\n{"ids": ["a"]}',
        ),
        (
            "POST", (b"hello", b"", b" world"), {"Content-Length": "11"},
            b"Content-Length: 11\r\n\r\nhello world",
        ),
        (
            "POST", (b"hello", b"", b" world"), {},
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        ),
    ],
    ids=["no-body", "bytes", "streamed-with-length", "streamed-chunked"],
)
async def test_a_request_arrives_as_exactly_these_bytes(
    transport: LaneTransport,
    method: str,
    content: bytes | tuple[bytes, ...] | None,
    headers: dict[str, str],
    wire: bytes,
) -> None:
    """``wire``: what follows the request line and Host."""
    async with serve(transport, answer(OK)) as (server, client):
        body = streamed(*content) if isinstance(content, tuple) else content
        url = f"{server.url}/cases?ids=a%20b&ids=c"
        await client.send(httpx.Request(method, url, headers=headers, content=body))  # as built
        start = f"{method} /cases?ids=a%20b&ids=c HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        assert server.peers[0].requests == [start.encode() + wire]
        assert server.peers[0].received == start.encode() + wire


@pytest.mark.parametrize(("method", "content"), [("GET", None), ("PUT", b"x" * 1000)])
async def test_a_request_in_hand_leaves_in_one_write(
    transport: LaneTransport, method: str, content: bytes | None
) -> None:
    """When the body starts being sent the head is not on the wire yet: head and body leave
    together, and the server gets them in one read."""
    on_the_wire: list[bytes] = []
    async with serve(transport, answer(OK)) as (server, client):

        async def trace(name: str, info: dict[str, Any]) -> None:
            if name == "http11.send_request_body.started":
                peer = await server.peer(0)
                on_the_wire.append(bytes(peer.received) + peer.peek())

        extensions = {"trace": trace}
        await client.send(httpx.Request(method, server.url, content=content, extensions=extensions))
        peer = server.peers[0]
    assert on_the_wire == [b""]
    assert len(peer.requests) == 1
    assert peer.requests[0].endswith(content or b"\r\n\r\n")
    assert peer.reads[0] == peer.requests[0]


# -- failures ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("handler", "error"),
    [
        (answer(b"", requests=1), httpx.RemoteProtocolError),
        (answer(b"garbage\r\n\r\n"), httpx.RemoteProtocolError),
        (answer(b"HTTP/1.1 200 OK\r\nX-Big: " + b"x" * 200 * 1024), httpx.RemoteProtocolError),
        (answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
         httpx.RemoteProtocolError),
        (resets, httpx.ReadError),
        (stalls, httpx.ReadTimeout),
    ],
    ids=[
        "closed-without-reply", "garbage-status-line", "head-past-100KiB", "bad-chunk-size",
        "reset", "no-reply-in-time",
    ],
)
async def test_a_failed_reply_raises_and_frees_the_lane_closed(
    transport: LaneTransport, handler: Handler, error: type[httpx.TransportError]
) -> None:
    async with serve(transport, handler, answer(OK)) as (server, client):
        with pytest.raises(error):
            await client.get("/", timeout=SHORT)
        assert_released(transport)
        await server.peers[0].done.wait()
        assert (await client.get("/")).content == b"ok"  # on a new connection
        assert len(server.peers) == 2


@pytest.mark.parametrize(
    "sent",
    [b"", b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Le"],
    ids=["nothing", "an-interim-reply", "part-of-the-head"],
)
async def test_a_server_closing_before_its_reply_is_said_to_have(
    transport: LaneTransport, sent: bytes
) -> None:
    """As httpx's own transport says it (h11 would say it "can't handle event type
    ConnectionClosed when role=SERVER and state=SEND_RESPONSE")."""
    async with serve(transport, answer(sent, requests=1)) as (_, client):
        with pytest.raises(
            httpx.RemoteProtocolError, match=r"^Server disconnected without sending a response\.$"
        ):
            await client.get("/")
        assert_released(transport)


async def test_a_body_short_of_its_content_length_fails_once_the_head_is_in(
    transport: LaneTransport,
) -> None:
    async with serve(transport, answer(HALF, requests=1), answer(OK)) as (server, client):
        async with client.stream("GET", "/") as reply:
            assert reply.status_code == 200
            with pytest.raises(httpx.RemoteProtocolError):
                await reply.aread()
        assert_released(transport)
        assert (await client.get("/")).content == b"ok"
        assert len(server.peers) == 2


@pytest.mark.parametrize("length", ["3", "10"], ids=["more-than-declared", "less-than-declared"])
async def test_a_streamed_body_that_breaks_its_content_length_is_refused(
    transport: LaneTransport, length: str
) -> None:
    async with serve(transport, stalls) as (server, client):
        with pytest.raises(httpx.LocalProtocolError):
            await client.post("/", content=streamed(b"hello"), headers={"Content-Length": length})
        assert_released(transport)
        await server.peers[0].done.wait()


async def test_a_header_with_a_line_break_is_refused_and_nothing_is_sent(
    transport: LaneTransport,
) -> None:
    async with serve(transport, answer(OK)) as (server, client):
        with pytest.raises(httpx.LocalProtocolError):
            await client.get("/", headers={"X-Note": "a\r\nX-Injected: 1"})
        assert_released(transport)
        peer = await server.peer(0)
        await peer.done.wait()
        assert peer.received == b""


@pytest.mark.parametrize(
    ("handler", "error"), [(deaf, httpx.WriteTimeout), (resets, httpx.WriteError)],
    ids=["server-not-reading", "reset"],
)
async def test_a_failed_upload_raises_and_frees_the_lane_closed(
    transport: LaneTransport, handler: Handler, error: type[httpx.TransportError]
) -> None:
    async with serve(transport, handler) as (_, client):
        with pytest.raises(error):
            await client.post("/", content=upload(), timeout=SHORT)
        assert_released(transport)


@pytest.mark.xfail(
    strict=True,
    raises=httpx.WriteError,
    reason="on asyncio a failed write makes the transport close the socket at once "
    "(_SelectorSocketTransport._force_close), dropping the reply the server sent before "
    "closing (reading is paused while the upload is sent): the read after a WriteError finds "
    "nothing",
)
async def test_a_reply_sent_before_the_upload_was_read_is_returned(
    transport: LaneTransport,
) -> None:
    too_large = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\n\r\ntoo large"
    async with serve(transport, early(too_large)) as (_, client):
        headers = {"Content-Length": str(64 * MiB)}
        reply = await client.post("/", content=upload(), headers=headers)
        assert (reply.status_code, reply.content) == (413, b"too large")
        assert_released(transport)


async def test_an_unsupported_scheme_is_refused(transport: LaneTransport) -> None:
    with pytest.raises(httpx.UnsupportedProtocol):
        await transport.handle_async_request(httpx.Request("GET", "ftp://127.0.0.1/file"))
    assert_released(transport)


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        (resets, httpx.ConnectError),
        (early(OK), httpx.ConnectError),
        (hangs_up, httpx.ConnectError),
        (deaf, httpx.ConnectTimeout),
    ],
    ids=["reset", "plain-http-reply", "closed", "no-handshake-in-time"],
)
async def test_a_failed_tls_handshake_raises_and_frees_the_lane(
    transport: LaneTransport, handler: Handler, error: type[httpx.TransportError]
) -> None:
    async with serve(transport, handler) as (server, client):
        with pytest.raises(error):
            await client.get(server.url.replace("http://", "https://"), timeout=SHORT)
        assert_released(transport)
        peer = await server.peer(0)
        assert (peer.received + peer.peek()).startswith(b"\x16\x03")  # a TLS handshake began


# -- cancellation -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("handler", "event"),
    [
        (stalls, "http11.receive_response_headers.started"),
        (answer(HALF), "http11.receive_response_body.started"),
    ],
    ids=["waiting-for-the-head", "reading-the-body"],
)
async def test_a_request_cancelled_while_waiting_for_its_reply_frees_the_lane_closed(
    transport: LaneTransport, handler: Handler, event: str
) -> None:
    reached = anyio.Event()
    async with serve(transport, handler, answer(OK)) as (server, client):
        async with anyio.create_task_group() as tg:
            extensions = {"trace": stop_at(event, reached)}
            tg.start_soon(partial(client.get, "/", extensions=extensions))
            await reached.wait()
            tg.cancel_scope.cancel()
        assert_released(transport)
        await server.peers[0].done.wait()  # the connection was really closed
        assert (await client.get("/")).content == b"ok"
        assert len(server.peers) == 2


async def test_a_request_cancelled_again_while_its_connection_closes_frees_the_lane(
    transport: LaneTransport,
) -> None:
    """asyncio's own cancellation (``Task.cancel``, as ``asyncio.timeout`` uses) goes through a
    shielded scope: a second one lands while the first one's connection is being closed."""
    reached = anyio.Event()
    async with serve(transport, stalls, answer(OK)) as (server, client):
        extensions = {"trace": stop_at("http11.receive_response_headers.started", reached)}
        task = asyncio.create_task(client.get("/", extensions=extensions))
        await reached.wait()
        while not task.done():  # cancelled at each step: waiting for the reply, then closing
            task.cancel()
            await asyncio.sleep(0)
        assert task.cancelled()
        assert_released(transport)
        assert (await client.get("/")).content == b"ok"
        assert len(server.peers) == 2


async def test_closing_the_transport_while_a_body_is_read_raises_a_read_error(
    transport: LaneTransport,
) -> None:
    """As httpx's own transport: the client closed (at shutdown, by another task) under a
    reply whose body is still coming."""
    async with serve(transport, answer(HALF)) as (server, client):
        async with client.stream("GET", "/") as reply:
            await transport.aclose()
            with pytest.raises(httpx.ReadError):
                await reply.aread()
        assert_released(transport)
        await server.peers[0].done.wait()


async def test_a_reply_closed_before_its_body_was_read_closes_its_connection(
    transport: LaneTransport,
) -> None:
    async with serve(transport, answer(HALF), answer(OK)) as (server, client):
        async with client.stream("GET", "/") as reply:
            assert reply.status_code == 200
            assert transport.busy == 1
        assert_released(transport)
        await server.peers[0].done.wait()
        assert (await client.get("/")).content == b"ok"


# -- through the client -----------------------------------------------------------------------------


async def test_an_error_reply_is_read_no_further_than_a_megabyte(transport: LaneTransport) -> None:
    """A 500 with a 64 MiB body (a proxy's page, a misbehaving server) was read whole into
    memory, on every retry; the client reads its first MiB and drops the connection."""
    sent = 0
    token = b'{"access_token": "t", "expires_in": 1799}'

    async def handle(peer: Peer) -> None:
        nonlocal sent
        while (request := await peer.read_request()) is not None:
            if b"/oauth2/" in request.split(b"\r\n", 1)[0]:
                await peer.send(b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%s"
                                % (len(token), token))
                continue
            size = 64 * 1024 * 1024
            await peer.send(b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n" % size)
            block = b"x" * (1024 * 1024)
            with contextlib.suppress(OSError):
                while sent < size:
                    await peer.send(block)
                    sent += len(block)
            return

    async with serve(transport, handle) as (server, _):
        mc = AsyncMessageCenter(client_id="a", client_secret="b", base_url=server.url,
                                transport=transport, max_retries=0)
        with pytest.raises(InternalServerError, match="HTTP 500: Oops"):
            await mc.query_cases()
        await server.peers[-1].done.wait()
    assert sent < 32 * 1024 * 1024  # what the sockets' buffers took, not the whole body


async def test_a_connection_opened_after_the_transport_closed_is_not_kept(
    transport: LaneTransport, ca: trustme.CA
) -> None:
    """``aclose()`` while a TLS handshake is under way: the connection came up afterwards and
    was kept alive, its socket open for good."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.configure_trust(transport.ssl_context)
    failures: list[Exception] = []

    async def get(client: httpx.AsyncClient) -> None:
        try:
            await client.get("/")
        except httpx.ConnectError as exc:
            failures.append(exc)

    with anyio.fail_after(DEADLINE), socket.create_server(("127.0.0.1", 0)) as listener:
        url = f"https://127.0.0.1:{listener.getsockname()[1]}"
        client = httpx.AsyncClient(transport=transport, base_url=url)
        async with anyio.create_task_group() as tg:
            tg.start_soon(get, client)
            await anyio.wait_all_tasks_blocked()  # connected, waiting for the server's hello
            await transport.aclose()
            sock, _ = listener.accept()  # only now does the server take the connection
            sock.setblocking(False)
            peer = Peer(context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False))
            with contextlib.suppress(OSError):
                await peer.handshake()
                if await peer.read_request() is not None:
                    await peer.send(OK)
        peer.close()
    assert [str(e) for e in failures] == ["the client was closed"]
    assert transport.connections == 0
