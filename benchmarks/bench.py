"""falcon-mc vs FalconPy 1.6.6 against the emulator on loopback: prints one table per scenario.

Every measurement runs in fresh processes: the emulator in one (``_serve.py``), each client
variant in another (``_run_falcon_mc.py``, ``_run_falconpy.py``), so the CPU time and the
memory (resident set size as the OS reports it) of a row are that client's alone.

Scenarios (``--quick`` sizes in brackets):

1. bulk fetch of 10,000 [2,000] cases, 100 ids per request, 50 ms latency per request;
2. the same with zero latency: client CPU seconds per 1,000 cases;
3. download and upload of a 256 MiB [64 MiB] attachment: peak RSS growth and MB/s;
4. sustained ``get_cases`` work for 120 s [60 s] against a budget of 6,000 [600] requests per
   sliding minute: requests per minute achieved and 429s per minute window.

Usage::

    python benchmarks/bench.py --quick            # 1-2 minutes
    python benchmarks/bench.py                    # full sizes, about 5 minutes
    python benchmarks/bench.py --only 1 2 --markdown docs/bench-tables.md
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode, urlsplit

from _common import CLIENT_ID, CLIENT_SECRET, RESULT_PREFIX

HERE = Path(__file__).resolve().parent
SERVE = HERE / "_serve.py"
RUN_MC = HERE / "_run_falcon_mc.py"
RUN_FP = HERE / "_run_falconpy.py"
MIB = 2**20


@dataclass(frozen=True)
class Sizes:
    cases: int
    batch: int
    concurrency: int
    latency: float
    attachment: int
    rate: int
    duration: float
    rate_batch: int
    repeat: int
    contrast: bool
    gc_off: bool = False


FULL = Sizes(cases=10_000, batch=100, concurrency=16, latency=0.05, attachment=256 * MIB,
             rate=6000, duration=120.0, rate_batch=10, repeat=3, contrast=True)
QUICK = Sizes(cases=2_000, batch=100, concurrency=16, latency=0.05, attachment=64 * MIB,
              rate=600, duration=60.0, rate_batch=10, repeat=3, contrast=False)


# -- processes ------------------------------------------------------------------------------------


class EmulatorProcess:
    """The emulator served from its own process; ``stats()`` asks it for its counters."""

    def __init__(self, python: str, workdir: Path, **knobs: Any) -> None:
        self.ids_file = workdir / "ids.txt"
        argv = [python, str(SERVE), "--ids-file", str(self.ids_file)]
        for key, value in knobs.items():
            if value is not None:
                argv += [f"--{key.replace('_', '-')}", str(value)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        line = self._stdout().readline()
        if not line:
            self.close()
            raise RuntimeError("the emulator process did not start (see its stderr above)")
        ready = json.loads(line)
        self.url: str = ready["url"]
        self.case_id: str = ready["case_id"]
        self.user_uuid: str = ready["user_uuid"]
        self.attachment_id: str | None = ready["attachment_id"]
        self.attachment_sha256: str | None = ready.get("attachment_sha256")

    def _stdout(self) -> IO[str]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def _ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        line = self._stdout().readline()
        if not line:
            raise RuntimeError(f"the emulator process ended before answering {command!r}")
        result: dict[str, Any] = json.loads(line)
        return result

    def stats(self) -> dict[str, Any]:
        return self._ask("stats")

    def attachment(self, att_id: str) -> dict[str, Any]:
        """``size`` and ``sha256`` of the bytes the emulator stores for ``att_id``."""
        return self._ask(f"attachment {att_id}")

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextlib.contextmanager
def emulator(python: str, workdir: Path, **knobs: Any) -> Iterator[EmulatorProcess]:
    emu = EmulatorProcess(python, workdir, **knobs)
    try:
        yield emu
    finally:
        emu.close()


def run_worker(python: str, script: Path, scenario: str, **options: Any) -> dict[str, Any]:
    """Run one measured step in a fresh process and return its result."""
    argv = [python, str(script), scenario]
    for key, value in options.items():
        if value is True:
            argv.append(f"--{key.replace('_', '-')}")
        elif value is not None and value is not False:
            argv += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX):])
            return result
    raise RuntimeError(
        f"{script.name} {scenario} failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
    )


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


# -- output ---------------------------------------------------------------------------------------


class Report:
    def __init__(self, markdown: Path | None) -> None:
        self.lines: list[str] = []
        self.markdown = markdown
        self.verdicts: list[tuple[str, bool]] = []

    def say(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def table(self, title: str, header: list[str], rows: list[list[str]]) -> None:
        self.say(f"### {title}")
        self.say()
        widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
        self.say("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
        self.say("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for row in rows:
            cells = (str(c).ljust(w) for c, w in zip(row, widths, strict=True))
            self.say("| " + " | ".join(cells) + " |")
        self.say()

    def verdict(self, name: str, ok: bool, detail: str) -> str:
        self.verdicts.append((name, ok))
        return f"{'PASS' if ok else 'MISS'}: {detail}"

    def write(self) -> None:
        if self.markdown is not None:
            self.markdown.write_text("\n".join(self.lines) + "\n")


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _missing_falconpy(python: str) -> str | None:
    """Why the worker interpreter cannot run the FalconPy side (None: it can)."""
    done = subprocess.run([python, "-c", "import falconpy, requests"], capture_output=True,
                          text=True, check=False)
    if done.returncode == 0:
        return None
    last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    return f"FalconPy cannot be imported by {python} ({last})"


def header(report: Report, sizes: Sizes, quick: bool) -> None:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    report.say(f"## falcon-mc benchmark ({'quick' if quick else 'full'} sizes)")
    report.say()
    report.say(f"- nproc: {affinity or os.cpu_count()} (os.cpu_count(): {os.cpu_count()})")
    report.say(f"- Python {platform.python_version()} ({platform.python_implementation()}), "
               f"{platform.system()} {platform.release()} {platform.machine()}")
    report.say(f"- falcon-mc {_version('falcon-mc')}, httpx {_version('httpx')}, "
               f"pydantic {_version('pydantic')}; FalconPy {_version('crowdstrike-falconpy')}, "
               f"requests {_version('requests')}")
    report.say(f"- emulator: separate process on 127.0.0.1; each client variant in a fresh "
               f"process; timings are the median of {sizes.repeat} runs where marked")
    if sizes.gc_off:
        report.say("- --gc-off: scenarios 1 and 2 run every client with the cyclic garbage "
                   "collector disabled around the timed call")
    report.say()


# -- scenarios ------------------------------------------------------------------------------------


def _full_gc(runs: list[dict[str, Any]]) -> str:
    """Full GC passes during each timed call, and what one full pass costs with the results
    alive (each walks every tracked object of the process)."""
    passes = "/".join(str(r.get("gc_full", "?")) for r in runs)
    return f"full GC passes: {passes} ({median_of(runs, 'gc_full_ms'):.0f} ms each after)"


def round_trip_floor(url: str, ids: list[str], samples: int = 15) -> float:
    """Median seconds for one ``get_cases`` request of ``ids``, sent with ``http.client`` over one
    kept-alive connection and read to its end: the emulator's answer time plus about the least a
    client can spend. No client finishes a round of requests faster."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
    try:
        form = urlencode({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
        conn.request("POST", "/oauth2/token", body=form,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        token = json.loads(conn.getresponse().read())["access_token"]
        body = json.dumps({"ids": ids})
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        times = []
        for _ in range(samples):
            start = time.perf_counter()
            conn.request("POST", "/message-center/entities/cases/GET/v1", body=body,
                         headers=headers)
            reply = conn.getresponse()
            if reply.status != 200 or len(json.loads(reply.read())["resources"]) != len(ids):
                raise RuntimeError(f"round-trip probe: HTTP {reply.status}")
            times.append(time.perf_counter() - start)
    finally:
        conn.close()
    return statistics.median(times)


def scenario_bulk(report: Report, python: str, sizes: Sizes, workdir: Path) -> None:
    batches = math.ceil(sizes.cases / sizes.batch)
    rounds = math.ceil(batches / sizes.concurrency)
    ideal = rounds * sizes.latency
    common = {"ids_file": workdir / "ids.txt", "cases": sizes.cases, "batch": sizes.batch,
              "gc_off": sizes.gc_off}
    with emulator(python, workdir, cases=sizes.cases, latency=sizes.latency) as emu:
        ids = emu.ids_file.read_text().split()
        floor = round_trip_floor(emu.url, ids[: sizes.batch])
        mc = [run_worker(python, RUN_MC, "bulk", url=emu.url, concurrency=sizes.concurrency,
                         **common) for _ in range(sizes.repeat)]
        fp_seq = run_worker(python, RUN_FP, "bulk", url=emu.url, threads=1, **common)
        fp_pool = [run_worker(python, RUN_FP, "bulk", url=emu.url, threads=sizes.concurrency,
                              **common) for _ in range(sizes.repeat)]
    for runs in (mc, [fp_seq], fp_pool):
        for run in runs:
            if run["cases"] != sizes.cases:
                raise RuntimeError(f"expected {sizes.cases} cases, got {run['cases']}")
    t_mc, t_seq, t_pool = median_of(mc, "wall"), fp_seq["wall"], median_of(fp_pool, "wall")
    rows = [
        ["ideal ceil(batches/concurrency) x latency",
         f"{ideal:.3f}", "1.00", f"{t_seq / ideal:.1f}x", ""],
        [f"falcon-mc get_cases (max_concurrency={sizes.concurrency})",
         f"{t_mc:.3f}", f"{t_mc / ideal:.2f}", f"{t_seq / t_mc:.1f}x",
         "runs: " + ", ".join(f"{r['wall']:.3f}" for r in mc)
         + f"; client CPU {median_of(mc, 'cpu'):.3f} s; {_full_gc(mc)}"],
        ["FalconPy get_cases, sequential batches",
         f"{t_seq:.3f}", f"{t_seq / ideal:.2f}", "1.0x",
         f"client CPU {fp_seq['cpu']:.3f} s; {_full_gc([fp_seq])}"],
        [f"FalconPy get_cases, ThreadPoolExecutor({sizes.concurrency})",
         f"{t_pool:.3f}", f"{t_pool / ideal:.2f}", f"{t_seq / t_pool:.1f}x",
         "runs: " + ", ".join(f"{r['wall']:.3f}" for r in fp_pool)
         + f"; client CPU {median_of(fp_pool, 'cpu'):.3f} s; {_full_gc(fp_pool)}"],
    ]
    report.table(
        f"1. Bulk fetch: {sizes.cases:,} cases, {sizes.batch} ids per request ({batches} "
        f"requests), {sizes.latency * 1000:.0f} ms latency per request",
        ["client", "wall s", "x ideal", "speedup vs FalconPy seq", "notes"], rows)
    report.say("- " + report.verdict("1a", t_mc <= 1.15 * ideal,
                                     f"falcon-mc within 1.15x of ideal: {t_mc / ideal:.2f}x"))
    report.say("- " + report.verdict("1b", t_seq / t_mc >= 15,
                                     f"falcon-mc >= 15x faster than FalconPy sequential: "
                                     f"{t_seq / t_mc:.1f}x"))
    report.say(f"- floor: one request of {sizes.batch} ids is answered in {floor * 1000:.1f} ms "
               f"(http.client, one connection, median of 15); {rounds} rounds at that floor take "
               f"{rounds * floor:.3f} s = {t_seq / (rounds * floor):.1f}x faster than FalconPy "
               f"sequential, the most any client reaches with {sizes.concurrency} in flight")
    report.say()


def scenario_cpu(report: Report, python: str, sizes: Sizes, workdir: Path) -> None:
    common = {"ids_file": workdir / "ids.txt", "cases": sizes.cases, "batch": sizes.batch,
              "gc_off": sizes.gc_off}
    with emulator(python, workdir, cases=sizes.cases, latency=0) as emu:
        variants: list[tuple[str, list[dict[str, Any]]]] = [
            (f"falcon-mc get_cases (max_concurrency={sizes.concurrency})",
             [run_worker(python, RUN_MC, "bulk", url=emu.url, concurrency=sizes.concurrency,
                         **common) for _ in range(sizes.repeat)]),
            ("FalconPy sequential (default: a connection per request)",
             [run_worker(python, RUN_FP, "bulk", url=emu.url, threads=1, **common)
              for _ in range(sizes.repeat)]),
            ("FalconPy sequential + requests.Session (keep-alive)",
             [run_worker(python, RUN_FP, "bulk", url=emu.url, threads=1, session=True, **common)
              for _ in range(sizes.repeat)]),
        ]
    rows = []
    per_k: dict[str, float] = {}
    for name, runs in variants:
        cpu = median_of(runs, "cpu")
        per_k[name] = cpu / sizes.cases * 1000
        rows.append([name, f"{per_k[name]:.4f}", f"{cpu:.3f}", f"{median_of(runs, 'wall'):.3f}",
                     f"{median_of(runs, 'held_mib'):.1f}"])
    report.table(
        f"2. Client CPU, zero latency: {sizes.cases:,} cases, {sizes.batch} ids per request",
        ["client", "CPU s per 1,000 cases", "CPU s total", "wall s",
         "MiB held by the results (RSS)"], rows)
    mine, theirs = per_k[variants[0][0]], per_k[variants[1][0]]
    best = min(per_k[variants[1][0]], per_k[variants[2][0]])
    report.say("- " + report.verdict(
        "2", mine <= theirs,
        f"falcon-mc CPU no worse than FalconPy sequential: {mine:.4f} vs {theirs:.4f} s per "
        f"1,000 cases ({theirs / mine:.2f}x less; vs FalconPy with a Session: "
        f"{best / mine:.2f}x)"))
    report.say()


def _check_content(emu: EmulatorProcess, direction: str, client: str, result: dict[str, Any],
                   size: int, sha256: str) -> None:
    """Fail unless a transfer moved exactly the right bytes (checked outside the timed part).

    download: the runner hashed the file it saved; its SHA-256 must be the emulator's attachment.
    upload: the emulator must store, under the id the client's reply named, bytes whose size and
    SHA-256 are those of the file the client was given.
    """
    where = f"{client} {direction}"
    if result["bytes"] != size:
        raise RuntimeError(f"{where}: {result['bytes']} bytes, not {size}")
    if direction == "download":
        if result.get("sha256") != sha256:
            raise RuntimeError(f"{where}: the file saved has SHA-256 {result.get('sha256')}, "
                               f"the emulator's attachment {sha256}")
        return
    if result.get("server_size") != size:
        raise RuntimeError(f"{where}: the reply gives size {result.get('server_size')}, not {size}")
    if not result.get("server_id"):
        raise RuntimeError(f"{where}: the reply names no attachment id")
    stored = emu.attachment(result["server_id"])
    if stored.get("size") != size or stored.get("sha256") != sha256:
        raise RuntimeError(f"{where}: the emulator stored {stored} for attachment "
                           f"{result['server_id']}; the file given to the client has {size} "
                           f"bytes, SHA-256 {sha256}")


def scenario_attachments(report: Report, python: str, sizes: Sizes, workdir: Path) -> None:
    size = sizes.attachment
    big = workdir / "big.pdf"
    line = b"falcon-mc benchmark upload line 0123456789abcdefghijklmnopqrstuvwxyz\n"
    block = line * (MIB // len(line) + 1)
    digest = hashlib.sha256()  # what the emulator must store after each upload
    with big.open("wb") as out:
        left = size
        while left:
            out.write(block[: min(left, MIB)])
            digest.update(block[: min(left, MIB)])
            left -= min(left, MIB)
    big_sha256 = digest.hexdigest()
    common = {"ids_file": workdir / "ids.txt", "size": size, "out_dir": workdir}
    with emulator(python, workdir, cases=100, attachment_bytes=size,
                  max_attachment_bytes=size + MIB) as emu:
        served_sha256 = emu.attachment_sha256
        if not served_sha256:
            raise RuntimeError("the emulator process reported no SHA-256 for its attachment")
        # each download runner hashes the file it saved (after the measured part) against this
        down: dict[str, Any] = {"attachment_id": emu.attachment_id, "sha256": served_sha256}
        up: dict[str, Any] = {"case_id": emu.case_id, "user_uuid": emu.user_uuid, "file": big}
        variants: dict[tuple[str, str], tuple[Path, dict[str, Any]]] = {
            ("download", "falcon-mc"): (RUN_MC, down),
            ("download", "FalconPy"): (RUN_FP, down),
            ("upload", "falcon-mc"): (RUN_MC, up),
            ("upload", "FalconPy"): (RUN_FP, up),
        }
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {key: [] for key in variants}
        for _ in range(sizes.repeat):  # interleaved, so that drift hits every variant alike
            for (direction, client), (script, options) in variants.items():
                result = run_worker(python, script, direction, url=emu.url, **options, **common)
                _check_content(emu, direction, client, result, size,
                               served_sha256 if direction == "download" else big_sha256)
                runs[(direction, client)].append(result)
    big.unlink()
    rows = []
    results: dict[tuple[str, str], dict[str, Any]] = {}
    for (direction, client), variant_runs in runs.items():
        for result in variant_runs:
            result["mbps"] = size / MIB / result["wall"]
        results[(direction, client)] = summary = {
            "growth_mib": max(r["growth_mib"] for r in variant_runs),
            "mbps": median_of(variant_runs, "mbps"),
            "wall": median_of(variant_runs, "wall"),
            "memory_method": variant_runs[0]["memory_method"],
        }
        rows.append([direction, client, f"{summary['growth_mib']:.1f}", f"{summary['mbps']:.0f}",
                     f"{summary['wall']:.2f}",
                     " / ".join(f"{r['mbps']:.0f}" for r in variant_runs)])
    report.table(
        f"3. Attachments: {size // MIB} MiB file, {sizes.repeat} runs each (falcon-mc: "
        f"download_case_attachment().save(path), add_case_attachment(path=); FalconPy: "
        f"download_case_attachment(id=) -> bytes, add_case_attachment(file_data=bytes))",
        ["direction", "client", "peak RSS growth MiB (max)", "MiB/s (median)", "wall s",
         "MiB/s per run"], rows)
    method = results[("download", "falcon-mc")]["memory_method"]
    report.say(f"- memory: peak resident set size during the transfer minus before it "
               f"({method}, /proc/self/status)")
    for direction in ("download", "upload"):
        mine, theirs = results[(direction, "falcon-mc")], results[(direction, "FalconPy")]
        report.say("- " + report.verdict(
            f"3-{direction}-rss", mine["growth_mib"] < 16,
            f"falcon-mc {direction} peak RSS growth under 16 MiB: {mine['growth_mib']:.1f} MiB "
            f"(FalconPy {theirs['growth_mib']:.1f} MiB)"))
        report.say("- " + report.verdict(
            f"3-{direction}-speed", mine["mbps"] >= theirs["mbps"],
            f"falcon-mc {direction} throughput no worse than FalconPy: {mine['mbps']:.0f} vs "
            f"{theirs['mbps']:.0f} MiB/s"))
    report.say()


def scenario_ratelimit(report: Report, python: str, sizes: Sizes, workdir: Path) -> None:
    rate, duration = sizes.rate, sizes.duration
    common = {"ids_file": workdir / "ids.txt", "batch": sizes.rate_batch,
              "duration": duration}
    results: list[tuple[str, dict[str, Any]]] = []
    with emulator(python, workdir, cases=2000, rate_limit=rate) as emu:
        result = run_worker(python, RUN_MC, "ratelimit", url=emu.url,
                            concurrency=sizes.concurrency, **common)
        result["server_429"] = emu.stats()["rate_limited"]
        results.append((f"falcon-mc, {sizes.concurrency} tasks", result))
    if sizes.contrast:
        with emulator(python, workdir, cases=2000, rate_limit=rate) as emu:
            result = run_worker(python, RUN_FP, "ratelimit", url=emu.url,
                                threads=sizes.concurrency, session=True, **common)
            result["server_429"] = emu.stats()["rate_limited"]
            results.append((f"FalconPy, {sizes.concurrency} threads (no pacing)", result))
    rows = []
    for name, result in results:
        windows = "; ".join(f"{w['ok']} ok / {w['429']} x 429" for w in result["windows"])
        rows.append([name, f"{result['per_minute']:.0f}", f"{result['per_minute'] / rate:.1%}",
                     str(result["429"]), str(result["server_429"]), windows])
    report.table(
        f"4. Sustained get_cases ({sizes.rate_batch} ids per request) for {duration:.0f} s "
        f"with a budget of R = {rate:,} requests per sliding minute",
        ["client", "requests/min", "of R", "429s seen", "429s sent by emulator",
         "per 60 s window"], rows)
    mine = results[0][1]
    worst = max(w["429"] for w in mine["windows"])
    report.say("- " + report.verdict("4-rate", mine["per_minute"] >= 0.95 * rate,
                                     f"falcon-mc achieves >= 95% of R: "
                                     f"{mine['per_minute'] / rate:.1%}"))
    report.say("- " + report.verdict("4-429", worst <= 1,
                                     f"at most one 429 per minute window: worst window {worst}"))
    if mine.get("raised"):
        report.say(f"- note: {mine['raised']} get_cases calls raised RateLimitError "
                   f"(default max_retries)")
    report.say()


SCENARIOS = {"1": scenario_bulk, "2": scenario_cpu, "3": scenario_attachments,
             "4": scenario_ratelimit}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="reduced sizes (1-2 minutes)")
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), default=None,
                        help="run only these scenarios")
    parser.add_argument("--repeat", type=int, default=None, help="runs per timed variant")
    parser.add_argument("--cases", type=int, default=None, help="cases fetched in 1 and 2")
    parser.add_argument("--batch", type=int, default=None, help="ids per request in 1 and 2")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="falcon-mc max_concurrency and FalconPy's thread count in 1 and 4 "
                             "(default 16)")
    parser.add_argument("--latency", type=float, default=None,
                        help="seconds per request in scenario 1, > 0 (scenario 2 is the "
                             "zero-latency run)")
    parser.add_argument("--attachment-mib", type=int, default=None, help="scenario 3 size")
    parser.add_argument("--rate", type=int, default=None, help="requests per minute, 4")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds of sustained work in 4: 60, 120, 180... (counted in "
                             "60 s windows)")
    parser.add_argument("--contrast", action=argparse.BooleanOptionalAction, default=None,
                        help="also run FalconPy against the rate limit (default: full only)")
    parser.add_argument("--gc-off", action="store_true",
                        help="scenarios 1 and 2: every client runs with gc.disable() around the "
                             "timed call")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the tables here")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter for the worker processes (default: this one)")
    args = parser.parse_args(argv)
    if args.latency is not None and not args.latency > 0:
        parser.error(f"--latency must be > 0 (got {args.latency:g}): scenario 1 compares with "
                     f"rounds x latency; for zero latency run scenario 2 (--only 2)")
    if args.duration is not None and not (args.duration > 0 and args.duration % 60 == 0):
        parser.error(f"--duration must be a positive multiple of 60 (got {args.duration:g}): "
                     f"scenario 4 counts requests in 60 s windows")
    sizes = QUICK if args.quick else FULL
    overrides = {
        "repeat": args.repeat, "cases": args.cases, "batch": args.batch,
        "concurrency": args.concurrency, "latency": args.latency, "rate": args.rate,
        "duration": args.duration, "contrast": args.contrast, "gc_off": args.gc_off or None,
        "attachment": None if args.attachment_mib is None else args.attachment_mib * MIB,
    }
    sizes = replace(sizes, **{k: v for k, v in overrides.items() if v is not None})
    scenarios = args.only or sorted(SCENARIOS)
    if any(key in ("1", "2", "3") for key in scenarios) or ("4" in scenarios and sizes.contrast):
        missing = _missing_falconpy(args.python)
        if missing:
            sys.exit(f"bench.py: {missing}; install the benchmark extra into that interpreter: "
                     f'python -m pip install -e ".[bench]"')
    report = Report(args.markdown)
    header(report, sizes, args.quick)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="falcon-mc-bench-") as tmp:
        for key in scenarios:
            SCENARIOS[key](report, args.python, sizes, Path(tmp))
    missed = [name for name, ok in report.verdicts if not ok]
    report.say(f"Targets: {len(report.verdicts) - len(missed)} of {len(report.verdicts)} met"
               + (f"; missed: {', '.join(missed)}" if missed else "")
               + f" (benchmark ran {time.perf_counter() - started:.0f} s)")
    report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
