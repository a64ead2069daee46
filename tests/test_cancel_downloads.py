"""Downloads that are cut, cancelled or read twice, against the emulator on loopback.

What is checked is what they leave behind: connections held, part files, open file objects,
and the error a second reading raises. Nothing sleeps to measure time: cancellations are
timed by the file operations themselves (asyncio's own ``task.cancel()``, which no anyio
shield stops, scheduled from the worker thread doing them).
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any, BinaryIO

import anyio
import httpx
import pytest

from falcon_mc import APITimeoutError, AsyncMessageCenter
from falcon_mc import _partfile as partfile
from falcon_mc._lanes import LaneTransport
from falcon_mc.emulator import Emulator

DOWNLOAD = "CaseDownloadAttachment"
DEADLINE = 10  # fail instead of hanging when a wait that must end does not


@pytest.fixture
def emu() -> Emulator:
    return Emulator.seeded(n_cases=5, seed=21)


def client(url: str, **kwargs: Any) -> AsyncMessageCenter:
    return AsyncMessageCenter(client_id="dl", client_secret="dl-secret", base_url=url,
                              retry_base_delay=0, **kwargs)


@pytest.fixture
async def mc(url: str) -> AsyncIterator[AsyncMessageCenter]:
    async with client(url) as c:
        yield c


def lanes(mc: AsyncMessageCenter) -> LaneTransport:
    transport = mc._pipeline.http._transport
    assert isinstance(transport, LaneTransport)
    return transport


def attachment(emu: Emulator, size: int = 200_000) -> str:
    return emu.add_attachment(next(iter(emu.cases)), "big.bin", b"x" * size)


# -- a cut download frees its connection before asking again ----------------------------------
async def test_a_cut_download_frees_its_connection_before_asking_again(
    emu: Emulator, mc: AsyncMessageCenter
) -> None:
    transport = lanes(mc)
    attachment_id = attachment(emu)
    emu.faults.add(operation=DOWNLOAD, kind="truncate", count=1)
    busy_at_download: list[int] = []
    send = transport.handle_async_request

    async def spy(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and "case-attachment" in request.url.path:
            busy_at_download.append(transport.busy)  # lanes held by earlier replies
        return await send(request)

    transport.handle_async_request = spy  # type: ignore[method-assign]
    async with mc.download_case_attachment(attachment_id) as download:
        assert len(await download.aread()) == 200_000
    assert busy_at_download == [0, 0]  # the cut reply was closed before asking again
    assert transport.busy == 0


async def test_concurrent_cut_downloads_do_not_run_out_of_connections(
    emu: Emulator, url: str
) -> None:
    # max_concurrency=1: a pool of 5 connections, one per download; each first reply is cut.
    # Were a cut reply kept while its download asks again, the retries would need a sixth.
    attachment_id = attachment(emu)
    emu.faults.add(operation=DOWNLOAD, kind="truncate", count=5)
    sizes: list[int] = []
    async with client(url, max_concurrency=1, max_retries=1,
                      timeout=httpx.Timeout(DEADLINE, pool=1)) as mc:
        await mc.query_cases(limit=1)  # the token first

        async def read() -> None:
            async with mc.download_case_attachment(attachment_id) as download:
                sizes.append(len(await download.aread()))

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(read)
        assert lanes(mc).busy == 0
    assert sizes == [200_000] * 5
    assert emu.stats.requests[DOWNLOAD] == 10


# -- part files when asyncio cancels the save -------------------------------------------------
class Tripwire(io.BufferedWriter):
    """A part file that calls ``on_write`` at its first write and ``on_close`` when closed."""

    def __init__(self, raw: Any, on_write: Callable[[], None], on_close: Callable[[], None]) -> None:
        super().__init__(raw)
        self._on_write: Callable[[], None] | None = on_write
        self._on_close = on_close

    def write(self, data: Any) -> int:
        on_write, self._on_write = self._on_write, None
        if on_write is not None:
            on_write()
        return super().write(data)

    def close(self) -> None:
        if not self.closed:
            self._on_close()
        super().close()


async def test_a_save_cancelled_twice_by_asyncio_leaves_no_part_file(
    emu: Emulator, mc: AsyncMessageCenter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first cancellation lands while the first chunk is written; the second while the part
    # file is being closed on the way out: removing it must not depend on another await.
    loop = asyncio.get_running_loop()
    task: asyncio.Task[Path] | None = None
    files: list[Tripwire] = []
    create = partfile._create

    def cancel() -> None:
        assert task is not None
        loop.call_soon_threadsafe(task.cancel)

    def tripwired(*args: Any) -> Any:
        made: Any = create(*args)  # a BufferedWriter
        file = Tripwire(made.detach(), on_write=cancel, on_close=cancel)
        files.append(file)
        return file

    monkeypatch.setattr(partfile, "_create", tripwired)
    attachment_id = attachment(emu, 400_000)
    emu.faults.add(operation=DOWNLOAD, kind="slow_body", delay=0.01, chunk_size=65536)
    async with mc.download_case_attachment(attachment_id) as download:
        task = loop.create_task(download.save(tmp_path / "big.bin"))
        with pytest.raises(asyncio.CancelledError), anyio.fail_after(DEADLINE):
            await task
    assert [file.closed for file in files] == [True]
    assert list(tmp_path.iterdir()) == []
    assert lanes(mc).busy == 0
    assert len((await mc.query_cases(limit=2)).ids) == 2  # the client is still usable


async def test_a_save_cancelled_once_its_part_file_is_created_closes_it(
    emu: Emulator, mc: AsyncMessageCenter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asyncio's own cancellation does not wait for the worker thread: here it lands after the
    # thread made the part file, before the file reached the save. The file is closed and
    # removed by the save giving up, not left to the garbage collector.
    loop = asyncio.get_running_loop()
    task: asyncio.Task[Path] | None = None
    handled, finished = threading.Event(), threading.Event()
    made: list[BinaryIO] = []
    create = partfile._Creation.create

    def cancelled_meanwhile(self: partfile._Creation) -> BinaryIO:
        try:
            file = create(self)
            made.append(file)
            assert task is not None
            loop.call_soon_threadsafe(task.cancel)
            handled.wait(DEADLINE)  # the save gives up before the file reaches it
            return file
        finally:
            finished.set()

    monkeypatch.setattr(partfile._Creation, "create", cancelled_meanwhile)
    attachment_id = attachment(emu, 1000)
    async with mc.download_case_attachment(attachment_id) as download:
        task = loop.create_task(download.save(tmp_path))
        with pytest.raises(asyncio.CancelledError), anyio.fail_after(DEADLINE):
            await task
        assert [file.closed for file in made] == [True]
        assert list(tmp_path.iterdir()) == []
        handled.set()
    await anyio.to_thread.run_sync(finished.wait, DEADLINE)
    assert list(tmp_path.iterdir()) == []


# -- a body is read once ----------------------------------------------------------------------
async def read_fully(how: str, download: Any, folder: Path) -> None:
    if how == "aread":
        await download.aread()
    elif how == "save":
        await download.save(folder)
    else:
        async for _ in download.aiter_bytes():
            pass


@pytest.mark.parametrize("again", ["aread", "save", "aiter_bytes"])
@pytest.mark.parametrize("first", ["break", "aclosing", "aread"])
async def test_reading_a_download_again_says_to_open_it_again(
    emu: Emulator, mc: AsyncMessageCenter, tmp_path: Path, first: str, again: str
) -> None:
    attachment_id = attachment(emu)
    async with mc.download_case_attachment(attachment_id) as download:
        if first == "break":
            async for _ in download.aiter_bytes(1000):
                break
        elif first == "aclosing":
            async with aclosing(download.aiter_bytes(1000)) as chunks:
                async for _ in chunks:
                    break
            assert lanes(mc).busy == 0  # stopping early closed the reply
        else:
            await download.aread()
        with pytest.raises(RuntimeError, match=r"read already.*open the download again"):
            await read_fully(again, download, tmp_path)
    assert list(tmp_path.iterdir()) == []
    async with mc.download_case_attachment(attachment_id) as download:  # opened again: fine
        assert len(await download.aread()) == 200_000


async def test_a_save_retried_after_a_timeout_says_to_open_the_download_again(
    emu: Emulator, mc: AsyncMessageCenter, tmp_path: Path
) -> None:
    attachment_id = attachment(emu)
    emu.faults.add(operation=DOWNLOAD, kind="slow_body", delay=DEADLINE, chunk_size=65536,
                   count=1)
    once = mc.with_options(timeout=httpx.Timeout(DEADLINE, read=0.05), max_retries=0)
    async with once.download_case_attachment(attachment_id) as download:
        with pytest.raises(APITimeoutError):
            await download.save(tmp_path)
        with pytest.raises(RuntimeError, match=r"read already.*open the download again"):
            await download.save(tmp_path)
    assert list(tmp_path.iterdir()) == []


async def test_reading_a_download_after_its_block_says_so(
    emu: Emulator, mc: AsyncMessageCenter
) -> None:
    async with mc.download_case_attachment(attachment(emu)) as download:
        pass
    with pytest.raises(RuntimeError, match=r"was closed.*open the download again"):
        await download.aread()
