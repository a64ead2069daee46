"""Chaos run: mixed operations against the served emulator with ~20% of requests faulted.

This module holds the scenario (``run_chaos``) and runs it at a reduced size (300 operations,
marked ``chaos``); ``benchmarks/chaos.py`` runs the same scenario at full size (2,000 operations)
and prints the counts::

    python benchmarks/chaos.py                 # --ops 2000 --seed 20240601 --concurrency 32
    python -m pytest tests/test_chaos.py -s    # reduced size, counts printed with -s

What it does: an emulator seeded with cases and downloadable attachments is served on loopback
(``emu.serve()``) with fault rules on every Message Center operation (5xx statuses, 429 storms,
connections dropped before and after processing, truncated and slow bodies; the fault draws are
seeded; which request meets which fault still depends on scheduling under concurrency). A plan of
mixed operations (filtered queries, full query walks, bulk ``get_cases``, ``aggregate_cases``,
``create_case_v2``, ``add_case_activity``, ``add_case_attachment`` from bytes and from a path,
``download_case_attachment(...).save()``) runs concurrently, bounded. Every operation records
what the client reported: its result, or the exception with ``may_have_been_applied``.
Afterwards the emulator's state is compared with those reports:

* every read that succeeded returned the right data (compared with a snapshot of the seeded
  state, which no operation of the plan modifies: queries are restricted to seeded cases);
* every create, comment and upload carries a unique marker: it is found exactly once in the
  emulator when reported a success, at most once after a failure with
  ``may_have_been_applied=True``, never after a failure with ``may_have_been_applied=False``;
* every failure is a typed ``falcon_mc.APIError`` (never an httpx, pydantic or anyio error);
* no operation hung (each one runs under a deadline);
* reads fail only when their retries are exhausted (``max_retries=6``: with a 20% fault rate the
  chance of seven faulted attempts in a row is about 1e-5 per request, so none are expected);
  a download whose *body* is cut after the headers arrived is re-requested by ``save()`` within
  the retry budget; should one still surface, it is counted separately and downloaded again by
  the scenario, as a user would;
* no request in flight in the connection pool, no pool connection after ``aclose``, no client
  socket still established, no ``.part`` file left in the download folder.

``ChaosReport.problems`` lists every violated expectation; ``ChaosReport.format()`` the counts.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from falcon_mc import (
    AggregateQuery,
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    AsyncMessageCenter,
    fql,
)
from falcon_mc._lanes import LaneTransport
from falcon_mc.emulator import CASE_TYPES, REFERENCE_DATE, STATUSES, Emulator

__all__ = ["ChaosConfig", "ChaosReport", "OpResult", "add_faults", "run_chaos"]

CLIENT_ID = "chaos-client"
CLIENT_SECRET = "chaos-secret-never-printed"
USER = "chaos-user-0001"

#: Operation kinds and their weights in the plan.
OP_WEIGHTS: dict[str, int] = {
    "query_cases": 16,
    "query_walk": 5,
    "get_cases": 18,
    "aggregate_cases": 9,
    "create_case_v2": 13,
    "add_case_activity": 13,
    "upload_bytes": 7,
    "upload_path": 6,
    "download_save": 13,
}
READS = frozenset({"query_cases", "query_walk", "get_cases", "aggregate_cases", "download_save"})
WRITES = frozenset(OP_WEIGHTS) - READS

#: Fault rules on every Message Center operation: (kind, rate, extra arguments). The rates add
#: up to 0.215 (several kinds may fire on the same request; the first one that acts wins).
FAULTS: tuple[tuple[str, float, dict[str, Any]], ...] = (
    ("status", 0.035, {"status": 503}),
    ("status", 0.010, {"status": 500}),
    ("status", 0.010, {"status": 502}),
    ("rate_limit", 0.045, {"retry_after": 0.05}),
    ("drop_before", 0.035, {}),
    ("drop_after", 0.030, {}),
    ("truncate", 0.025, {"fraction": 0.5}),
    ("slow_body", 0.025, {"delay": 0.001, "chunk_size": 4096}),
)


@dataclass
class ChaosConfig:
    """Size and knobs of one run."""

    ops: int = 2000
    seed: int = 20240601
    n_cases: int = 400
    n_downloads: int = 30
    concurrency: int = 32
    """Operations in flight at once (the client caps requests at ``max_concurrency``)."""
    max_concurrency: int = 16
    max_retries: int = 6
    retry_base_delay: float = 0.01
    max_ids_per_request: int = 50
    op_timeout: float = 60.0
    """A single operation taking longer than this counts as a hang."""
    download_attempts: int = 5
    """How often the scenario (as a user would) re-downloads after a body cut short."""


@dataclass
class OpResult:
    """What the client reported for one operation of the plan."""

    index: int
    kind: str
    marker: str | None = None
    ok: bool = False
    error: BaseException | None = None
    hung: bool = False
    created_id: str | None = None
    """Id the client reported for a created case or uploaded attachment."""
    case_id: str | None = None
    payload: bytes | None = None
    download_failures: list[BaseException] = field(default_factory=list)
    """Downloads whose body was cut after the headers (surfaced, then retried by the scenario)."""
    wrong: list[str] = field(default_factory=list)
    """Read results that did not match the emulator's state."""

    @property
    def may_have_been_applied(self) -> bool | None:
        if isinstance(self.error, APIError):
            return self.error.may_have_been_applied
        return None


