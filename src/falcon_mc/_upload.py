"""Streaming an attachment upload: where its bytes come from and its multipart body.

httpx's own multipart encoder reads files with blocking calls inside async code (httpx#1620),
so uploads use :class:`MultipartUpload`, which reads the file through anyio in chunks and knows
its ``Content-Length`` up front. :func:`attachment_body` checks an upload against the spec's
rules (before anything is sent) and makes its body.
"""

from __future__ import annotations

import io
import os
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import anyio
import httpx

from ._exceptions import APIConnectionError, InvalidArgumentError
from ._filenames import check_upload_size, guess_upload_content_type, validate_upload_filename
from ._pipeline import BodyFactory, RequestBody

__all__ = ["BinaryFile", "FileSource", "MultipartUpload", "attachment_body"]

FILE_CHUNK_SIZE = 1024 * 1024  # reads of the file: fewer hops to the file thread

#: A binary file object, as ``open(path, "rb")``, ``io.BytesIO`` or a zip member give.
BinaryFile = IO[bytes] | io.BufferedIOBase

#: ``type/subtype`` with optional parameters, and no control characters but tab (CR/LF would
#: add headers, or end them).
_MEDIA_TYPE = re.compile(
    r"[\w!#$&^.+~-]+/[\w!#$&^.+~-]+[ \t]*(?:;[^\x00-\x08\x0a-\x1f\x7f]*)?", re.ASCII
)


async def attachment_body(
    fields: dict[str, str],
    *,
    file_data: bytes | BinaryFile | None,
    path: str | os.PathLike[str] | None,
    file: BinaryFile | None,
    filename: str | None,
    content_type: str | None,
    limit: int,
) -> BodyFactory:
    """The body of an upload of one file (from exactly one of ``file_data``, ``path``, ``file``)
    after ``fields``, built anew for every attempt; the spec's rules (name, type, at most
    ``limit`` bytes) are checked first."""
    source, name = await _file_source(file_data, path, file, filename, limit)
    validate_upload_filename(name)
    check_upload_size(source.size, limit)
    media = _part_media_type(name, content_type)

    async def build() -> RequestBody:
        return MultipartUpload(
            fields=fields, file_field="file", filename=name, content_type=media, source=source
        ).request_body()

    return build


def _part_media_type(filename: str, content_type: str | None) -> str:
    """The file part's ``Content-Type``: ``content_type``, else guessed from the name."""
    if content_type is None:
        return guess_upload_content_type(filename)
    if not _MEDIA_TYPE.fullmatch(content_type):  # it goes into the part's headers as it is
        raise InvalidArgumentError("content_type", f"not a media type: {content_type!r}")
    if content_type.split("/", 1)[0].strip().lower() == "multipart":
        raise InvalidArgumentError(
            "content_type",
            f"{content_type!r} is a request's type (set by falcon-mc); content_type= is the "
            "uploaded file's own type, such as 'image/png' (leave it out to guess it from the "
            "file name)",
        )
    return content_type


async def _file_source(
    file_data: bytes | BinaryFile | None,
    path: str | os.PathLike[str] | None,
    file: BinaryFile | None,
    filename: str | None,
    limit: int,
) -> tuple[FileSource, str]:
    """Where the upload's bytes come from, and the name to send."""
    if sum(v is not None for v in (file_data, path, file)) != 1:
        raise InvalidArgumentError("file_data", "pass exactly one of file_data, path or file")
    if isinstance(file_data, bytes | bytearray | memoryview):
        return _bytes_source(bytes(file_data), filename)
    if file_data is not None:  # a binary file object, as FalconPy (requests) takes it
        if not callable(getattr(file_data, "read", None)):
            raise InvalidArgumentError(
                "file_data", f"expected bytes or a binary file object, got {type(file_data).__name__}"
            )
        return await _object_source("file_data", file_data, filename, limit)
    if path is not None:
        return await _path_source(path, filename)
    assert file is not None
    return await _object_source("file", file, filename, limit)


def _bytes_source(data: bytes, filename: str | None) -> tuple[FileSource, str]:
    if filename is None:
        raise InvalidArgumentError("filename", "required when uploading bytes")
    return FileSource(data=data, path=None, file=None, size=len(data)), filename


async def _path_source(
    path: str | os.PathLike[str], filename: str | None
) -> tuple[FileSource, str]:
    location = Path(path)
    apath = anyio.Path(location)
    if not await apath.is_file():
        raise InvalidArgumentError("path", f"no such file: {location}")
    size = (await apath.stat()).st_size
    return FileSource(data=None, path=location, file=None, size=size), filename or location.name


