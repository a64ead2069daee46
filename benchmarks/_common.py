"""Helpers shared by the benchmark's worker processes (memory, CPU, result lines).

Memory is what the operating system reports for this process (``/proc/self/status``): the peak
(``VmHWM``) is reset through ``/proc/self/clear_refs`` right before a measured step, so "peak
growth" is the highest resident set size during the step minus the resident set size before it.
Where ``clear_refs`` is not available, a psutil sampler thread stands in (coarser).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib
import json
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "RESULT_PREFIX",
    "MemoryWatch",
    "emit",
    "measured",
    "read_ids",
    "rss_kib",
    "sha256_file",
    "verify_download",
]

RESULT_PREFIX = "RESULT "
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret"

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    try:
        text = _STATUS.read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


@contextmanager
def measured(*, gc_off: bool = False) -> Iterator[dict[str, float]]:
    """Time a step: wall and CPU seconds, full GC passes during it, and one full pass after it.

    A full collection runs first (as ``timeit`` and pyperf do), so that whether one falls inside
    the step depends on the step, not on what the process did before. The pass timed after the
    step (``gc_full_ms``) runs while the step's results are still alive: it is what holding them
    costs each time the collector walks the whole process. ``held_mib`` is the resident set
    size after the step minus before it, results still alive: the memory they hold, as the OS
    sees it. ``gc_off`` disables the collector for the step (``gc.disable()`` around the call,
    as a caller fetching a very large set may do).
    """
    gc.collect()
    figures: dict[str, float] = {"gc_full": 0}
    rss_before = rss_kib()
    if gc_off:
        gc.disable()

    def count_full(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            figures["gc_full"] += 1

    gc.callbacks.append(count_full)
    try:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        yield figures
        figures["wall"] = time.perf_counter() - wall0
        figures["cpu"] = time.process_time() - cpu0
    finally:
        gc.callbacks.remove(count_full)
        if gc_off:
            gc.enable()
    figures["held_mib"] = (rss_kib() - rss_before) / 1024
    start = time.perf_counter()
    gc.collect()
    figures["gc_full_ms"] = (time.perf_counter() - start) * 1000


def rss_kib() -> int:
    """Resident set size of this process, in KiB."""
    value = _status_kib("VmRSS")
    if value is not None:
        return value
    psutil = importlib.import_module("psutil")  # untyped; only where /proc is missing
    return int(psutil.Process().memory_info().rss // 1024)


class MemoryWatch:
    """Peak RSS growth over a block: ``with MemoryWatch() as w: ...; w.growth_mib``."""

    def __init__(self) -> None:
        self.baseline_kib = 0
        self.peak_kib = 0
        self.method = "VmHWM"
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    def __enter__(self) -> MemoryWatch:
        self.baseline_kib = rss_kib()
        try:
            _CLEAR_REFS.write_text("5")  # reset VmHWM to the current RSS
        except OSError:
            self.method = "psutil sampling every 5 ms"
            self.peak_kib = self.baseline_kib
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, rss_kib())
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        if self._sampler is not None:
            self._stop.set()
            self._sampler.join()
        else:
            self.peak_kib = _status_kib("VmHWM") or rss_kib()

    @property
    def growth_mib(self) -> float:
        return max(0, self.peak_kib - self.baseline_kib) / 1024


def read_ids(path: str) -> list[str]:
    """The case ids the emulator process wrote, one a line."""
    return [line for line in Path(path).read_text().splitlines() if line]


def sha256_file(path: Path, chunk: int = 2**20) -> str:
    """SHA-256 hex digest of a file, read in ``chunk``-byte pieces (never the whole file at once).

    Called only after a measured step (after ``MemoryWatch`` has read the peak), so neither the
    timing nor the memory figure includes it.
    """
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while block := src.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_download(path: Path, expected_sha256: str, who: str) -> str:
    """Hash a downloaded file and compare it with the emulator's attachment; fail loudly."""
    actual = sha256_file(path)
    if expected_sha256 and actual != expected_sha256:
        raise SystemExit(
            f"{who} download: content mismatch, SHA-256 {actual} on disk, the emulator's "
            f"attachment is {expected_sha256} ({path.stat().st_size} bytes on disk)"
        )
    return actual


def emit(result: dict[str, Any]) -> None:
    """Print the one result line the orchestrator reads."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def runner_parser(description: str | None, scenarios: list[str]) -> argparse.ArgumentParser:
    """The arguments both client runners take (each adds its own few)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("scenario", choices=sorted(scenarios))
    parser.add_argument("--url", required=True)
    parser.add_argument("--ids-file", required=True)
    parser.add_argument("--cases", type=int, default=None)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--attachment-id", default="")
    parser.add_argument("--sha256", default="",
                        help="download: the SHA-256 the downloaded file must have")
    parser.add_argument("--case-id", default="")
    parser.add_argument("--user-uuid", default="")
    parser.add_argument("--file", default="")
    parser.add_argument("--out-dir", default=".")
    parser.add_argument("--size", type=int, default=0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--gc-off", action="store_true",
                        help="the cyclic garbage collector off during the timed call")
    return parser