@dataclass
class ChaosReport:
    """The outcome of one run: per-operation results, emulator counters and the checks."""

    config: ChaosConfig
    results: list[OpResult]
    elapsed: float
    requests: Counter[str]
    faults: Counter[str]
    responses: Counter[int]
    tokens_issued: int
    occurrences: dict[int, int]
    """Per write (plan index): how many times its marker is in the emulator's state."""
    in_flight_after_run: int
    pool_connections_after_close: int
    client_closed: bool
    established_after_close: int | None
    part_files: list[str]
    problems: list[str]

    # -- derived counts -------------------------------------------------------------------------
    def ops_by_kind(self) -> Counter[str]:
        return Counter(r.kind for r in self.results)

    def successes(self) -> Counter[str]:
        return Counter(r.kind for r in self.results if r.ok)

    def failures(self) -> Counter[tuple[str, str, bool | None]]:
        return Counter(
            (r.kind, type(r.error).__name__, r.may_have_been_applied)
            for r in self.results
            if not r.ok and r.error is not None
        )

    def duplicates(self) -> int:
        return sum(1 for n in self.occurrences.values() if n > 1)

    def failed_reads(self) -> int:
        return sum(1 for r in self.results if r.kind in READS and not r.ok)

    def download_body_failures(self) -> Counter[str]:
        return Counter(type(e).__name__ for r in self.results for e in r.download_failures)

    def format(self) -> str:
        c = self.config
        total_requests = sum(self.requests.values())
        mc_requests = sum(n for op, n in self.requests.items() if not op.startswith("oauth2"))
        faults = sum(self.faults.values())
        lines = [
            f"chaos run: {len(self.results)} operations, seed {c.seed}, "
            f"{c.concurrency} in flight (client max_concurrency={c.max_concurrency}, "
            f"max_retries={c.max_retries}), {self.elapsed:.1f} s",
            "operations by kind: " + _fmt(self.ops_by_kind()),
            f"requests seen by the emulator: {total_requests} "
            f"({mc_requests} Message Center, {self.tokens_issued} token(s) issued)",
            "  per operation: " + _fmt(self.requests),
            f"faults injected: {faults} ({faults / max(mc_requests, 1):.1%} of Message Center "
            "requests)",
            "  per kind: " + _fmt(self.faults),
            "  replies per status: " + _fmt(self.responses),
            f"successes: {sum(self.successes().values())}  " + _fmt(self.successes()),
            f"failures: {sum(self.failures().values())}",
        ]
        for (kind, exc, applied), n in sorted(
            self.failures().items(), key=lambda kv: (kv[0][0], kv[0][1], str(kv[0][2]))
        ):
            lines.append(f"  {kind}: {exc} may_have_been_applied={applied}: {n}")
        writes = [r for r in self.results if r.kind in WRITES]
        found = Counter(self.occurrences.get(r.index, 0) for r in writes)
        lines += [
            f"writes: {len(writes)}; marker found 0x: {found[0]}, 1x: {found[1]}, "
            f">1x: {sum(n for k, n in found.items() if k > 1)}",
            f"duplicates found: {self.duplicates()}",
            f"failed reads: {self.failed_reads()}",
            "download bodies cut after the headers (surfaced typed, re-downloaded): "
            f"{sum(self.download_body_failures().values())} "
            + _fmt(self.download_body_failures()),
            f"hung operations: {sum(1 for r in self.results if r.hung)}",
            f"wrong read results: {sum(len(r.wrong) for r in self.results)}",
            f"requests in flight after the run: {self.in_flight_after_run}",
            f"pool connections after aclose: {self.pool_connections_after_close} "
            f"(client closed: {self.client_closed})",
            "client sockets still established after aclose: "
            + ("n/a" if self.established_after_close is None else str(self.established_after_close)),
            f".part files left: {len(self.part_files)}",
            f"problems: {len(self.problems)}",
        ]
        lines += [f"  PROBLEM: {p}" for p in self.problems[:50]]
        return "\n".join(lines)


