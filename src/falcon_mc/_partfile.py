"""Files written whole or not at all: the bytes go to a fresh ``.part`` file beside the target,
which takes the target's name only once it is complete."""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path
from types import TracebackType
from typing import IO, BinaryIO

import anyio

__all__ = ["PartFile"]

#: The longest file name most file systems take, in bytes.
_NAME_MAX = 255


def _fit(name: str, suffix: str) -> str:
    """``name + suffix``, ``name`` cut (at a character boundary) so it fits in ``_NAME_MAX``."""
    budget = _NAME_MAX - len(suffix.encode())
    return name.encode()[:budget].decode(errors="ignore") + suffix


#: Create a new file: fail if anything (a file, a planted link) has that name already.
_CREATE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def _create(path: Path) -> BinaryIO:
    """Create ``path`` for writing (see :data:`_CREATE_NEW`)."""
    return os.fdopen(os.open(path, _CREATE_NEW, 0o666), "wb")


def _remove(file: IO[bytes], path: Path) -> None:
    """Close ``file`` and remove ``path``, its name.

    Blocking calls, made on purpose in whichever thread gets here (the event loop's too):
    closing a file and unlinking a name are quick local operations, and done without an await
    nothing can interrupt them halfway: a second asyncio cancellation interrupts even an awaited
    worker thread under an anyio shield, and would leave the part file behind, open.
    """
    file.close()
    path.unlink(missing_ok=True)


class _Creation:
    """A part file created in a worker thread for a caller that may give up meanwhile.

    asyncio's own cancellation does not wait for the worker thread: the caller may give up
    while the file is being created, or after it was created but before the result reached it.
    Whichever of the two sides comes second closes and removes the file; a file this did not
    create is never removed.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._file: BinaryIO | None = None
        self._abandoned = False

    def create(self) -> BinaryIO:
        """Create the file (in the worker thread); closed and removed at once if abandoned."""
        file = _create(self._path)
        with self._lock:
            if not self._abandoned:
                self._file = file
                return file
        _remove(file, self._path)
        return file

    def abandon(self) -> None:
        """Give the file up (in the event loop's thread): closed and removed if created."""
        with self._lock:
            self._abandoned = True
            file, self._file = self._file, None
        if file is not None:
            _remove(file, self._path)


def _claim(part: Path, target: Path) -> Path:
    """Give ``part`` the name ``target``, or ``stem (1).ext``, ``stem (2).ext``... when taken."""
    stem, dot, ext = target.name.rpartition(".")
    if not stem:  # no extension, or a dot file
        stem, dot, ext = target.name, "", ""
    number = 0
    while True:
        name = _fit(stem, f" ({number}){dot}{ext}") if number else target.name
        candidate = target.with_name(name)
        try:
            os.link(part, candidate)  # atomic, and never replaces: FileExistsError when taken
        except FileExistsError:
            number += 1
            continue
        except FileNotFoundError:  # no part file (removed by a save cancelled meanwhile)
            raise
        except OSError:  # a file system without hard links: take the name, then fill it
            try:
                os.close(os.open(candidate, _CREATE_NEW))
            except FileExistsError:
                number += 1
                continue
            os.replace(part, candidate)
            return candidate
        os.unlink(part)
        return candidate


class PartFile:
    """Write ``target`` through ``<target>.<random>.part``, renamed onto it on success.

    On leaving the ``async with`` block normally the part file is renamed to ``target``
    (replacing it), or with ``replace=False`` to the first free name among ``target``,
    ``stem (1).ext``, ``stem (2).ext``...; :attr:`path` is then the final path. On an error or
    cancellation the part file is removed and the target is untouched. Each writer has its own
    part file, created afresh (never through a link), so writers of one target never mix bytes.
    """

    def __init__(self, target: Path, *, replace: bool = True) -> None:
        self.path = target
        self._replace = replace
        self._part = target.with_name(_fit(target.name, f".{secrets.token_hex(4)}.part"))
        self._file: anyio.AsyncFile[bytes] | None = None

    async def __aenter__(self) -> PartFile:
        creation = _Creation(self._part)
        try:
            created = await anyio.to_thread.run_sync(creation.create)
        except BaseException:  # cancelled while the thread creates it (or after)
            creation.abandon()
            raise
        self._file = anyio.wrap_file(created)
        return self

    async def write(self, data: bytes) -> None:
        """Append ``data``."""
        assert self._file is not None, "use inside async with"
        await self._file.write(data)

    async def restart(self) -> None:
        """Drop what was written so far and start again from an empty file."""
        assert self._file is not None, "use inside async with"
        await self._file.seek(0)
        await self._file.truncate()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._file is not None
        if exc_type is None:
            try:
                await self._file.aclose()
                if self._replace:
                    await anyio.Path(self._part).replace(self.path)
                else:
                    self.path = await anyio.to_thread.run_sync(_claim, self._part, self.path)
                return
            except BaseException:
                self._discard()
                raise
        self._discard()

    def _discard(self) -> None:
        """Close and remove the part file, without awaiting (see :func:`_remove`)."""
        assert self._file is not None
        _remove(self._file.wrapped, self._part)
