"""``falcon-mc demo``: a timed tour of the client against the embedded emulator.

No credentials and no network beyond loopback: the emulator is seeded and served on
``127.0.0.1`` (a real HTTP server in a background thread), and the tour talks to it through
:class:`~falcon_mc.AsyncMessageCenter` exactly as it would to a tenant.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer
from rich.console import Console
from rich.table import Table

from .. import fql
from .._client import AsyncMessageCenter
from .._version import __version__
from ..emulator import Emulator
from ..models import AggregateQuery, Case
from ._core import (
    EMULATOR_CASES,
    EMULATOR_CLIENT_ID,
    EMULATOR_SECRET,
    EMULATOR_SEED,
    Output,
    global_options,
    guard,
    state,
    verbose_logging,
)
from ._render import activities_table, aggregation_table, cases_table

__all__ = ["demo"]

STEPS = 6
BATCH = 25
"""Ids per get-by-ids request in the demo, small so that the fan-out is visible."""

SAMPLE_NAME = "falcon-mc-demo.txt"


@dataclass
class Tour:
    """Prints numbered, timed steps and counts the emulator's requests per step."""

    console: Console
    emu: Emulator
    steps: list[dict[str, Any]] = field(default_factory=list)
    _seen: Counter[str] = field(default_factory=Counter)

    def _requests_since(self) -> Counter[str]:
        now = Counter(self.emu.stats.requests)
        delta = now - self._seen
        self._seen = now
        return delta

    @contextmanager
    def step(self, number: int, title: str) -> Iterator[None]:
        """One step: a heading, the body's output, then its time and request count."""
        self.console.print()
        self.console.print(f"[bold cyan]Step {number}/{STEPS}[/] [bold]{title}[/]")
        self._requests_since()
        started = time.perf_counter()
        yield
        elapsed = time.perf_counter() - started
        requests = self._requests_since()
        ops = ", ".join(f"{op} x{n}" for op, n in sorted(requests.items()))
        counted = f", {sum(requests.values())} HTTP request(s): {ops}" if ops else ""
        self.console.print(f"  [green]done[/] in {elapsed * 1000:.0f} ms{counted}")
        self.steps.append({"step": number, "title": title, "ms": round(elapsed * 1000, 1),
                           "requests": sum(requests.values())})


async def _busiest(mc: AsyncMessageCenter, cases: list[Case]) -> Case:
    """The case with the most activities among ``cases`` (their totals asked concurrently)."""
    totals: dict[str, int] = {}

    async def count(case_id: str) -> None:
        totals[case_id] = (await mc.query_activities(case_id=case_id, limit=1)).total or 0

    async with anyio.create_task_group() as tg:
        for case in cases:
            if case.id:
                tg.start_soon(count, case.id)
    return max(cases, key=lambda c: totals.get(c.id or "", -1))