def _fmt(counter: Counter[Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counter.items(), key=lambda kv: str(kv[0])))


def add_faults(emu: Emulator, seed: int) -> None:
    """Install the chaos fault rules on every Message Center operation (seeded draws)."""
    emu.faults.seed(seed)
    for kind, rate, extra in FAULTS:
        emu.faults.add("*", kind, rate=rate, **extra)  # type: ignore[arg-type]


# -- expectations from the seeded state ---------------------------------------------------------
def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class _Snapshot:
    """The seeded state, which no operation of the plan changes (reads are checked against it)."""

    cases: dict[str, dict[str, Any]]
    downloads: dict[str, bytes]
    download_names: dict[str, str]

    def query(self, status: str, case_type: str | None, descending: bool) -> list[str]:
        hits = [
            c for c in self.cases.values()
            if c["status"] == status and (case_type is None or c["type"] == case_type)
        ]
        # The emulator's order: by id, then (stable) by created_time.
        hits.sort(key=lambda c: str(c["id"]))
        hits.sort(key=lambda c: _instant(c["created_time"]), reverse=descending)
        return [str(c["id"]) for c in hits]

    def counts(self, key: str) -> dict[str, int]:
        return dict(Counter(str(c[key]) for c in self.cases.values()))


SEEDED = fql.lt("case.created_time", REFERENCE_DATE)
"""Only seeded cases: everything the run creates is dated now, after ``REFERENCE_DATE``."""


