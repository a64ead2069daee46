"""Streaming an attachment download: :class:`AttachmentDownload`, valid inside
``async with mc.download_case_attachment(id)``. ``save()`` and ``aiter_bytes()`` hold no more
than one chunk in memory; ``save()`` and ``aread()`` request the body again when it is cut
short.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import anyio
import httpx

from ._exceptions import APIConnectionError, APIResponseValidationError, APITimeoutError
from ._filenames import (
    UPLOAD_CONTENT_TYPES,
    parse_content_disposition_filename,
    safe_join,
    sanitize_filename,
)
from ._partfile import PartFile
from ._responses import aclose_response

__all__ = ["AttachmentDownload"]

CHUNK_SIZE = 64 * 1024
SAVE_CHUNK_SIZE = 1024 * 1024  # writes to the file: fewer hops to the file thread

# Media type -> file extension, for a download's fallback name: the spec's upload types
# (first extension wins: image/jpeg -> .jpg), plus what only downloads list.
_EXTENSIONS: dict[str, str] = {
    **{media: f".{ext}" for ext, media in reversed(UPLOAD_CONTENT_TYPES.items())},
    "image/jpg": ".jpg",
    "application/zip": ".zip",
}


Reopen = Callable[[], AbstractAsyncContextManager[httpx.Response]]


class _Source(httpx.AsyncByteStream):
    """A reply's byte stream that its reader can end early.

    httpx reads a body through nested async generators (``aiter_bytes`` over ``aiter_raw``
    over the stream); a reader that stops early would leave them to the garbage collector, of
    which trio warns. Ended (:meth:`end`), this stream stops: read on, those generators finish
    at once (and close the reply, freeing its connection).
    """

    def __init__(self, stream: httpx.AsyncByteStream) -> None:
        self._stream = stream
        self._chunks: AsyncIterator[bytes] | None = None
        self._ended = False
        self.closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        """The next piece from the stream below; none once ended."""
        if self._ended:
            await self._close_chunks()
            raise StopAsyncIteration
        if self._chunks is None:
            self._chunks = aiter(self._stream)
        return await anext(self._chunks)

    def end(self) -> None:
        """Give no more pieces."""
        self._ended = True

    async def _close_chunks(self) -> None:
        chunks, self._chunks = self._chunks, None
        close = getattr(chunks, "aclose", None)  # an async generator (httpx's bound stream)
        if close is not None:
            await close()

    async def aclose(self) -> None:
        self.closed = True
        await self._stream.aclose()


class AttachmentDownload:
    """An attachment being downloaded; valid inside ``async with mc.download_case_attachment(id)``.

    :meth:`save` and :meth:`aread` re-request the attachment when its body is cut short (up to
    the client's ``max_retries``); :meth:`aiter_bytes` cannot, since it has handed out bytes.
    ``content_length`` is the file's size, ``None`` when the reply does not announce it or comes
    compressed (``Content-Encoding``; the bytes read are decoded, and checked against the
    ``Content-Length`` of the compressed body).

    Example::

        async with mc.download_case_attachment(attachment_id) as download:
            print(download.filename, download.content_type, download.content_length)
            await download.save("out/")          # via a .part file in out/, then renamed
    """

    def __init__(
        self,
        response: httpx.Response,
        attachment_id: str,
        *,
        reopen: Reopen | None = None,
        max_retries: int = 0,
        client_closed: Callable[[], bool] | None = None,
    ) -> None:
        self.id = attachment_id
        self._reopen = reopen
        self._max_retries = max_retries
        self._client_closed = client_closed  # whether the client's aclose() ran
        self._use(response)

    def _use(self, response: httpx.Response) -> None:
        assert isinstance(response.stream, httpx.AsyncByteStream)  # an AsyncClient's reply
        self._source = _Source(response.stream)
        response.stream = self._source
        self._response = response
        self._read = False  # whether reading the body started
        self.content_type: str = (
            response.headers.get("Content-Type", "application/octet-stream").split(";")[0].strip()
        )
        length = response.headers.get("Content-Length", "")
        # the length of the bytes on the wire; a compressed body is longer once decoded
        self._wire_length = int(length) if length.isascii() and length.isdigit() else None
        encoded = response.headers.get("Content-Encoding", "identity").strip().lower()
        self.content_length: int | None = self._wire_length if encoded == "identity" else None
        fallback = f"attachment-{sanitize_filename(self.id, fallback='file')}"
        fallback += _EXTENSIONS.get(self.content_type, "")
        self.filename: str = sanitize_filename(
            parse_content_disposition_filename(response.headers.get("Content-Disposition")),
            fallback=fallback,
        )
        self.trace_id: str | None = response.headers.get("X-CS-TRACEID")

    def __repr__(self) -> str:
        return (
            f"AttachmentDownload(id={self.id!r}, filename={self.filename!r}, "
            f"content_type={self.content_type!r}, content_length={self.content_length!r})"
        )

    def _check_unread(self) -> None:
        """Refuse a second reading of the body (httpx would raise its ``StreamConsumed``,
        which speaks of redirects and auth flows), or one after the ``async with`` block."""
        if self._read or self._source.closed:
            done = (
                "its body was read already (once by aread(), save() or aiter_bytes(), even "
                "stopped early)" if self._read else "the download was closed (its async with "
                "block ended)"
            )
            # a programming error, as a call on a closed client is: no FalconError to retry on
            raise RuntimeError(f"download of {self.id}: {done}; open the download again to read it")

    async def aiter_bytes(self, chunk_size: int = CHUNK_SIZE) -> AsyncGenerator[bytes, None]:
        """Yield the body in chunks of at most ``chunk_size`` bytes; checks the length at the end.

        The body can be read once: reading it again (even after stopping early) raises
        ``RuntimeError``; open the download again instead. To stop early, wrap the generator
        in ``contextlib.aclosing`` (under trio, one left unclosed is reported at collection).
        """
        self._check_unread()
        self._read = True
        received = 0
        chunks = self._response.aiter_bytes(chunk_size)
        try:
            async for chunk in chunks:
                received += len(chunk)
                yield chunk
        except httpx.TimeoutException as exc:
            raise APITimeoutError(
                f"download of {self.id} timed out ({type(exc).__name__})", trace_id=self.trace_id
            ) from None
        except httpx.TransportError as exc:
            raise self._cut(received, exc) from None
        except httpx.DecodingError as exc:  # a compressed body that does not decode
            raise APIConnectionError(
                f"download of {self.id} could not be decoded ({type(exc).__name__})",
                trace_id=self.trace_id,
            ) from None
        finally:
            await self._stop(chunks)
        # the bytes on the wire; a reply made in memory (httpx.MockTransport, respx) has none
        wire = self._response.num_bytes_downloaded or received
        if self._wire_length is not None and wire != self._wire_length:
            raise APIResponseValidationError(
                f"download of {self.id}: got {wire} bytes, Content-Length said "
                f"{self._wire_length}",
                status_code=self._response.status_code,
                trace_id=self.trace_id,
            )

    def _closing(self) -> bool:
        """Whether the client was closed (its ``aclose()`` closes the replies being read)."""
        return self._client_closed is not None and self._client_closed()

    def _cut(self, received: int, exc: httpx.TransportError) -> APIConnectionError:
        """The error of a body cut short after ``received`` bytes by ``exc``."""
        if self._closing():
            return APIConnectionError(
                f"download of {self.id}: the client was closed", trace_id=self.trace_id,
                may_have_been_applied=False,
            )
        return APIConnectionError(
            f"download of {self.id} was cut short after {received} bytes "
            f"({type(exc).__name__})",
            trace_id=self.trace_id,
        )

    async def _stop(self, chunks: AsyncIterator[bytes]) -> None:
        """After reading: if the reader stopped early, end the body and let httpx's generators
        ``chunks`` finish (closing the reply); a no-op once they have."""
        self._source.end()
        with anyio.CancelScope(shield=True), contextlib.suppress(httpx.HTTPError):
            async for _ in chunks:  # at most what httpx buffered: nothing more is read
                pass

    async def _consume(
        self,
        restart: Callable[[], Awaitable[None]],
        write: Callable[[bytes], Awaitable[object]],
        chunk_size: int,
    ) -> None:
        """Feed the body to ``write``; when it is cut short, ``restart`` and request it again
        (once the cut reply is closed: it would hold a connection meanwhile)."""
        async with contextlib.AsyncExitStack() as stack:
            for attempt in itertools.count():
                try:
                    async with contextlib.aclosing(self.aiter_bytes(chunk_size)) as chunks:
                        async for chunk in chunks:
                            await write(chunk)
                    return
                except APIConnectionError:
                    if self._reopen is None or attempt >= self._max_retries or self._closing():
                        raise
                await aclose_response(self._response)
                self._use(await stack.enter_async_context(self._reopen()))
                await restart()

    async def aread(self) -> bytes:
        """The whole body in memory (prefer :meth:`save` or :meth:`aiter_bytes` for big files)."""
        self._check_unread()
        parts: list[bytes] = []

        async def restart() -> None:
            parts.clear()

        async def write(chunk: bytes) -> None:
            parts.append(chunk)

        await self._consume(restart, write, CHUNK_SIZE)
        return b"".join(parts)

    async def save(
        self, path: str | os.PathLike[str], *, chunk_size: int = SAVE_CHUNK_SIZE
    ) -> Path:
        """Stream to ``path``: a file, or a folder to save under the sanitised ``filename``.

        A folder is an existing directory or a path ending in ``/`` (created if missing). Saved
        into a folder, a download never replaces a file: when the name is taken it becomes
        ``name (1).ext``, ``name (2).ext``...; a file path is replaced. The bytes go to a fresh
        ``<name>.<random>.part`` file beside the target (never through a link), renamed only
        when the whole body arrived; on failure or cancellation it is removed. Returns the
        final path.
        """
        self._check_unread()
        target = Path(path)
        into_folder = os.fspath(path).endswith(("/", os.sep))
        if into_folder:
            await anyio.Path(target).mkdir(parents=True, exist_ok=True)
        if into_folder or await anyio.Path(target).is_dir():
            target, into_folder = safe_join(target, self.filename), True
        async with PartFile(target, replace=not into_folder) as out:
            await self._consume(out.restart, out.write, chunk_size)
        return out.path