async def _tour(
    tour: Tour, client: dict[str, Any], sample: Path, downloads: Path
) -> dict[str, Any]:
    say = tour.console.print
    async with AsyncMessageCenter(**client) as mc:
        with tour.step(1, "Query open cases (QueryCasesIdsByFilter)"):
            open_cases = fql.eq("case.status", "open")
            say(f"  FQL built with falcon_mc.fql: [magenta]{open_cases}[/]")
            ids = [i async for i in mc.query_cases(
                filter=open_cases, sort="case.created_time.desc", limit=100
            )]
            say(f"  {len(ids)} open case ids, paged 100 at a time (pages fetched concurrently)")
            n_open = len(ids)
            if not ids:  # a small seed may have none: tour every case instead
                ids = [i async for i in mc.query_cases(sort="case.created_time.desc", limit=100)]
                say(f"  none open, so the tour goes on with all {len(ids)} cases")

        with tour.step(2, "Fetch them concurrently (GetCaseEntitiesByIDs)"):
            cases = (await mc.get_cases(ids)).resources
            batches = -(-len(ids) // BATCH)
            say(f"  {len(cases)} cases fetched in {batches} batches of up to {BATCH} ids, "
                "in flight together; the 10 newest:")
            say(cases_table(cases[:10]))

        with tour.step(3, "Aggregate by status and by week (AggregateCases)"):
            result = await mc.aggregate_cases(
                AggregateQuery(name="by_status", type="terms", field="case.status", size=10),
                AggregateQuery(name="by_week", type="date_histogram", field="case.created_time",
                               interval="week"),
            )
            by_status, by_week = result.resources[0], result.resources[1]
            say(aggregation_table(by_status))
            say(aggregation_table(by_week, last=12))

        with tour.step(4, "Comment on a case and read its activities (CaseAddActivity, "
                          "QueryActivityByCaseID, GetCaseActivityByIds)"):
            target = await _busiest(mc, cases[:10])
            case_id = target.id or ""
            user = (target.assigner.uuid if target.assigner else None) or next(
                iter(tour.emu.users)
            )
            comment = (f"Looking into this now (posted by falcon-mc demo at "
                       f"{time.strftime('%H:%M:%S')})")
            say(f"  the busiest of the 10 newest open cases: [cyan]{case_id}[/] {target.title}")
            await mc.add_case_activity(case_id=case_id, content=comment, user_uuid=user)
            activity_ids = [a async for a in mc.query_activities(
                case_id=case_id, sort="activity.created_time.asc"
            )]
            activities = (await mc.get_case_activity(activity_ids)).resources
            say(activities_table(activities, highlight=comment))
            if not any(a.body == comment for a in activities):
                raise RuntimeError("the new comment is not among the case's activities")

        with tour.step(5, "Upload an attachment and download it back (CaseAddAttachment, "
                          "CaseDownloadAttachment)"):
            original = await anyio.Path(sample).read_bytes()
            uploaded = await mc.add_case_attachment(case_id=case_id, user_uuid=user,
                                                    path=sample)
            attachment = uploaded.resources[0]
            assert attachment.id is not None
            say(f"  uploaded {sample.name} ({len(original)} bytes): attachment "
                f"[cyan]{attachment.id}[/]")
            async with mc.download_case_attachment(attachment.id) as download:
                saved = await download.save(downloads)
                content_type = download.content_type
            copy = await anyio.Path(saved).read_bytes()
            if copy != original:
                raise RuntimeError("the downloaded bytes differ from the uploaded ones")
            digest = hashlib.sha256(copy).hexdigest()[:16]
            say(f"  downloaded (streamed to disk) as {saved.name}, {len(copy)} bytes, "
                f"{content_type}; sha256 {digest}... [green]matches[/]")

        limit = mc.rate_limit
        return {
            "cases_fetched": len(cases),
            "open_cases": n_open,
            "activities_read": len(activities),
            "comment_case": case_id,
            "attachment_id": attachment.id,
            "attachment_bytes": len(copy),
            "rate_limit_remaining": limit.remaining if limit else None,
        }


def _summary(tour: Tour, facts: dict[str, Any], elapsed: float, url: str) -> dict[str, Any]:
    requests = Counter(tour.emu.stats.requests)
    total_requests = sum(requests.values())
    table = Table(title="What the demo did", title_justify="left", show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(max_width=100)
    table.add_row("emulator", url)
    table.add_row("HTTP requests", f"{total_requests} ("
                  + ", ".join(f"{op} x{n}" for op, n in sorted(requests.items())) + ")")
    table.add_row("cases fetched", str(facts["cases_fetched"]))
    table.add_row("activities read", str(facts["activities_read"]))
    table.add_row("comment added to", str(facts["comment_case"]))
    table.add_row("attachment round trip",
                  f"{facts['attachment_bytes']} bytes up and down, identical")
    if facts["rate_limit_remaining"] is not None:
        table.add_row("rate limit remaining", str(facts["rate_limit_remaining"]))
    table.add_row("total time", f"{elapsed:.2f} s")
    with tour.step(6, "Summary"):
        tour.console.print(table)
    return {**facts, "requests": total_requests, "requests_by_operation": dict(requests),
            "total_seconds": round(elapsed, 3), "steps": tour.steps}


@global_options()
def demo(
    ctx: typer.Context,
    cases: Annotated[int, typer.Option(min=1, help="Cases to seed.")] = EMULATOR_CASES,
    seed: Annotated[int, typer.Option(help="Seed of the data.")] = EMULATOR_SEED,
    in_process: Annotated[
        bool, typer.Option(help="Talk to the emulator in-process instead of over loopback HTTP.")
    ] = False,
) -> None:
    """Tour the API against the embedded emulator: no credentials, no network needed."""
    options = state(ctx)
    out = Output(json_mode=options.json)
    console = out.err if options.json else out.out
    if options.base_url or options.cloud or options.emulator:
        out.note("[yellow]note:[/] the demo always runs against its own embedded emulator; "
                 "--cloud/--base-url/--emulator are ignored")
    started = time.perf_counter()
    emu = Emulator.seeded(n_cases=cases, seed=seed)
    with verbose_logging(options.verbose), guard(out), \
            tempfile.TemporaryDirectory(prefix="falcon-mc-demo-") as tmp:
        sample = Path(tmp) / SAMPLE_NAME
        sample.write_text(
            "falcon-mc demo attachment\n" + "".join(
                f"line {n}: the quick brown fox jumps over the lazy dog\n" for n in range(200)
            ),
            encoding="utf-8",
        )
        downloads = Path(tmp) / "downloads"
        downloads.mkdir()
        client: dict[str, Any] = {
            "client_id": EMULATOR_CLIENT_ID,
            "client_secret": EMULATOR_SECRET,
            "max_ids_per_request": BATCH,
            "retry_base_delay": 0.0,
        }
        tour = Tour(console=console, emu=emu)
        if in_process:
            url = "in-process transport"
            console.print(f"[bold]falcon-mc {__version__} demo[/]: embedded emulator with "
                          f"{cases} seeded cases (seed {seed}), {url}")
            client.update(base_url="https://emulator.falcon-mc.invalid",
                          transport=emu.transport())
            facts = anyio.run(_tour, tour, client, sample, downloads)
        else:
            with emu.serve(host="127.0.0.1", port=0) as url:
                console.print(f"[bold]falcon-mc {__version__} demo[/]: embedded emulator with "
                              f"{cases} seeded cases (seed {seed}), serving HTTP at {url}")
                client.update(base_url=url)
                facts = anyio.run(_tour, tour, client, sample, downloads)
        summary = _summary(tour, facts, time.perf_counter() - started, url)
    if options.json:
        out.json(summary)