# -- the operations -----------------------------------------------------------------------------
class _Runner:
    def __init__(
        self, mc: AsyncMessageCenter, snap: _Snapshot, config: ChaosConfig, work: Path
    ) -> None:
        self.mc = mc
        self.snap = snap
        self.config = config
        self.uploads = work / "uploads"
        self.downloads = work / "downloads"
        self.uploads.mkdir()
        self.downloads.mkdir()
        self.case_ids = list(snap.cases)
        self.download_ids = list(snap.downloads)

    async def query_cases(self, r: OpResult, rng: random.Random) -> None:
        status = rng.choice(STATUSES)
        case_type = rng.choice((None, *CASE_TYPES))
        descending = rng.random() < 0.5
        limit = rng.choice((5, 20, 50, 100))
        expected = self.snap.query(status, case_type, descending)
        offset = rng.randrange(0, max(len(expected), 1))
        flt = fql.eq("case.status", status) & SEEDED
        if case_type is not None:
            flt &= fql.eq("case.type", case_type)
        sort = "case.created_time." + ("desc" if descending else "asc")
        page = await self.mc.query_cases(filter=flt, sort=sort, limit=limit, offset=offset)
        r.ok = True
        if page.total != len(expected):
            r.wrong.append(f"total {page.total} != {len(expected)}")
        if page.ids != expected[offset : offset + limit]:
            r.wrong.append(f"ids of page at offset {offset} differ")

    async def query_walk(self, r: OpResult, rng: random.Random) -> None:
        status = rng.choice(STATUSES)
        limit = rng.choice((10, 25, 40))
        expected = self.snap.query(status, None, False)
        flt = fql.eq("case.status", status) & SEEDED
        got = [i async for i in self.mc.query_cases(filter=flt, sort="case.created_time.asc",
                                                    limit=limit)]
        r.ok = True
        if got != expected:
            r.wrong.append(f"walk got {len(got)} ids, expected {len(expected)} (or another order)")

    async def get_cases(self, r: OpResult, rng: random.Random) -> None:
        ids = rng.sample(self.case_ids, rng.randint(1, min(180, len(self.case_ids))))
        missing = [f"chaos-missing-{r.index}"] if rng.random() < 0.3 else []
        envelope = await self.mc.get_cases(ids + missing)
        r.ok = True
        if [c.id for c in envelope.resources] != ids:
            r.wrong.append("get_cases: ids or order differ")
        for case in envelope.resources:
            want = self.snap.cases.get(case.id or "")
            if want is None or (case.title, case.body, case.status, case.type) != (
                want["title"], want["body"], want["status"], want["type"]
            ):
                r.wrong.append(f"get_cases: case {case.id} differs from the emulator's")
        if sorted(e.id or "" for e in envelope.errors) != missing:
            r.wrong.append(f"get_cases: errors {envelope.errors!r} != missing {missing}")

    async def aggregate_cases(self, r: OpResult, rng: random.Random) -> None:
        key = rng.choice(("status", "type"))
        query = AggregateQuery(
            field=f"case.{key}", name=f"by_{key}", type="terms", size=10, filter=str(SEEDED)
        )
        envelope = await self.mc.aggregate_cases(query)
        r.ok = True
        got = {str(b.label): b.count for b in envelope.resources[0].buckets}
        if got != self.snap.counts(key):
            r.wrong.append(f"aggregate by {key}: {got} != {self.snap.counts(key)}")

    async def create_case_v2(self, r: OpResult, rng: random.Random) -> None:
        created = await self.mc.create_case_v2(
            content=f"chaos run case {r.index}", title=r.marker, type=rng.choice(CASE_TYPES),
        )
        r.ok = True
        r.created_id = created.resources[0].id

    async def add_case_activity(self, r: OpResult, rng: random.Random) -> None:
        r.case_id = rng.choice(self.case_ids)
        await self.mc.add_case_activity(case_id=r.case_id, content=r.marker, user_uuid=USER)
        r.ok = True

    async def upload_bytes(self, r: OpResult, rng: random.Random) -> None:
        r.case_id = rng.choice(self.case_ids)
        r.payload = rng.randbytes(rng.randint(1, 40_000))
        uploaded = await self.mc.add_case_attachment(
            case_id=r.case_id, user_uuid=USER, file_data=r.payload, filename=r.marker,
        )
        r.ok = True
        r.created_id = uploaded.resources[0].id

    async def upload_path(self, r: OpResult, rng: random.Random) -> None:
        r.case_id = rng.choice(self.case_ids)
        r.payload = rng.randbytes(rng.randint(1, 150_000))
        assert r.marker is not None
        path = self.uploads / r.marker
        await anyio.Path(path).write_bytes(r.payload)
        uploaded = await self.mc.add_case_attachment(case_id=r.case_id, user_uuid=USER, path=path)
        r.ok = True
        r.created_id = uploaded.resources[0].id

    async def download_save(self, r: OpResult, rng: random.Random) -> None:
        att_id = rng.choice(self.download_ids)
        folder = self.downloads / f"op-{r.index}"
        await anyio.Path(folder).mkdir()
        for attempt in range(self.config.download_attempts):
            try:
                async with self.mc.download_case_attachment(att_id) as download:
                    saved = await download.save(folder)
            except (APIConnectionError, APIResponseValidationError) as exc:
                # The headers arrived, then the body was cut: the client surfaces it (typed) and
                # does not re-request; a user would download again.
                r.download_failures.append(exc)
                if attempt == self.config.download_attempts - 1:
                    raise
                continue
            break
        r.ok = True
        data = await anyio.Path(saved).read_bytes()
        if saved.parent != folder.resolve():
            r.wrong.append(f"download saved outside its folder: {saved}")
        if data != self.snap.downloads[att_id]:
            r.wrong.append(f"download {att_id}: {len(data)} bytes differ from the stored ones")
        if saved.name != self.snap.download_names[att_id]:
            r.wrong.append(f"download {att_id}: saved as {saved.name!r}")

    async def run_one(self, r: OpResult, rng: random.Random) -> None:
        op: Callable[[OpResult, random.Random], Awaitable[None]] = getattr(self, r.kind)
        try:
            with anyio.fail_after(self.config.op_timeout):
                await op(r, rng)
        except TimeoutError as exc:
            r.hung, r.error = True, exc
        except Exception as exc:  # everything is recorded and checked afterwards
            r.error = exc


def _plan(config: ChaosConfig, run_tag: str) -> list[tuple[OpResult, random.Random]]:
    rng = random.Random(config.seed)
    kinds = rng.choices(list(OP_WEIGHTS), weights=list(OP_WEIGHTS.values()), k=config.ops)
    plan = []
    for index, kind in enumerate(kinds):
        marker = None
        if kind == "create_case_v2":
            marker = f"chaos-case-{run_tag}-{index}"
        elif kind == "add_case_activity":
            marker = f"chaos-comment-{run_tag}-{index}"
        elif kind == "upload_bytes":
            marker = f"chaos-bytes-{run_tag}-{index}.txt"
        elif kind == "upload_path":
            marker = f"chaos-path-{run_tag}-{index}.csv"
        plan.append((OpResult(index=index, kind=kind, marker=marker),
                     random.Random(rng.getrandbits(64))))
    return plan


