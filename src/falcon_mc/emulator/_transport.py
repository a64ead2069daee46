"""An in-process httpx transport over the emulator that streams reply bodies."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING

import anyio
import httpx

from ._http import Reply, Request

if TYPE_CHECKING:
    from ._app import Service

__all__ = ["EmulatorTransport"]


async def _request_body(
    stream: httpx.SyncByteStream | httpx.AsyncByteStream,
) -> AsyncIterator[bytes]:
    if isinstance(stream, httpx.AsyncByteStream):
        async for chunk in stream:
            yield chunk
    else:
        for chunk in stream:
            yield chunk


def _read_timeout(request: httpx.Request) -> float | None:
    """The request's httpx read timeout in seconds (``None``: wait for ever).

    Connect, write and pool timeouts have nothing to apply to in-process.
    """
    timeout = request.extensions.get("timeout") or {}
    value = timeout.get("read")
    return None if value is None else float(value)


def _timed_out(request: httpx.Request) -> httpx.ReadTimeout:
    return httpx.ReadTimeout("timed out", request=request)


class _ReplyStream(httpx.AsyncByteStream):
    def __init__(self, reply: Reply, request: httpx.Request) -> None:
        self._chunks = reply.iter_chunks()
        self._abort = reply.abort
        self._request = request
        self._timeout = _read_timeout(request)
        self._sent = 0
        self._declared = reply.header("Content-Length")

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        """The next chunk, within the read timeout as every read from a socket would be."""
        with anyio.move_on_after(self._timeout):
            return await self._next()
        raise _timed_out(self._request)  # only the deadline leaves the block without a return

    async def _next(self) -> bytes:
        try:
            chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            if self._abort:
                self._abort = False
                raise httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body: "
                    f"received {self._sent} bytes, expected {self._declared}",
                    request=self._request,
                ) from None
            raise
        self._sent += len(chunk)
        return chunk

    async def aclose(self) -> None:
        closer = getattr(self._chunks, "aclose", None)
        if closer is not None:
            await closer()


class EmulatorTransport(httpx.AsyncBaseTransport):
    """Runs each request through the emulator in the caller's event loop (no sockets).

    The reply body is streamed chunk by chunk (a download is never buffered whole). Connection
    faults surface as a real peer's would: ``drop_before``/``drop_after`` raise
    ``httpx.RemoteProtocolError("Server disconnected without sending a response.")``,
    ``truncate`` raises ``httpx.RemoteProtocolError`` while the body is read. The request's
    read timeout is honoured as over a socket: ``httpx.ReadTimeout`` when the reply (``latency``)
    or any piece of its body (``slow_body``) takes longer.

    Example::

        async with httpx.AsyncClient(transport=emu.transport(), base_url="https://emu") as http:
            r = await http.post("/oauth2/token", data={"client_id": "a", "client_secret": "b"})
    """

    def __init__(self, service: Service) -> None:
        self._service = service

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer ``request`` from the emulator."""
        body: AsyncIterable[bytes] = _request_body(request.stream)
        emulated = Request(
            method=request.method,
            path=request.url.path,
            query_string=request.url.query.decode("latin-1"),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        try:
            with anyio.move_on_after(_read_timeout(request)) as scope:
                reply = await self._service.handle(emulated)
        finally:
            closer = getattr(body, "aclose", None)
            if closer is not None:
                await closer()
        if scope.cancelled_caught:
            raise _timed_out(request)
        if reply.drop:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        return httpx.Response(
            reply.status,
            headers=reply.headers,
            stream=_ReplyStream(reply, request),
            request=request,
        )
