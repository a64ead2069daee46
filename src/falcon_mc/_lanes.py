"""The default HTTP transport: HTTP/1.1 connections as independent lanes, spoken with h11.

Why not httpx's own transport (httpcore's pool):

* **Pool churn.** httpcore hands a newly idle HTTP/1.1 connection to every request queued in the
  same pass; all but one of those requests then fail internally with ``ConnectionNotAvailable``
  and queue again, each failure running another pass over every connection (encode/httpcore#1035).
  Here a request takes a lane of its own: a burst of N requests costs N lane hand-outs.
* **CPU.** A bulk ``get_cases`` is bound by the client's CPU: a burst of replies is read one after
  another on one thread. httpcore's HTTP/1.1 connection, with its traces, locks and a cancel
  scope per socket operation, costs about 0.2 ms more per request than the same exchange done
  here with h11 over an anyio stream: the HTTP part of a request of 100 cases took 0.73-0.80 ms
  of client CPU through httpcore, 0.53 ms here, 0.50 ms reading 256 KiB at a time (see
  ``docs/performance.md``).

HTTP/1.1 itself (framing, keep-alive, chunked bodies, protocol errors) is h11's job, as in
httpcore. What this module adds: a lane is one connection at most, opened on demand (TLS with
the shared, verifying context), kept alive for :data:`KEEPALIVE_EXPIRY` seconds and dropped
when the server has closed it, when bytes nobody asked for follow a reply (in h11's buffer,
TLS's or the socket's), or when the event loop run that opened it has ended (a sync wrapper
calling ``asyncio.run`` for each call: closed without that loop); the ``timeout`` (connect,
read, write, pool) and ``trace`` (httpcore's event names) request extensions are honoured;
failures are httpx's exceptions, as httpx's own transport raises them. A request and its
body, when in hand, leave in one write.

The transport also tells when requests are being written (:meth:`LaneTransport.writes_done`), so
that the client can put CPU-heavy work (turning replies into models) after them: a request
written 2 ms earlier gets its reply 2 ms earlier.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.request import getproxies

import anyio
import h11
import httpx
from anyio.abc import ByteStream, SocketAttribute
from anyio.lowlevel import RunVar
from anyio.streams.tls import TLSAttribute, TLSStream

__all__ = ["KEEPALIVE_EXPIRY", "LaneTransport", "default_transport"]

#: Requests with a body up to this size are tracked while being written (a socket buffer takes
#: them at once); larger uploads are not waited for.
_TRACKED_BODY_MAX = 64 * 1024

#: The longest :meth:`LaneTransport.writes_done` waits: small requests are out within
#: milliseconds unless the peer has stopped reading.
_WRITE_WAIT_MAX = 1.0

#: Bytes asked of the socket per read: a reply of 100 cases (about 100 KB) in one read and one
#: chunk through httpx's layers (asyncio itself reads at most 256 KiB at a time).
_READ_SIZE = 256 * 1024

#: The largest reply head (status line and headers) accepted, as httpcore.
_MAX_HEAD = 100 * 1024

#: Seconds an idle connection is kept for reuse (httpx's default ``keepalive_expiry``): servers
#: close idle connections sooner or later, and a request sent just as they do would fail.
KEEPALIVE_EXPIRY = 5.0

Trace = Callable[[str, dict[str, Any]], Awaitable[None]]
Origin = tuple[bytes, str, int]
Timeouts = dict[str, float | None]


def _nothing() -> None:
    pass


def _small(request: httpx.Request) -> bool:
    """Whether the request has no body or a ``Content-Length`` of at most ``_TRACKED_BODY_MAX``."""
    if "Transfer-Encoding" in request.headers:
        return False
    length = request.headers.get("Content-Length")
    if length is None:
        return True
    try:
        return int(length) <= _TRACKED_BODY_MAX
    except ValueError:
        return False


def _origin(url: httpx.URL) -> Origin:
    scheme = url.raw_scheme
    if scheme not in (b"http", b"https"):
        raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol '{url.scheme}://'.")
    host = url.raw_host.decode("ascii")  # IDNA-encoded, IPv6 without brackets
    return scheme, host, url.port or (443 if scheme == b"https" else 80)


def _readable(stream: ByteStream) -> bool:
    """Whether an idle connection's socket has something to read: the server closed it (or sent
    bytes nobody asked for); either way it is not to be reused."""
    try:
        sock: socket.socket = stream.extra(SocketAttribute.raw_socket)  # noqa: S610
    except anyio.TypedAttributeLookupError:
        return True
    if sock.fileno() < 0:
        return True
    if not hasattr(select, "poll"):  # Windows
        return bool(select.select([sock], [], [], 0)[0])
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _tls_leftover(stream: ByteStream) -> bool:
    """Whether TLS holds bytes past the reply: records read from the socket with the reply's
    last one (so no poll of the socket sees them) but not decrypted (so h11 has not seen them
    either). A record that ends the connection (``close_notify``) or does not decrypt counts."""
    tls: ssl.SSLObject | None = stream.extra(TLSAttribute.ssl_object, None)  # noqa: S610
    if tls is None:
        return False
    if tls.pending():
        return True
    try:
        # decrypts what is buffered: session tickets and the like give no data, and the
        # connection is dropped if anything else does
        return bool(tls.read(1))
    except ssl.SSLWantReadError:  # nothing buffered
        return False
    except ssl.SSLError:  # close_notify (SSLZeroReturnError), a broken record...
        return True


#: An object of the event loop run (``asyncio.run``, ``anyio.run``...) in progress: a connection
#: is only good in the run that opened it.
_RUN: RunVar[object] = RunVar("falcon_mc._lanes.run")


def _current_run() -> object:
    """The object of the event loop run in progress (made at its first call in that run)."""
    run = _RUN.get(None)
    if run is None:
        run = object()
        _RUN.set(run)
    return run


def _abandon(stream: ByteStream) -> None:
    """Close ``stream`` without awaiting: opened in an event loop run that has ended (a sync
    wrapper calling ``asyncio.run`` for each call: its ``aclose`` needs that run's loop), or
    when awaiting its closing was interrupted (asyncio's own cancellation, which no shield
    stops)."""
    raw = stream.extra(SocketAttribute.raw_socket, None)  # noqa: S610
    if isinstance(raw, socket.socket):  # trio: the socket itself, which its run no longer watches
        raw.close()
        return
    inner = stream.transport_stream if isinstance(stream, TLSStream) else stream
    transport = getattr(inner, "_transport", None)  # asyncio: anyio's stream over a transport
    if not isinstance(transport, asyncio.Transport):
        return
    try:
        transport.abort()  # its loop closes the socket, should it run again...
    except RuntimeError:  # ...but it is closed (asyncio.run returned): do what it would have
        lost = getattr(transport, "_call_connection_lost", None)  # closes the socket, quietly
        if lost is not None:
            lost(None)


async def _trace(trace: Trace | None, name: str, request: httpx.Request) -> None:
    if trace is not None:
        await trace(name, {"request": request})


class _Lane:
    """One HTTP/1.1 connection at most, opened on demand, and its h11 state."""

    def __init__(self, ssl_context: ssl.SSLContext, closed: Callable[[], bool]) -> None:
        self._ssl_context = ssl_context
        self._closed = closed  # whether the transport was closed: keep no connection open
        self._stream: ByteStream | None = None
        self._origin: Origin | None = None
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
        self._idle_since = 0.0
        self._run: object = None  # the event loop run that opened the connection

    @property
    def connected(self) -> bool:
        """Whether the lane holds an open connection."""
        return self._stream is not None

    def _reusable(self, origin: Origin) -> bool:
        return (
            self._stream is not None
            and origin == self._origin
            and self._run is _current_run()
            and self._h11.our_state is h11.IDLE
            and anyio.current_time() - self._idle_since <= KEEPALIVE_EXPIRY
            and not _readable(self._stream)
        )

    async def _connect(
        self, origin: Origin, limit: float | None, request: httpx.Request, trace: Trace | None
    ) -> ByteStream:
        scheme, host, port = origin
        stream: ByteStream | None = None
        try:
            with anyio.fail_after(limit):
                await _trace(trace, "connection.connect_tcp.started", request)
                stream = await anyio.connect_tcp(host, port)
                await _trace(trace, "connection.connect_tcp.complete", request)
                if scheme == b"https":
                    await _trace(trace, "connection.start_tls.started", request)
                    stream = await TLSStream.wrap(
                        stream, hostname=host, ssl_context=self._ssl_context,
                        standard_compatible=False,
                    )
                    await _trace(trace, "connection.start_tls.complete", request)
        except BaseException as exc:
            if stream is not None:
                with anyio.CancelScope(shield=True):
                    await stream.aclose()
            if isinstance(exc, TimeoutError):
                raise httpx.ConnectTimeout(f"could not connect within {limit}s",
                                           request=request) from exc
            if isinstance(exc, (OSError, anyio.BrokenResourceError, anyio.EndOfStream)):
                # EndOfStream: the server closed during the TLS handshake
                raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
            raise
        self._origin = origin
        self._run = _current_run()
        return stream

    async def exchange(
        self,
        request: httpx.Request,
        origin: Origin,
        timeouts: Timeouts,
        trace: Trace | None,
        written: Callable[[], None],
        release: Callable[[], None],
    ) -> httpx.Response:
        """Send ``request`` and read the reply's head; the body is left to the returned
        response's stream, whose closing calls ``release``. On a failure the caller closes the
        lane and releases it."""
        if self._stream is None or not self._reusable(origin):
            await self.close()
            written()  # opening a connection first: not worth holding other work back for
            self._stream = await self._connect(origin, timeouts.get("connect"), request, trace)
            if self._closed():  # closed while this connection was being opened
                raise httpx.ConnectError("the client was closed", request=request)
        stream = self._stream
        write_error: httpx.WriteError | None = None
        try:
            await self._write(stream, request, timeouts.get("write"), trace, written)
        except httpx.WriteError as exc:
            # the server may have answered (413...) and closed without reading all: read that
            write_error = exc
        finally:
            written()
        try:
            reply = await self._reply_head(timeouts.get("read"), request, trace)
        except httpx.TransportError:
            if write_error is not None:
                raise write_error from None
            raise
        return httpx.Response(
            status_code=reply.status_code,
            headers=reply.headers.raw_items(),
            stream=_Body(self, request, timeouts.get("read"), trace, release),
            extensions={
                "http_version": b"HTTP/" + reply.http_version,
                "reason_phrase": reply.reason,
                "network_stream": stream,
            },
        )

    def _serialize(self, request: httpx.Request, make: Callable[[], h11.Event]) -> bytes:
        """The bytes of the event ``make()`` builds (h11 checks it: header names and values,
        body length against ``Content-Length``)."""
        try:
            data = self._h11.send(make())
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc), request=request) from exc
        return data or b""

    async def _send(
        self, stream: ByteStream, data: bytes, limit: float | None, request: httpx.Request
    ) -> None:
        try:
            with anyio.fail_after(limit):  # None: no deadline
                await stream.send(data)
        except TimeoutError as exc:
            raise httpx.WriteTimeout(f"could not send within {limit}s",
                                     request=request) from exc
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise httpx.WriteError(str(exc) or type(exc).__name__, request=request) from exc

    async def _write(
        self,
        stream: ByteStream,
        request: httpx.Request,
        limit: float | None,
        trace: Trace | None,
        written: Callable[[], None],
    ) -> None:
        """Write ``request``; ``written()`` as soon as its last byte is handed to the socket."""
        try:
            body: bytes | None = request.content
        except httpx.RequestNotRead:  # a streamed body (an upload): sent as it is read
            body = None
        await _trace(trace, "http11.send_request_headers.started", request)
        data = self._serialize(request, lambda: h11.Request(
            method=request.method, target=request.url.raw_path, headers=request.headers.raw
        ))
        if body is not None:
            # the head and the body in one write (one segment, one wake-up of the server), sent
            # between the body's "started" and "complete" events
            if body:
                data += self._serialize(request, lambda: h11.Data(data=body))
            data += self._serialize(request, h11.EndOfMessage)
            await _trace(trace, "http11.send_request_headers.complete", request)
            await _trace(trace, "http11.send_request_body.started", request)
            await self._send(stream, data, limit, request)
            written()
            await _trace(trace, "http11.send_request_body.complete", request)
            return
        await self._send(stream, data, limit, request)
        await _trace(trace, "http11.send_request_headers.complete", request)
        await _trace(trace, "http11.send_request_body.started", request)
        if not isinstance(request.stream, httpx.AsyncByteStream):
            raise TypeError("a request sent through an AsyncClient needs an async body")
        async for chunk in request.stream:
            if chunk:
                data = self._serialize(request, lambda: h11.Data(data=chunk))  # noqa: B023
                await self._send(stream, data, limit, request)
        await self._send(stream, self._serialize(request, h11.EndOfMessage), limit, request)
        written()
        await _trace(trace, "http11.send_request_body.complete", request)

    async def _reply_head(
        self, limit: float | None, request: httpx.Request, trace: Trace | None
    ) -> h11.Response:
        await _trace(trace, "http11.receive_response_headers.started", request)
        while True:
            event = await self.next_event(limit, request)
            if isinstance(event, h11.Response):
                await _trace(trace, "http11.receive_response_headers.complete", request)
                return event
            # an informational reply (100 Continue...): the real one follows

    async def next_event(self, limit: float | None, request: httpx.Request) -> Any:
        """The next h11 event of the reply, reading from the socket as needed (each read
        within ``limit`` seconds, the read timeout)."""
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc), request=request) from exc
            if event is not h11.NEED_DATA:
                return event
            if self._stream is None:  # the transport was closed meanwhile
                raise httpx.ReadError("the connection was closed", request=request)
            try:
                with anyio.fail_after(limit):  # None: no deadline
                    data = await self._stream.receive(_READ_SIZE)
            except anyio.EndOfStream:
                data = b""
            except TimeoutError as exc:
                raise httpx.ReadTimeout(f"no data within {limit}s", request=request) from exc
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
            if not data and self._h11.their_state is h11.SEND_RESPONSE:
                # h11 would only say it "can't handle event type ConnectionClosed"
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                )
            self._h11.receive_data(data)

    async def finish(self) -> None:
        """After a reply: keep the connection for the next request if both sides are done with
        this one, neither asked to close, and nothing came after the reply (bytes nobody asked
        for, or the server's end of stream, in h11's buffer or TLS's); else close it."""
        done = self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE
        leftover, closed = self._h11.trailing_data  # bytes past the reply, or the server's EOF
        if (
            done and not leftover and not closed and not self._closed()
            and self._stream is not None and not _tls_leftover(self._stream)
        ):
            self._h11.start_next_cycle()
            self._idle_since = anyio.current_time()
        else:
            await self.close()

    def _detach(self) -> ByteStream | None:
        """Forget the connection (the caller closes it) and return it, if any."""
        stream, self._stream = self._stream, None
        self._origin = None
        # a new connection starts from a new state machine (nothing buffered, no end of stream)
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
        return stream

    async def close(self) -> None:
        """Close the connection, if open (even when cancelled; at once if another event loop
        run opened it)."""
        stream = self._detach()
        if stream is None:
            return
        if self._run is not _current_run():
            _abandon(stream)
            return
        try:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
        except BaseException:  # asyncio's own cancellation stops even a shielded await
            _abandon(stream)
            raise

    def drop(self) -> None:
        """Close the connection, if open, at once (without awaiting)."""
        stream = self._detach()
        if stream is not None:
            _abandon(stream)


class _Body(httpx.AsyncByteStream):
    """A reply body read from its lane; closing it hands the lane back (once).

    It is its own iterator, not an async generator: one left unfinished (the reader stopped
    early) has nothing to finalize, where trio warns of every async generator the garbage
    collector finalizes. Once closed, it reads no more (the lane may serve another request).
    """

    def __init__(
        self,
        lane: _Lane,
        request: httpx.Request,
        timeout: float | None,
        trace: Trace | None,
        release: Callable[[], None],
    ) -> None:
        self._lane = lane
        self._request = request
        self._timeout = timeout
        self._trace = trace
        self._release: Callable[[], None] | None = release
        self._started = False
        self._ended = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        """The next piece of the body, as it arrives."""
        if self._release is None:
            raise httpx.StreamClosed()
        if not self._started:
            self._started = True
            await _trace(self._trace, "http11.receive_response_body.started", self._request)
        while not self._ended:
            event = await self._lane.next_event(self._timeout, self._request)
            if isinstance(event, h11.Data):
                return bytes(event.data)
            if isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                self._ended = True
                await _trace(self._trace, "http11.receive_response_body.complete", self._request)
        raise StopAsyncIteration

    async def aclose(self) -> None:
        release, self._release = self._release, None
        if release is None:
            return
        try:
            await _trace(self._trace, "http11.response_closed.started", self._request)
            await self._lane.finish()
            await _trace(self._trace, "http11.response_closed.complete", self._request)
        finally:
            release()


class LaneTransport(httpx.AsyncBaseTransport):
    """``lanes`` HTTP/1.1 connections, one request on each at a time, most recently used first.

    A request waits for a free lane at most the request's ``pool`` timeout (then
    ``httpx.PoolTimeout``, as httpx's own pool); a lane is free again once the reply is closed,
    or at once if sending fails or is cancelled (its connection is then closed). All lanes share
    one TLS context (verification on, ``SSL_CERT_FILE``/``SSL_CERT_DIR`` honoured as by httpx).
    """

    def __init__(self, lanes: int) -> None:
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, got {lanes}")
        self.ssl_context = httpx.create_ssl_context()
        self._closed = False
        self.lanes = [_Lane(self.ssl_context, lambda: self._closed) for _ in range(lanes)]
        self._free = self.lanes[::-1]  # pop() takes the most recently released lane
        self._slots = anyio.Semaphore(lanes, fast_acquire=True)
        self._writing: set[anyio.Event] = set()  # one per request being written, set when out

    @property
    def busy(self) -> int:
        """Lanes taken by a request whose reply is not closed yet."""
        return len(self.lanes) - len(self._free)

    @property
    def writing(self) -> int:
        """Requests on a lane whose (small) request is not fully written yet."""
        return len(self._writing)

    @property
    def connections(self) -> int:
        """Open connections (busy or idle)."""
        return sum(lane.connected for lane in self.lanes)

    async def writes_done(self) -> None:
        """Wait until the requests being written now are out (not for later ones: no starving),
        at most ``_WRITE_WAIT_MAX`` seconds (a peer that stops reading cannot hold others up)."""
        if not self._writing:
            return
        with anyio.move_on_after(_WRITE_WAIT_MAX):
            for event in list(self._writing):
                await event.wait()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on a free lane (waiting for one, up to the pool timeout)."""
        origin = _origin(request.url)
        timeouts: Timeouts = request.extensions.get("timeout", {})
        if self._slots.value:  # a lane is free: no timer to set up
            await self._slots.acquire()
        else:
            pool_timeout = timeouts.get("pool")
            try:
                with anyio.fail_after(pool_timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout(
                    f"no free connection within {pool_timeout}s (all {len(self.lanes)} busy)",
                    request=request,
                ) from None
        lane = self._free.pop()

        def release() -> None:
            self._free.append(lane)
            self._slots.release()

        written = self._track_writing(request)
        try:
            return await lane.exchange(
                request, origin, timeouts, request.extensions.get("trace"), written, release
            )
        except BaseException:
            written()
            try:
                await lane.close()
            finally:  # a second (native asyncio) cancellation can stop the closing
                release()
            raise

    def _track_writing(self, request: httpx.Request) -> Callable[[], None]:
        """Count ``request`` as being written until it is out (or opens a connection first);
        returns the (idempotent) function that stops counting it.

        Only small requests are counted: no body, or a ``Content-Length`` up to
        ``_TRACKED_BODY_MAX``; a chunked or larger body may take long to write.
        """
        if not _small(request):
            return _nothing
        event = anyio.Event()
        self._writing.add(event)

        def written() -> None:
            self._writing.discard(event)
            event.set()

        return written

    async def aclose(self) -> None:
        """Close every lane's connection; replies being read close theirs when done, and a
        connection being opened is closed once open. Interrupted (asyncio's own cancellation,
        which no shield stops), the connections not closed yet are closed at once."""
        self._closed = True
        try:
            for lane in self.lanes:
                await lane.close()
        finally:
            for lane in self.lanes:
                lane.drop()


def default_transport(max_connections: int, *, http2: bool) -> LaneTransport | None:
    """The transport a client builds when none is passed; ``None`` leaves it to httpx.

    HTTP/1.1 gets :class:`LaneTransport`. httpx keeps its own pool for HTTP/2 (one multiplexed
    connection) and when a proxy is configured in the environment (``HTTPS_PROXY``,
    ``HTTP_PROXY``, ``ALL_PROXY``): httpx only honours those when it builds the transport itself.
    """
    if http2 or any(getproxies().get(scheme) for scheme in ("http", "https", "all")):
        return None
    return LaneTransport(max_connections)
