"""The client against the emulator: in-process and over real loopback HTTP.

Concurrency, streaming, cancellation and token lifecycle are checked here; nothing sleeps to
measure time.
"""

from __future__ import annotations

import asyncio
import gc
import io
import os
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from falcon_mc import (
    APIConnectionError,
    AsyncMessageCenter,
    AuthenticationError,
    BadRequestError,
    OAuthError,
    fql,
)
from falcon_mc import _partfile as partfile
from falcon_mc._lanes import LaneTransport
from falcon_mc.emulator import Emulator


@pytest.fixture
def emu() -> Emulator:
    return Emulator.seeded(n_cases=1200, seed=11)


def client(base_url: str, **kwargs: object) -> AsyncMessageCenter:
    return AsyncMessageCenter(
        client_id="it", client_secret="it-secret", base_url=base_url, retry_base_delay=0,
        **kwargs,  # type: ignore[arg-type]
    )


def in_flight(mc: AsyncMessageCenter) -> int:
    """Requests whose reply is still open (0 once everything is released)."""
    transport = mc._pipeline.http._transport
    assert isinstance(transport, LaneTransport)
    return transport.busy


@pytest.fixture
async def mc(url: str) -> AsyncIterator[AsyncMessageCenter]:
    async with client(url, max_ids_per_request=100, max_concurrency=8) as c:
        yield c


async def test_bulk_get_keeps_order_fetches_duplicates_once_and_reports_missing(
    emu: Emulator, mc: AsyncMessageCenter
) -> None:
    ids = list(emu.cases)
    asked = ids + ids[:50] + ["missing-1", "missing-2"]
    result = await mc.get_cases(asked)
    assert [c.id for c in result.resources] == ids
    assert sorted(e.id or "" for e in result.errors) == ["missing-1", "missing-2"]
    assert emu.stats.requests["GetCaseEntitiesByIDs"] == 13  # 1202 unique ids / 100
    first = result.resources[0]
    assert first.title == emu.cases[first.id or ""]["title"]


async def test_iter_cases_yields_every_match_in_query_order(
    emu: Emulator, mc: AsyncMessageCenter
) -> None:
    flt = fql.eq("case.status", "open")
    expected = [i async for i in mc.query_cases(filter=flt, sort="case.created_time.asc")]
    got = [c.id async for c in mc.iter_cases(filter=flt, sort="case.created_time.asc", window=150)]
    assert got == expected
    assert len(got) == sum(1 for c in emu.cases.values() if c["status"] == "open") > 0


async def test_query_pages_are_fetched_concurrently_and_complete(
    emu: Emulator, mc: AsyncMessageCenter
) -> None:
    got = [i async for i in mc.query_cases(limit=100)]
    assert len(got) == len(set(got)) == len(emu.cases)
    assert emu.stats.requests["QueryCasesIdsByFilter"] == 12


async def test_bad_fql_is_a_400_from_the_server(mc: AsyncMessageCenter) -> None:
    with pytest.raises(BadRequestError) as info:
        await mc.query_cases(filter="case.nonsense:'x'")
    assert info.value.trace_id
    assert info.value.errors


async def test_a_429_storm_gives_one_shared_wait(emu: Emulator, url: str) -> None:
    emu.faults.add(operation="GetCaseEntitiesByIDs", kind="rate_limit", count=1, retry_after=0.3)
    async with client(url, max_ids_per_request=50, max_concurrency=4) as mc:
        gate = mc._pipeline.gate
        starts: list[float] = []
        original = gate.delay

        def spy(in_flight: int = 0) -> float:
            delay = original(in_flight)
            if delay > 0:
                starts.append(anyio.current_time() + delay)
            return delay

        gate.delay = spy  # type: ignore[method-assign]
        result = await mc.get_cases(list(emu.cases)[:400])
        limit = mc.rate_limit.limit if mc.rate_limit and mc.rate_limit.limit else 6000
    assert len(result.resources) == 400
    assert emu.stats.responses[429] == 1
    assert emu.stats.requests["GetCaseEntitiesByIDs"] == 9  # 8 batches + 1 retry
    assert starts, "tasks must wait on the shared deadline"
    # One deadline for all: the waiting tasks start together, at most spaced by the pacing
    # interval (no herd), never each with a back-off of its own (which would be ~0.3 s apart).
    spacing = 60 / limit
    assert max(starts) - min(starts) <= len(starts) * spacing + 0.05


