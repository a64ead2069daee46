"""Files written whole or not at all: the bytes go to a fresh ``.part`` file beside the target,
which takes the target's name only once it is complete."""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

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


def _create(path: Path, abandoned: threading.Event) -> BinaryIO:
    """Create ``path`` for writing (see :data:`_CREATE_NEW`), in a worker thread; removed again
    if the caller gave up meanwhile (a native asyncio cancellation does not wait for it)."""
    file = os.fdopen(os.open(path, _CREATE_NEW, 0o666), "wb")
    if abandoned.is_set():
        file.close()
        path.unlink(missing_ok=True)
    return file


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
        abandoned = threading.Event()
        try:
            created = await anyio.to_thread.run_sync(_create, self._part, abandoned)
        except anyio.get_cancelled_exc_class():  # cancelled while the thread creates it
            abandoned.set()
            with anyio.CancelScope(shield=True):
                await anyio.Path(self._part).unlink(missing_ok=True)
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
                await self._discard()
                raise
        await self._discard()

    async def _discard(self) -> None:
        assert self._file is not None
        with anyio.CancelScope(shield=True):
            await self._file.aclose()
            await anyio.Path(self._part).unlink(missing_ok=True)
