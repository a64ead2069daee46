"""One falcon-mc benchmark step in a fresh process; prints one ``RESULT {json}`` line.

Scenarios: ``bulk`` (get_cases of every id), ``download`` (stream an attachment to disk with
``save``), ``upload`` (``add_case_attachment(path=...)``), ``ratelimit`` (workers calling
``get_cases`` for ``--duration`` seconds against a per-minute budget).

Example::

    python benchmarks/_run_falcon_mc.py bulk --url http://127.0.0.1:8080 \
        --ids-file /tmp/ids.txt --concurrency 16 --batch 100
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import anyio
import httpx

from _common import (
    CLIENT_ID,
    CLIENT_SECRET,
    MemoryWatch,
    emit,
    measured,
    read_ids,
    runner_parser,
    verify_download,
)
from falcon_mc import AsyncMessageCenter, RateLimitError


class CountingTransport(httpx.AsyncBaseTransport):
    """Wraps the real transport and records (time, status) of every Message Center reply."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.replies: list[tuple[float, int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path.startswith("/message-center/"):
            self.replies.append((time.perf_counter(), response.status_code))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def _client(args: argparse.Namespace, **extra: Any) -> AsyncMessageCenter:
    return AsyncMessageCenter(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        base_url=args.url,
        max_concurrency=args.concurrency,
        max_ids_per_request=args.batch,
        **extra,
    )


async def bulk(args: argparse.Namespace) -> dict[str, Any]:
    ids = read_ids(args.ids_file)[: args.cases]
    async with _client(args) as mc:
        await mc.get_cases(ids[:1])  # token and first connection, not timed (as for FalconPy)
        with measured(gc_off=args.gc_off) as figures:
            envelope = await mc.get_cases(ids)
    return {"cases": len(envelope.resources), "errors": len(envelope.errors), **figures}


async def download(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out_dir) / "falcon-mc-download.pdf"
    async with _client(args, max_attachment_bytes=args.size + 1) as mc:
        await mc.get_cases(read_ids(args.ids_file)[:1])  # token, connection
        with MemoryWatch() as memory:
            wall0 = time.perf_counter()
            async with mc.download_case_attachment(args.attachment_id) as handle:
                await handle.save(out)
            wall = time.perf_counter() - wall0
    size = out.stat().st_size
    sha256 = verify_download(out, args.sha256, "falcon-mc")  # after the peak RSS was read
    out.unlink()
    return {"bytes": size, "sha256": sha256, "wall": wall, "growth_mib": memory.growth_mib,
            "memory_method": memory.method}


async def upload(args: argparse.Namespace) -> dict[str, Any]:
    file_size = Path(args.file).stat().st_size  # noqa: ASYNC240 (before the measured part)
    async with _client(args, max_attachment_bytes=args.size + 1) as mc:
        await mc.get_cases(read_ids(args.ids_file)[:1])  # token, connection
        with MemoryWatch() as memory:
            wall0 = time.perf_counter()
            envelope = await mc.add_case_attachment(
                case_id=args.case_id, user_uuid=args.user_uuid, path=args.file
            )
            wall = time.perf_counter() - wall0
    stored = envelope.resources[0] if envelope.resources else None
    return {"bytes": file_size, "server_size": stored.size if stored else None,
            "server_id": stored.id if stored else None, "wall": wall,
            "growth_mib": memory.growth_mib, "memory_method": memory.method}


async def ratelimit(args: argparse.Namespace) -> dict[str, Any]:
    ids = read_ids(args.ids_file)
    counter = CountingTransport(
        httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=args.concurrency + 4,
                                max_keepalive_connections=args.concurrency + 4)
        )
    )
    raised = 0
    calls = 0

    async def worker(index: int) -> None:
        nonlocal raised, calls
        position = index * args.batch
        while True:
            batch = ids[position % len(ids): position % len(ids) + args.batch]
            position += args.concurrency * args.batch
            try:
                await mc.get_cases(batch)
                calls += 1
            except RateLimitError:
                raised += 1

    async with _client(args, transport=counter) as mc:  # default retries
        start = time.perf_counter()
        with anyio.move_on_after(args.duration):
            async with anyio.create_task_group() as tg:
                for index in range(args.concurrency):
                    tg.start_soon(worker, index)
        elapsed = time.perf_counter() - start
    return _windows(counter.replies, start, args.duration, elapsed, raised, calls)


def _windows(
    replies: list[tuple[float, int]], start: float, duration: float, elapsed: float,
    raised: int, calls: int,
) -> dict[str, Any]:
    n_windows = max(1, round(duration / 60))
    windows = [{"ok": 0, "429": 0, "other": 0} for _ in range(n_windows)]
    for stamp, status in replies:
        offset = stamp - start
        if not 0 <= offset < duration:
            continue
        slot = windows[min(int(offset // 60), n_windows - 1)]
        key = "ok" if status == 200 else "429" if status == 429 else "other"
        slot[key] += 1
    ok = sum(w["ok"] for w in windows)
    return {
        "ok": ok,
        "429": sum(w["429"] for w in windows),
        "windows": windows,
        "per_minute": ok * 60 / duration,
        "elapsed": elapsed,
        "raised": raised,
        "calls": calls,
    }


SCENARIOS = {"bulk": bulk, "download": download, "upload": upload, "ratelimit": ratelimit}


def main() -> None:
    parser = runner_parser(__doc__, list(SCENARIOS))
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    emit(anyio.run(SCENARIOS[args.scenario], args))


if __name__ == "__main__":
    main()