async def test_upload_streams_the_file_from_disk(
    emu: Emulator, mc: AsyncMessageCenter, tmp_path: Path
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / "capture 01.txt"
    path.write_bytes(data)
    case_id = next(iter(emu.cases))
    uploaded = await mc.add_case_attachment(case_id=case_id, user_uuid="u-1", path=path)
    stored = emu.attachments[uploaded.resources[0].id or ""]
    assert stored.data == data
    assert uploaded.resources[0].name == "capture 01.txt"
    assert uploaded.resources[0].size == len(data)


class ChangingFile(io.BytesIO):
    """A file that is ``change`` bytes longer (or shorter) by the time the upload reads it."""

    name = "changing.txt"

    def __init__(self, data: bytes, change: int) -> None:
        super().__init__(data)
        self.change: int | None = change

    def read(self, size: int | None = -1, /) -> bytes:
        if self.change is not None and size != 0:  # read(0), a probe, reads nothing
            at, change, self.change = self.tell(), self.change, None
            if change > 0:
                self.seek(0, io.SEEK_END)
                self.write(b"x" * change)
            else:
                self.truncate(len(self.getvalue()) + change)
            self.seek(at)
        return super().read(size)


@pytest.mark.parametrize("change", [1000, -1000], ids=["grows", "shrinks"])
async def test_a_file_that_changes_size_while_uploading_attaches_nothing(
    emu: Emulator, mc: AsyncMessageCenter, change: int
) -> None:
    case_id = next(iter(emu.cases))
    before = len(emu.attachments)
    with pytest.raises(APIConnectionError, match="changed size while uploading") as info:
        await mc.add_case_attachment(case_id=case_id, user_uuid="u-1",
                                     file=ChangingFile(b"a" * 3000, change))
    assert info.value.may_have_been_applied is False
    assert len(emu.attachments) == before
    assert in_flight(mc) == 0


async def test_download_round_trip_and_save(
    emu: Emulator, mc: AsyncMessageCenter, tmp_path: Path
) -> None:
    data = os.urandom(1024 * 1024)
    case_id = next(iter(emu.cases))
    attachment_id = emu.add_attachment(case_id, "dump.pdf", data)
    async with mc.download_case_attachment(attachment_id) as download:
        assert download.content_length == len(data)
        assert download.content_type == "application/pdf"
        saved = await download.save(tmp_path)
    assert saved.read_bytes() == data
    assert saved.parent == tmp_path.resolve()
    assert not list(tmp_path.glob("*.part"))
    assert in_flight(mc) == 0


async def test_saves_into_one_folder_never_replace_each_other(
    emu: Emulator, mc: AsyncMessageCenter, tmp_path: Path
) -> None:
    # Two attachments called "screenshot.png", saved concurrently into one folder that already
    # holds one: all three files are kept, each with its own bytes.
    case_id = next(iter(emu.cases))
    bodies = [os.urandom(300_000), os.urandom(200_000)]
    ids = [emu.add_attachment(case_id, "screenshot.png", body) for body in bodies]
    (tmp_path / "screenshot.png").write_bytes(b"saved yesterday")
    saved: dict[str, Path] = {}

    async def save(attachment_id: str) -> None:
        async with mc.download_case_attachment(attachment_id) as download:
            saved[attachment_id] = await download.save(tmp_path)

    async with anyio.create_task_group() as tg:
        for attachment_id in ids:
            tg.start_soon(save, attachment_id)
    assert (tmp_path / "screenshot.png").read_bytes() == b"saved yesterday"
    assert sorted(p.name for p in saved.values()) == ["screenshot (1).png", "screenshot (2).png"]
    assert [saved[i].read_bytes() for i in ids] == bodies
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "screenshot (1).png", "screenshot (2).png", "screenshot.png"]


