"""An in-process httpx transport over the emulator that streams reply bodies."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING

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


class _ReplyStream(httpx.AsyncByteStream):
    def __init__(self, reply: Reply, request: httpx.Request) -> None:
        self._chunks = reply.iter_chunks()
        self._abort = reply.abort
        self._request = request
        self._sent = 0
        self._declared = reply.header("Content-Length")

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
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
    ``truncate`` raises ``httpx.RemoteProtocolError`` while the body is read.

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
            reply = await self._service.handle(emulated)
        finally:
            closer = getattr(body, "aclose", None)
            if closer is not None:
                await closer()
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
