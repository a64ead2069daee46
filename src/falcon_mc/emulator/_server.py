"""A small HTTP/1.1 server over h11 and anyio: the emulator on a real loopback socket.

Keep-alive, Content-Length and chunked request bodies, streamed replies, and exact control of
the connection for faults (close before or after processing, truncated bodies).
"""

from __future__ import annotations

import http
import logging
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING, Any

import anyio
import h11
from anyio.abc import SocketAttribute, SocketListener, SocketStream, TaskGroup, TaskStatus

from ._http import Request

if TYPE_CHECKING:
    from ._app import Service

__all__ = ["Server"]

logger = logging.getLogger("falcon_mc.emulator")

_RECV = 256 * 1024
_HEADERS_MAX = 64 * 1024


class _ClientGone(Exception):
    pass


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


async def _send(conn: h11.Connection, stream: SocketStream, *events: Any) -> None:
    """Send ``events`` in one write (none if they come to no bytes)."""
    data = b"".join(
        bytes(part) for event in events for part in conn.send_with_data_passthrough(event) or ()
    )
    if data:
        await stream.send(data)


class Server:
    """Serve ``service`` on ``host:port`` until :meth:`stop` (``port=0`` picks a free port)."""

    def __init__(self, service: Service, host: str = "127.0.0.1", port: int = 0) -> None:
        self.service = service
        self.host = host
        self.port = port
        self.url = ""
        self._scope: anyio.CancelScope | None = None
        self._open: set[SocketStream] = set()

    async def run(
        self,
        on_ready: Callable[[str], object] | None = None,
        *,
        task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen and serve; reports the base URL (``on_ready``, ``task_status``) once bound."""
        with anyio.CancelScope() as scope:
            self._scope = scope
            listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
            async with listener:
                port = listener.extra(SocketAttribute.local_port)  # noqa: S610
                host = f"[{self.host}]" if ":" in self.host else self.host
                self.url = f"http://{host}:{port}"
                if on_ready is not None:
                    on_ready(self.url)
                task_status.started(self.url)
                try:
                    async with anyio.create_task_group() as tg:
                        for sub in listener.listeners:
                            assert isinstance(sub, SocketListener)
                            tg.start_soon(self._accept, sub, tg)
                finally:
                    with anyio.CancelScope(shield=True):
                        for stream in list(self._open):
                            await stream.aclose()
                        self._open.clear()

    async def _accept(self, listener: SocketListener, tg: TaskGroup) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:  # out of file descriptors...: back off, keep serving
                logger.warning("emulator: accept failed: %s", exc)
                await anyio.sleep(0.05)
                continue
            self._open.add(stream)  # closed on shutdown even if its task never starts
            tg.start_soon(self._connection, stream)

    def stop(self) -> None:
        """Stop listening and close every connection (call from the server's event loop)."""
        if self._scope is not None:
            self._scope.cancel()

    async def _connection(self, stream: SocketStream) -> None:
        try:
            async with stream:
                await self._serve(stream)
        except (_ClientGone, h11.ProtocolError, anyio.BrokenResourceError,
                anyio.ClosedResourceError, anyio.EndOfStream, ConnectionError):
            return
        except Exception:  # never let one connection take the server down
            logger.exception("emulator: connection handler failed")
        finally:
            self._open.discard(stream)

    async def _event(self, conn: h11.Connection, stream: SocketStream) -> Any:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            try:
                data = await stream.receive(_RECV)
            except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
                data = b""
            conn.receive_data(data)

    async def _body(
        self, conn: h11.Connection, stream: SocketStream
    ) -> AsyncGenerator[bytes, None]:
        if conn.they_are_waiting_for_100_continue:
            await _send(conn, stream, h11.InformationalResponse(status_code=100, headers=[]))
        while True:
            event = await self._event(conn, stream)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return
            else:
                raise _ClientGone

    async def _serve(self, stream: SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_HEADERS_MAX)
        while True:
            event = await self._event(conn, stream)
            if not isinstance(event, h11.Request):
                return  # ConnectionClosed, or garbage
            target = event.target.decode("latin-1")
            path, _, query = target.partition("?")
            headers: dict[str, str] = {}
            for name, value in event.headers:
                key = name.decode("latin-1").lower()
                text = value.decode("latin-1")
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
            body = self._body(conn, stream)
            request = Request(
                method=event.method.decode("ascii"),
                path=path,
                query_string=query,
                headers=headers,
                body=body,
            )
            try:
                reply = await self.service.handle(request)
                if reply.drop:
                    return
                await request.drain()
            finally:
                await body.aclose()
            out_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
            closing = headers.get("connection", "").lower() == "close"
            if closing or conn.their_state is h11.MUST_CLOSE:
                out_headers.append((b"Connection", b"close"))
            head = h11.Response(
                status_code=reply.status, headers=out_headers, reason=_reason(reply.status)
            )
            if isinstance(reply.chunks, bytes) and not reply.abort:
                # a whole reply in hand goes out in one write, as a server's buffered reply does
                await _send(conn, stream, head, h11.Data(data=reply.chunks), h11.EndOfMessage())
            else:
                await _send(conn, stream, head)
                chunks = reply.iter_chunks()
                try:
                    async for chunk in chunks:
                        if chunk:
                            await _send(conn, stream, h11.Data(data=chunk))
                finally:
                    closer = getattr(chunks, "aclose", None)
                    if closer is not None:
                        await closer()
                if reply.abort:
                    return
                await _send(conn, stream, h11.EndOfMessage())
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
