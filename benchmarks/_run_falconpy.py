"""One FalconPy 1.6.6 benchmark step in a fresh process; prints one ``RESULT {json}`` line.

Scenarios: ``bulk`` (``MessageCenter.get_cases`` in batches, sequentially or in a
``ThreadPoolExecutor``), ``download`` (``download_case_attachment(id=...)`` returns the bytes,
then they are written to disk), ``upload`` (the file's bytes passed as ``file_data``),
``ratelimit`` (threads calling ``get_cases`` for ``--duration`` seconds; FalconPy does not pace).

``--session`` hands FalconPy a ``requests.Session`` (connection reuse, an option FalconPy
documents); without it FalconPy opens a connection per request, as it does by default.

Example::

    python benchmarks/_run_falconpy.py bulk --url http://127.0.0.1:8080 \
        --ids-file /tmp/ids.txt --batch 100 --threads 16
"""

from __future__ import annotations

import argparse
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from falconpy import MessageCenter

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


def _client(args: argparse.Namespace) -> Any:
    """FalconPy's MessageCenter, typed ``Any``: its stubs miss the keywords it accepts."""
    extra: dict[str, Any] = {}
    if args.session:
        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4,
                                                pool_maxsize=max(args.threads, 10))
        session.mount("http://", adapter)
        extra["session"] = session
    return MessageCenter(client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                         base_url=args.url, ssl_verify=False, **extra)


def _check(reply: Any) -> dict[str, Any]:
    if not isinstance(reply, dict) or reply.get("status_code") not in (200, 201):
        status = reply.get("status_code") if isinstance(reply, dict) else type(reply).__name__
        raise RuntimeError(f"FalconPy call failed: {status}")
    return reply


def bulk(args: argparse.Namespace) -> dict[str, Any]:
    ids = read_ids(args.ids_file)[: args.cases]
    mc = _client(args)
    _check(mc.get_cases(ids=ids[:1]))  # token and first connection, not timed
    batches = [ids[i : i + args.batch] for i in range(0, len(ids), args.batch)]
    with measured(gc_off=args.gc_off) as figures:
        if args.threads <= 1:
            replies = [_check(mc.get_cases(ids=batch)) for batch in batches]
        else:
            with ThreadPoolExecutor(args.threads) as pool:
                replies = [_check(r) for r in pool.map(lambda b: mc.get_cases(ids=b), batches)]
    cases = sum(len(r["body"]["resources"] or []) for r in replies)
    return {"cases": cases, **figures}


def download(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out_dir) / "falconpy-download.pdf"
    mc = _client(args)
    _check(mc.get_cases(ids=read_ids(args.ids_file)[:1]))
    with MemoryWatch() as memory:
        wall0 = time.perf_counter()
        data = mc.download_case_attachment(id=args.attachment_id)  # the whole body, as bytes
        if not isinstance(data, bytes):
            raise RuntimeError(f"FalconPy download failed: {data!r:.300}")
        out.write_bytes(data)
        del data
        wall = time.perf_counter() - wall0
    size = out.stat().st_size
    sha256 = verify_download(out, args.sha256, "FalconPy")  # after the peak RSS was read
    out.unlink()
    return {"bytes": size, "sha256": sha256, "wall": wall, "growth_mib": memory.growth_mib,
            "memory_method": memory.method}


def upload(args: argparse.Namespace) -> dict[str, Any]:
    mc = _client(args)
    _check(mc.get_cases(ids=read_ids(args.ids_file)[:1]))
    with MemoryWatch() as memory:
        wall0 = time.perf_counter()
        data = Path(args.file).read_bytes()
        reply = _check(mc.add_case_attachment(case_id=args.case_id, user_uuid=args.user_uuid,
                                              file_data=data, file_name=Path(args.file).name))
        del data
        wall = time.perf_counter() - wall0
    stored = (reply["body"]["resources"] or [{}])[0]
    return {"bytes": Path(args.file).stat().st_size, "server_size": stored.get("size"),
            "server_id": stored.get("id"), "wall": wall, "growth_mib": memory.growth_mib,
            "memory_method": memory.method}


def ratelimit(args: argparse.Namespace) -> dict[str, Any]:
    ids = read_ids(args.ids_file)
    mc = _client(args)
    replies: list[tuple[float, int]] = []
    lock = threading.Lock()
    start = time.perf_counter()
    deadline = start + args.duration

    def worker(index: int) -> None:
        position = index * args.batch
        while time.perf_counter() < deadline:
            batch = ids[position % len(ids): position % len(ids) + args.batch]
            position += args.threads * args.batch
            reply = mc.get_cases(ids=batch)
            with lock:
                replies.append((time.perf_counter(), int(reply.get("status_code", 0))))

    with ThreadPoolExecutor(args.threads) as pool:
        list(pool.map(worker, range(args.threads)))
    elapsed = time.perf_counter() - start
    n_windows = max(1, round(args.duration / 60))
    windows = [{"ok": 0, "429": 0, "other": 0} for _ in range(n_windows)]
    for stamp, status in replies:
        offset = stamp - start
        if not 0 <= offset < args.duration:
            continue
        key = "ok" if status == 200 else "429" if status == 429 else "other"
        windows[min(int(offset // 60), n_windows - 1)][key] += 1
    ok = sum(w["ok"] for w in windows)
    return {"ok": ok, "429": sum(w["429"] for w in windows), "windows": windows,
            "per_minute": ok * 60 / args.duration, "elapsed": elapsed}


SCENARIOS = {"bulk": bulk, "download": download, "upload": upload, "ratelimit": ratelimit}


def main() -> None:
    parser = runner_parser(__doc__, list(SCENARIOS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--session", action="store_true")
    args = parser.parse_args()
    emit(SCENARIOS[args.scenario](args))


if __name__ == "__main__":
    main()
