"""The default HTTP transport: HTTP/1.1 connections as independent lanes.

httpcore's pool hands a newly idle HTTP/1.1 connection to every request queued in the same pass;
all but one of those requests then fail internally with ``ConnectionNotAvailable`` and queue
again, each failure running another pass over every connection (encode/httpcore#1035). Under
the bursts a bulk ``get_cases`` makes (16 requests leaving at once), that churn cost more CPU than
reading the replies. Here each lane is an ``httpx.AsyncHTTPTransport`` limited to one connection,
and a request takes a lane of its own: a burst of N requests costs N lane hand-outs.

The transport also tells when requests are being written (:meth:`LaneTransport.writes_done`), so
that the client can put CPU-heavy work (turning replies into models) after them: a request
written 2 ms earlier gets its reply 2 ms earlier.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.request import getproxies

import anyio
import httpx

__all__ = ["LaneTransport", "default_transport"]

#: Requests with a body up to this size are tracked while being written (a socket buffer takes
#: them at once); larger uploads are not waited for.
_TRACKED_BODY_MAX = 64 * 1024

#: The longest :meth:`LaneTransport.writes_done` waits: small requests are out within
#: milliseconds unless the peer has stopped reading.
_WRITE_WAIT_MAX = 1.0

#: httpcore trace events after which a request no longer counts as being written: its body is
#: out, or it is opening a connection first (not worth holding other work back for). Lanes speak
#: HTTP/1.1 only.
_WRITE_OVER = frozenset({"http11.send_request_body.complete", "connection.connect_tcp.started"})

Trace = Callable[[str, dict[str, Any]], Awaitable[None]]


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


class _LaneStream(httpx.AsyncByteStream):
    """A reply body that gives its lane back when it is closed (once)."""

    def __init__(self, inner: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._inner = inner
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


class LaneTransport(httpx.AsyncBaseTransport):
    """``lanes`` HTTP/1.1 connections, one request on each at a time, most recently used first.

    A request waits for a free lane at most the request's ``pool`` timeout (then
    ``httpx.PoolTimeout``, as httpx's own pool); a lane is free again once the reply is closed,
    or at once if sending fails or is cancelled. All lanes share one TLS context (verification
    on, ``SSL_CERT_FILE``/``SSL_CERT_DIR`` honoured as by httpx).
    """

    def __init__(self, lanes: int) -> None:
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, got {lanes}")
        self.ssl_context = httpx.create_ssl_context()
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self.lanes = [
            httpx.AsyncHTTPTransport(verify=self.ssl_context, limits=one) for _ in range(lanes)
        ]
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
        pool_timeout = request.extensions.get("timeout", {}).get("pool")
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

        outer_trace = request.extensions.get("trace")
        written: Callable[[], None] = _nothing
        try:
            written = self._track_writing(request, outer_trace)
            response = await lane.handle_async_request(request)
        except BaseException:
            release()
            raise
        finally:
            written()
            if outer_trace is None:
                request.extensions.pop("trace", None)
            else:
                request.extensions["trace"] = outer_trace
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_LaneStream(response.stream, release),
            extensions=response.extensions,
        )

    def _track_writing(self, request: httpx.Request, outer: Trace | None) -> Callable[[], None]:
        """Count ``request`` as being written until httpcore reports it out (or it opens a
        connection first); returns the (idempotent) function that stops counting it.

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

        async def trace(name: str, info: dict[str, Any]) -> None:
            if name in _WRITE_OVER:
                written()
            if outer is not None:
                await outer(name, info)

        request.extensions["trace"] = trace
        return written

    async def aclose(self) -> None:
        """Close every lane's connection."""
        for lane in self.lanes:
            await lane.aclose()


def default_transport(max_connections: int, *, http2: bool) -> LaneTransport | None:
    """The transport a client builds when none is passed; ``None`` leaves it to httpx.

    HTTP/1.1 gets :class:`LaneTransport`. httpx keeps its own pool for HTTP/2 (one multiplexed
    connection) and when a proxy is configured in the environment (``HTTPS_PROXY``,
    ``HTTP_PROXY``, ``ALL_PROXY``): httpx only honours those when it builds the transport itself.
    """
    if http2 or any(getproxies().get(scheme) for scheme in ("http", "https", "all")):
        return None
    return LaneTransport(max_connections)