async def _object_source(
    argument: str, file: BinaryFile, filename: str | None, limit: int
) -> tuple[FileSource, str]:
    """A binary file object: streamed from where it stands if seekable (and read from there
    again on a retry), else read up front (``argument`` names it in errors)."""
    name = filename or Path(str(getattr(file, "name", ""))).name
    if not name:
        raise InvalidArgumentError("filename", "required when the file object has no name")
    # read(0) reads nothing and tells text from bytes, whatever ``mode`` says (a zip member
    # has "r", a GzipFile an int)
    probe = await anyio.to_thread.run_sync(file.read, 0)
    if isinstance(cast(object, file), io.TextIOBase) or not isinstance(probe, bytes):
        raise InvalidArgumentError(argument, "open the file in binary mode ('rb')")
    if file.seekable():
        start = file.tell()
        size = await anyio.to_thread.run_sync(file.seek, 0, os.SEEK_END) - start
        await anyio.to_thread.run_sync(file.seek, start)
        return FileSource(data=None, path=None, file=cast(Any, file), size=size), name
    # a pipe or socket: its size is unknown until read, so read it, but no further than
    # one chunk past the limit (the size check then refuses it)
    chunks: list[bytes] = []
    size = 0
    while size <= limit and (chunk := await anyio.to_thread.run_sync(file.read, FILE_CHUNK_SIZE)):
        chunks.append(chunk)
        size += len(chunk)
    data = b"".join(chunks)
    return FileSource(data=data, path=None, file=None, size=len(data)), name


class FileSource:
    """Where upload bytes come from: bytes in memory, a path on disk, or a binary file object."""

    def __init__(
        self, *, data: bytes | None, path: Path | None, file: BinaryIO | None, size: int
    ) -> None:
        self.data = data
        self.path = path
        self.file = file
        self.size = size
        self._start = file.tell() if file is not None and file.seekable() else None

    async def chunks(self, chunk_size: int) -> AsyncIterator[bytes]:
        """Read the bytes in chunks without blocking the event loop."""
        if self.data is not None:
            view = memoryview(self.data)
            for start in range(0, len(view), chunk_size):
                yield bytes(view[start : start + chunk_size])
        elif self.path is not None:
            async with await anyio.open_file(self.path, "rb") as src:
                while chunk := await src.read(chunk_size):
                    yield chunk
        elif self.file is not None:
            if self._start is not None:
                await anyio.to_thread.run_sync(self.file.seek, self._start)
            while chunk := await anyio.to_thread.run_sync(self.file.read, chunk_size):
                yield chunk


class MultipartUpload(httpx.AsyncByteStream):
    """A ``multipart/form-data`` body: text fields, then one file part streamed in chunks."""

    def __init__(
        self,
        *,
        fields: dict[str, str],
        file_field: str,
        filename: str,
        content_type: str,
        source: FileSource,
        chunk_size: int = FILE_CHUNK_SIZE,
    ) -> None:
        self.boundary = secrets.token_hex(16)
        self._source = source
        self._chunk_size = chunk_size
        head = b"".join(
            self._part_header(name, None, None) + value.encode() + b"\r\n"
            for name, value in fields.items()
        )
        self._head = head + self._part_header(file_field, filename, content_type)
        self._tail = f"\r\n--{self.boundary}--\r\n".encode()
        self.content_length = len(self._head) + source.size + len(self._tail)

    def _part_header(self, name: str, filename: str | None, content_type: str | None) -> bytes:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        lines = [f"--{self.boundary}", f"Content-Disposition: {disposition}"]
        if content_type is not None:
            lines.append(f"Content-Type: {content_type}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def request_body(self) -> RequestBody:
        """This body with the headers that announce it."""
        return RequestBody(
            stream=self,
            headers={
                "Content-Type": f"multipart/form-data; boundary={self.boundary}",
                "Content-Length": str(self.content_length),
            },
        )

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._head
        announced = self._source.size
        sent = 0
        async for chunk in self._source.chunks(self._chunk_size):
            sent += len(chunk)
            if sent > announced:  # stop before the body outgrows its Content-Length
                raise self._changed(f"more than {announced}")
            yield chunk
        if sent != announced:
            raise self._changed(str(sent))
        yield self._tail

    def _changed(self, read: str) -> APIConnectionError:
        return APIConnectionError(
            f"the file changed size while uploading ({read} bytes read, "
            f"{self._source.size} announced); nothing was attached",
            may_have_been_applied=False,
        )