def _established_to(port: int) -> int | None:
    """Client sockets (remote port ``port``) in state ESTABLISHED; None where unknown."""
    count, seen = 0, False
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        seen = True
        for row in rows:
            cols = row.split()
            if len(cols) > 3 and cols[3] == "01" and int(cols[2].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count if seen else None


def _occurrences(emu: Emulator, results: list[OpResult]) -> dict[int, int]:
    titles = Counter(str(c.get("title")) for c in emu.cases.values())
    bodies = Counter(str(a.get("body")) for a in emu.activities.values())
    names = Counter(a.name for a in emu.attachments.values())
    table = {"create_case_v2": titles, "add_case_activity": bodies,
             "upload_bytes": names, "upload_path": names}
    return {r.index: table[r.kind][r.marker or ""] for r in results if r.kind in WRITES}


def _check(emu: Emulator, report: ChaosReport) -> list[str]:
    problems: list[str] = []
    by_title = {str(c.get("title")): c for c in emu.cases.values()}
    by_body = {str(a.get("body")): a for a in emu.activities.values()}
    by_name = {a.name: a for a in emu.attachments.values()}
    for r in report.results:
        where = f"op {r.index} ({r.kind})"
        if r.hung:
            problems.append(f"{where}: hung for more than {report.config.op_timeout} s")
        elif r.error is not None and not isinstance(r.error, APIError):
            problems.append(f"{where}: untyped exception {type(r.error).__name__}: {r.error}")
        for e in r.download_failures:
            if not isinstance(e, APIError):
                problems.append(f"{where}: untyped download failure {type(e).__name__}")
        problems += [f"{where}: wrong result: {w}" for w in r.wrong]
        if r.kind in READS:
            if not r.ok:
                problems.append(f"{where}: read failed: {r.error!r}")
            continue
        seen = report.occurrences[r.index]
        applied = r.may_have_been_applied
        if r.ok and seen != 1:
            problems.append(f"{where}: reported a success, marker found {seen} times")
        elif not r.ok and applied is False and seen != 0:
            problems.append(f"{where}: said not applied, marker found {seen} times")
        elif not r.ok and seen > 1:
            problems.append(f"{where}: failed, marker found {seen} times (duplicate)")
        if not r.ok:
            continue
        if r.kind == "create_case_v2":
            case = by_title.get(r.marker or "")
            if case is None or case["id"] != r.created_id:
                problems.append(f"{where}: reported id {r.created_id} is not the created case")
        elif r.kind == "add_case_activity":
            act = by_body.get(r.marker or "")
            if act is None or act["case_id"] != r.case_id:
                problems.append(f"{where}: comment not on case {r.case_id}")
        else:
            rec = by_name.get(r.marker or "")
            if rec is None or rec.id != r.created_id or rec.data != r.payload:
                problems.append(f"{where}: uploaded attachment differs from what was sent")
            elif rec.case_id != r.case_id:
                problems.append(f"{where}: attachment on the wrong case")
    if report.in_flight_after_run:
        problems.append(f"{report.in_flight_after_run} request(s) still in flight after the run")
    if report.pool_connections_after_close or not report.client_closed:
        problems.append("the connection pool is not closed after aclose")
    if report.established_after_close:
        problems.append(f"{report.established_after_close} client socket(s) still established")
    if report.part_files:
        problems.append(f".part files left: {report.part_files[:5]}")
    return problems


async def run_chaos(config: ChaosConfig, work: Path) -> ChaosReport:
    """Run the chaos scenario with scratch files under ``work`` (an empty folder)."""
    emu = Emulator.seeded(n_cases=config.n_cases, seed=config.seed)
    data_rng = random.Random(config.seed + 1)
    case_ids = list(emu.cases)
    downloads: dict[str, bytes] = {}
    names: dict[str, str] = {}
    for k in range(config.n_downloads):
        size = data_rng.choice((0, 1, 100, 4096, 65_536, 65_537, 200_000, 300_000))
        name = f"dl-{k}.{data_rng.choice(('txt', 'pdf', 'csv', 'png'))}"
        att_id = emu.add_attachment(data_rng.choice(case_ids), name, data_rng.randbytes(size))
        downloads[att_id], names[att_id] = emu.attachments[att_id].data, name
    snap = _Snapshot(
        cases={i: dict(c) for i, c in emu.cases.items()}, downloads=downloads,
        download_names=names,
    )
    add_faults(emu, config.seed)
    plan = _plan(config, run_tag=f"{config.seed:x}")
    started = time.perf_counter()
    with emu.serve() as url:
        port = int(url.rsplit(":", 1)[1])
        mc = AsyncMessageCenter(
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=url,
            max_retries=config.max_retries, retry_base_delay=config.retry_base_delay,
            max_concurrency=config.max_concurrency,
            max_ids_per_request=config.max_ids_per_request,
        )
        runner = _Runner(mc, snap, config, work)
        limiter = anyio.CapacityLimiter(config.concurrency)

        async def bounded(r: OpResult, rng: random.Random) -> None:
            async with limiter:
                await runner.run_one(r, rng)

        try:
            async with anyio.create_task_group() as tg:
                for r, rng in plan:
                    tg.start_soon(bounded, r, rng)
            transport = mc._pipeline.http._transport
            assert isinstance(transport, LaneTransport)
            in_flight = transport.busy
        finally:
            await mc.aclose()
        elapsed = time.perf_counter() - started
        pool_after = transport.connections
        established = _established_to(port)
    results = [r for r, _ in plan]
    report = ChaosReport(
        config=config,
        results=results,
        elapsed=elapsed,
        requests=Counter(emu.stats.requests),
        faults=Counter(emu.stats.faults),
        responses=Counter(emu.stats.responses),
        tokens_issued=emu.stats.tokens_issued,
        occurrences=_occurrences(emu, results),
        in_flight_after_run=in_flight,
        pool_connections_after_close=pool_after,
        client_closed=mc._pipeline.http.is_closed,
        established_after_close=established,
        part_files=sorted(str(p) for p in runner.downloads.rglob("*.part")),
        problems=[],
    )
    report.problems = _check(emu, report)
    return report


# -- the tests -----------------------------------------------------------------------------------
FAULT_KINDS = {"status", "rate_limit", "drop_before", "drop_after", "truncate", "slow_body"}


@pytest.mark.chaos
async def test_chaos_run_loses_nothing_duplicates_nothing_leaks_nothing(tmp_path: Path) -> None:
    config = ChaosConfig(ops=300, n_cases=200, n_downloads=20, seed=4242, op_timeout=15.0)
    report = await run_chaos(config, tmp_path)
    print("\n" + report.format())

    assert report.problems == []
    # The scenario really was chaotic: every fault kind fired, about a fifth of the requests.
    assert set(report.faults) >= FAULT_KINDS
    mc_requests = sum(n for op, n in report.requests.items() if not op.startswith("oauth2"))
    assert 0.12 <= sum(report.faults.values()) / mc_requests <= 0.30
    assert set(report.ops_by_kind()) == READS | WRITES
    # Reads: max_retries=6 against a 20% fault rate, so none may fail.
    assert report.failed_reads() == 0
    # Writes: successes are found exactly once, failures never twice, and every failure is typed
    # and says whether it may have been applied.
    assert report.duplicates() == 0
    for r in report.results:
        if r.kind in WRITES and not r.ok:
            assert isinstance(r.error, APIError), r.error
            if not r.error.may_have_been_applied:
                assert report.occurrences[r.index] == 0
        elif r.kind in WRITES:
            assert report.occurrences[r.index] == 1
    assert not any(r.hung for r in report.results)
    # Nothing left open or half-written.
    assert report.in_flight_after_run == 0
    assert report.pool_connections_after_close == 0 and report.client_closed
    assert report.established_after_close in (0, None)
    assert report.part_files == []


async def test_download_cut_once_is_retried_like_any_read(tmp_path: Path) -> None:
    emu = Emulator.seeded(n_cases=1, seed=1)
    data = bytes(range(256)) * 800
    attachment_id = emu.add_attachment(next(iter(emu.cases)), "report.txt", data)
    emu.faults.add(operation="CaseDownloadAttachment", kind="truncate", count=1)
    with emu.serve() as url:
        async with (
            AsyncMessageCenter(client_id="a", client_secret="b", base_url=url, max_retries=3,
                               retry_base_delay=0) as mc,
            mc.download_case_attachment(attachment_id) as download,
        ):
            saved = await download.save(tmp_path)
    assert saved.read_bytes() == data