async def test_saves_into_a_folder_without_hard_links_keep_both_files(
    emu: Emulator, mc: AsyncMessageCenter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(src: object, dst: object) -> None:
        raise PermissionError(1, "hard links not supported here")  # FAT, some network shares

    monkeypatch.setattr(os, "link", no_links)
    case_id = next(iter(emu.cases))
    ids = [emu.add_attachment(case_id, "log", body) for body in (b"one", b"two")]
    for attachment_id in ids:
        async with mc.download_case_attachment(attachment_id) as download:
            await download.save(tmp_path)
    assert (tmp_path / "log").read_bytes() == b"one"
    assert (tmp_path / "log (1)").read_bytes() == b"two"
    assert len(list(tmp_path.iterdir())) == 2


async def test_a_save_cancelled_while_its_part_file_is_created_leaves_none(
    emu: Emulator, mc: AsyncMessageCenter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asyncio's own cancellation (asyncio.timeout, task.cancel) does not wait for the worker
    # thread creating the file: the random-named part file was created after the cleanup
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()
    create = partfile._create

    def held(path: Path) -> Any:
        entered.set()
        release.wait(10)
        try:
            return create(path)
        finally:
            finished.set()

    monkeypatch.setattr(partfile, "_create", held)
    attachment_id = emu.add_attachment(next(iter(emu.cases)), "f.zip", b"x" * 1000)
    async with mc.download_case_attachment(attachment_id) as download:
        task = asyncio.get_running_loop().create_task(download.save(tmp_path))
        await anyio.to_thread.run_sync(entered.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    release.set()
    await anyio.to_thread.run_sync(finished.wait, 10)
    assert list(tmp_path.iterdir()) == []


async def test_save_to_a_file_path_replaces_it(
    emu: Emulator, mc: AsyncMessageCenter, tmp_path: Path
) -> None:
    attachment_id = emu.add_attachment(next(iter(emu.cases)), "report.txt", b"fresh")
    target = tmp_path / "mine.txt"
    target.write_bytes(b"stale")
    async with mc.download_case_attachment(attachment_id) as download:
        assert await download.save(target) == target
    assert target.read_bytes() == b"fresh"
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


async def test_save_to_a_missing_folder_named_with_a_slash_creates_it(
    emu: Emulator, mc: AsyncMessageCenter, tmp_path: Path
) -> None:
    attachment_id = emu.add_attachment(next(iter(emu.cases)), "report.txt", b"data")
    async with mc.download_case_attachment(attachment_id) as download:
        saved = await download.save(f"{tmp_path}/downloads/2026/")
    assert saved == (tmp_path / "downloads" / "2026" / "report.txt").resolve()
    assert saved.read_bytes() == b"data"


async def test_the_longest_name_allowed_can_be_saved(
    emu: Emulator, mc: AsyncMessageCenter, tmp_path: Path
) -> None:
    name = "a" * 251 + ".txt"  # 255 characters, the most allowed: the part file's must fit too
    attachment_id = emu.add_attachment(next(iter(emu.cases)), name, b"long")
    async with mc.download_case_attachment(attachment_id) as download:
        first = await download.save(tmp_path)
    async with mc.download_case_attachment(attachment_id) as download:
        second = await download.save(tmp_path)
    assert first.name == name and first.read_bytes() == b"long"
    assert second.name.endswith(" (1).txt") and len(second.name.encode()) <= 255
    assert second.read_bytes() == b"long"


@contextmanager
def collector_paused() -> Iterator[list[object]]:
    """The cyclic collector off, objects it would free kept for inspection (``gc.garbage``)."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_enabled:
            gc.enable()


async def test_operations_leave_no_reference_cycles(
    emu: Emulator, mc: AsyncMessageCenter, tmp_path: Path
) -> None:
    # Everything a request allocates goes when its last reference does: nothing waits for the
    # collector, so a caller that pauses it around a large fetch does not pile up bodies.
    ids = list(emu.cases)
    attachment_id = emu.add_attachment(ids[0], "dump.pdf", os.urandom(300_000))
    upload = tmp_path / "up.pdf"
    upload.write_bytes(os.urandom(200_000))
    with collector_paused() as garbage:
        await mc.get_cases(ids[:250])  # the token first
        await mc.query_cases(limit=100)
        assert len([case async for case in mc.iter_cases(window=200)]) == len(ids)
        async with mc.download_case_attachment(attachment_id) as download:
            await download.save(tmp_path / "down.pdf")
        async with mc.download_case_attachment(attachment_id) as download:
            await download.aread()
        await mc.add_case_attachment(case_id=ids[0], user_uuid="u-1", path=upload)
        assert gc.collect() == 0, sorted({type(o).__name__ for o in garbage})
        assert in_flight(mc) == 0
        await mc.aclose()  # revokes the token; asyncio's closed sockets are its own cycles
        gc.collect()
        ours = {"httpx", "httpcore", "h11", "falcon_mc"}
        assert not [o for o in garbage if type(o).__module__.partition(".")[0] in ours]


async def test_truncated_download_raises_and_leaves_no_part_file(
    emu: Emulator, mc: AsyncMessageCenter, tmp_path: Path
) -> None:
    attachment_id = emu.add_attachment(next(iter(emu.cases)), "half.txt", b"x" * 200_000)
    emu.faults.add(operation="CaseDownloadAttachment", kind="truncate", fraction=0.5)
    with pytest.raises(APIConnectionError):
        async with mc.download_case_attachment(attachment_id) as download:
            await download.save(tmp_path / "half.txt")
    assert not list(tmp_path.iterdir())
    assert in_flight(mc) == 0


async def test_cancelled_download_leaves_no_part_file_and_no_open_request(
    emu: Emulator, mc: AsyncMessageCenter, tmp_path: Path
) -> None:
    attachment_id = emu.add_attachment(next(iter(emu.cases)), "slow.txt", b"y" * 500_000)
    emu.faults.add(operation="CaseDownloadAttachment", kind="slow_body", delay=0.05,
                   chunk_size=1024)
    with anyio.move_on_after(0.3) as scope:
        async with mc.download_case_attachment(attachment_id) as download:
            await download.save(tmp_path / "slow.txt")
    assert scope.cancelled_caught
    assert not list(tmp_path.iterdir())
    assert in_flight(mc) == 0


async def test_cancelled_iter_cases_leaves_no_open_request(
    emu: Emulator, mc: AsyncMessageCenter
) -> None:
    emu.settings.latency = 0.05
    seen = 0
    with anyio.move_on_after(0.2) as scope:
        async for _ in mc.iter_cases(window=200):
            seen += 1
    assert scope.cancelled_caught
    assert in_flight(mc) == 0
    emu.settings.latency = 0
    page = await mc.query_cases(limit=5)  # the client is still usable
    assert len(page.ids) == 5


async def test_token_expiring_mid_bulk_costs_one_refresh(emu: Emulator, url: str) -> None:
    now = [1000.0]
    emu.clock = lambda: now[0]
    async with client(url, max_ids_per_request=50, max_concurrency=8) as mc:
        await mc.query_cases(limit=1)
        tokens_before = mc._pipeline.auth.fetch_count
        now[0] += 10_000  # every token the emulator issued so far has expired
        result = await mc.get_cases(list(emu.cases)[:400])
    assert len(result.resources) == 400
    assert mc._pipeline.auth.fetch_count == tokens_before + 1
    assert emu.stats.responses[401] >= 1


async def test_revoked_token_is_recovered_once(emu: Emulator, url: str) -> None:
    async with client(url) as mc:
        await mc.query_cases(limit=1)
        token = await mc._pipeline.auth.get()
        async with httpx.AsyncClient(base_url=url) as raw:
            reply = await raw.post("/oauth2/revoke", data={"token": token},
                                   auth=("it", "it-secret"))
            assert reply.status_code == 200
        page = await mc.query_cases(limit=1)
        assert len(page.ids) == 1
        assert mc._pipeline.auth.fetch_count == 2


async def test_wrong_credentials_fail_at_once(emu: Emulator, url: str) -> None:
    emu.settings.credentials = ("right-id", "right-secret")
    async with client(url) as mc:
        with pytest.raises(OAuthError):
            await mc.query_cases(limit=1)
    assert emu.stats.requests["oauth2AccessToken"] == 1


async def test_client_revokes_its_token_on_close(emu: Emulator, url: str) -> None:
    async with client(url) as mc:
        await mc.query_cases(limit=1)
        token = await mc._pipeline.auth.get()
    async with httpx.AsyncClient(base_url=url) as raw:
        reply = await raw.get("/message-center/queries/cases/v1",
                              headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 401


async def test_write_dropped_after_processing_is_not_retried(emu: Emulator, url: str) -> None:
    emu.faults.add(operation="CreateCaseV2", kind="drop_after", count=1)
    before = len(emu.cases)
    async with client(url) as mc:
        with pytest.raises(APIConnectionError) as info:
            await mc.create_case_v2(content="c", title="t", type="fc:contact")
    assert info.value.may_have_been_applied is True
    assert len(emu.cases) == before + 1  # applied once, never twice


async def test_second_401_is_an_authentication_error(emu: Emulator, url: str) -> None:
    emu.faults.add(operation="QueryCasesIdsByFilter", kind="status", status=401)
    async with client(url) as mc:
        with pytest.raises(AuthenticationError):
            await mc.query_cases(limit=1)


@pytest.mark.parametrize("over", ["in-process", "loopback"])
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_representative_scenario_on_both_backends(backend: str, over: str, tmp_path: Path) -> None:
    """Paging, bulk get, retries, a 401 refresh, upload, streamed download and a cancelled
    download, under asyncio and under trio: on the in-process transport, and over loopback
    with the default transport (the lanes speaking HTTP/1.1 over the backend's sockets)."""
    emu = Emulator.seeded(n_cases=300, seed=5)
    emu.faults.add(operation="GetCaseEntitiesByIDs", kind="status", status=503, count=2)
    emu.faults.add(operation="QueryCasesIdsByFilter", kind="status", status=401, count=1)

    async def scenario(mc: AsyncMessageCenter, folder: Path) -> tuple[list[str], bytes]:
        ids = [i async for i in mc.query_cases(limit=100)]
        cases = await mc.get_cases(ids)
        uploaded = await mc.add_case_attachment(
            case_id=ids[0], user_uuid="u", file_data=b"trio and asyncio", filename="both.txt")
        async with mc.download_case_attachment(uploaded.resources[0].id or "") as download:
            saved = await download.save(folder)
        slow = emu.add_attachment(ids[0], "slow.txt", b"z" * 200_000)
        emu.faults.add(operation="CaseDownloadAttachment", kind="slow_body", delay=0.05,
                       chunk_size=1024, count=1)
        with anyio.move_on_after(0.2):
            async with mc.download_case_attachment(slow) as download:
                await download.save(folder / "slow.txt")
        return [c.id or "" for c in cases.resources], saved.read_bytes()

    async def run(base_url: str, transport: httpx.AsyncBaseTransport | None) -> tuple[list[str], bytes]:
        async with AsyncMessageCenter(client_id="a", client_secret="b", base_url=base_url,
                                      retry_base_delay=0, transport=transport,
                                      max_ids_per_request=50) as mc:
            if transport is None:
                assert isinstance(mc._pipeline.http._transport, LaneTransport)
            return await scenario(mc, tmp_path)

    if over == "in-process":
        ids, data = anyio.run(run, "https://emulator.invalid", emu.transport(), backend=backend)
    else:
        with emu.serve() as served:
            ids, data = anyio.run(run, served, None, backend=backend)
    assert sorted(ids) == sorted(emu.cases)
    assert data == b"trio and asyncio"
    assert not list(tmp_path.glob("*.part"))
    assert emu.stats.responses[503] == 2
    assert emu.stats.responses[401] == 1
