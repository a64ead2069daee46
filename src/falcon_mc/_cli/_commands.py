"""The real commands: cases, activities, attachments, aggregate, export, emulator.

Each is a plain function registered on the typer app by :mod:`falcon_mc.cli`; its async body runs
through :func:`~falcon_mc._cli._core.execute`.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .._client import AsyncMessageCenter
from .._exceptions import InvalidArgumentError
from .._partfile import PartFile
from ..emulator import CASE_TYPES, Emulator
from ..models import Case, CaseActivity
from ._core import (
    EMULATOR_CASES,
    EMULATOR_SEED,
    ExitCode,
    Output,
    Session,
    execute,
    global_options,
    guard,
    state,
    verbose_logging,
)
from ._render import (
    activities_table,
    aggregation_table,
    case_detail,
    cases_table,
    dump,
)

__all__ = [
    "activities_list",
    "aggregate",
    "attachments_download",
    "attachments_upload",
    "cases_comment",
    "cases_create",
    "cases_get",
    "cases_list",
    "cases_update",
    "emulator",
    "export",
]

MAX_PAGE = 500

FilterOpt = Annotated[
    str | None,
    typer.Option("--filter", "-f", help="FQL filter, e.g. \"case.status:'open'\".",
                 show_default=False),
]
UserUuidOpt = Annotated[
    str | None,
    typer.Option(
        "--user-uuid", envvar="FALCON_USER_UUID", show_default=False,
        help="UUID of the Falcon user acting (default: $FALCON_USER_UUID; with --emulator, "
        "a seeded user).",
    ),
]


T = TypeVar("T")


@asynccontextmanager
async def _closing(iterator: AsyncIterator[T]) -> AsyncGenerator[AsyncIterator[T]]:
    """Close an async generator when the block ends (also when left early)."""
    try:
        yield iterator
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


async def _read_text(value: str) -> str:
    """``-`` means: read the text from stdin, as UTF-8."""
    if value != "-":
        return value
    data: bytes = await anyio.to_thread.run_sync(sys.stdin.buffer.read)
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise InvalidArgumentError(
            "content", f"stdin is not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x})"
        ) from None


def _user_uuid(session: Session, given: str | None, *, required: bool) -> str | None:
    if given:
        return given
    if session.emulator is not None and session.emulator.users:
        return next(iter(session.emulator.users))
    if required:
        raise InvalidArgumentError(
            "user_uuid", "required: pass --user-uuid or set FALCON_USER_UUID"
        )
    return None


async def _case_ids(
    mc: AsyncMessageCenter, fql: str | None, sort: str | None, limit: int, offset: int
) -> tuple[list[str], int | None]:
    """Up to ``limit`` case ids from ``offset``, and the total the server reported."""
    if limit <= MAX_PAGE:
        page = await mc.query_cases(filter=fql, sort=sort, limit=limit, offset=offset or None)
        return page.ids, page.total
    ids: list[str] = []
    total: int | None = None
    paginator = mc.query_cases(filter=fql, sort=sort, limit=MAX_PAGE, offset=offset or None)
    async with _closing(paginator.pages()) as pages:
        async for page in pages:
            total = page.total if total is None else total
            ids.extend(page.ids)
            if len(ids) >= limit:
                break
    return ids[:limit], total


# -- cases ------------------------------------------------------------------------------------------


@global_options()
def cases_list(
    ctx: typer.Context,
    fql: FilterOpt = None,
    sort: Annotated[
        str | None,
        typer.Option(help="Sort, e.g. case.created_time.desc (field.asc|desc).",
                     show_default=False),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many cases to show.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many cases first.")] = 0,
) -> None:
    """List cases matching an FQL filter: a table, or JSON lines with --json."""

    async def work(s: Session) -> int:
        ids, total = await _case_ids(s.mc, fql, sort, limit, offset)
        cases = (await s.mc.get_cases(ids)).resources if ids else []
        if s.out.json_mode:
            for case in cases:
                s.out.json(dump(case))
        else:
            s.out.out.print(cases_table(cases))
            shown = f"{offset + 1}-{offset + len(cases)}" if cases else "0"
            s.out.note(f"cases {shown} of {total if total is not None else '?'}")
        return ExitCode.OK

    execute(ctx, work)


@global_options()
def cases_get(
    ctx: typer.Context,
    ids: Annotated[
        list[str], typer.Argument(metavar="ID...", help="Case ids (also comma-separated).")
    ],
) -> None:
    """Show cases by id (exit 5 if any id is not found)."""

    wanted = [part.strip() for arg in ids for part in arg.split(",") if part.strip()]

    async def work(s: Session) -> int:
        envelope = await s.mc.get_cases(wanted)
        for case in envelope.resources:
            if s.out.json_mode:
                s.out.json(dump(case))
            else:
                s.out.out.print(case_detail(case))
        missing = [e.id or e.message or "" for e in envelope.errors]
        for item in missing:
            s.out.error(f"not found: {item}")
        return ExitCode.NOT_FOUND if missing else ExitCode.OK

    execute(ctx, work)


@global_options()
def cases_create(
    ctx: typer.Context,
    title: Annotated[str, typer.Option(help="The case title.")],
    content: Annotated[str, typer.Option(help="The case body ('-': read from stdin).")],
    case_type: Annotated[
        str, typer.Option("--type", help=f"The case type: {', '.join(CASE_TYPES)}.")
    ],
    user_uuid: UserUuidOpt = None,
    detections: Annotated[
        list[str] | None,
        typer.Option("--detection", help="Detection id to attach (repeatable).",
                     show_default=False),
    ] = None,
    incidents: Annotated[
        list[str] | None,
        typer.Option("--incident", help="Incident id to attach (repeatable).",
                     show_default=False),
    ] = None,
) -> None:
    """Create a case (CreateCaseV2) and print its id."""

    async def work(s: Session) -> int:
        created = await s.mc.create_case_v2(
            content=await _read_text(content), title=title, type=case_type,
            user_uuid=_user_uuid(s, user_uuid, required=False),
            detections=[{"id": d} for d in detections or ()],
            incidents=[{"id": i} for i in incidents or ()],
        )
        case_id = created.resources[0].id if created.resources else None
        if s.out.json_mode:
            s.out.json({"id": case_id, "trace_id": created.meta.trace_id})
        else:
            s.out.out.print(f"created case [cyan]{escape(str(case_id))}[/]")
        return ExitCode.OK

    execute(ctx, work)


@global_options()
def cases_update(
    ctx: typer.Context,
    case_id: Annotated[str, typer.Argument(metavar="ID", help="The case id.")],
    content: Annotated[str, typer.Option(help="The new body ('-': read from stdin).")],
) -> None:
    """Replace a case's body (legacy UpdateCase route: older tenants only)."""

    async def work(s: Session) -> int:
        body = await _read_text(content)
        s.out.note(
            "[yellow]note:[/] UpdateCase is a legacy route, removed from CrowdStrike's current "
            "API; it works on older tenants only"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            updated = await s.mc.update_case(id=case_id, content=body)
        ids = [r.id for r in updated.resources if r.id] or [case_id]
        if s.out.json_mode:
            s.out.json({"id": ids[0], "trace_id": updated.meta.trace_id})
        else:
            s.out.out.print(f"updated case [cyan]{escape(ids[0])}[/]")
        return ExitCode.OK

    execute(ctx, work)


@global_options()
def cases_comment(
    ctx: typer.Context,
    case_id: Annotated[str, typer.Argument(metavar="CASE_ID", help="The case id.")],
    text: Annotated[str, typer.Argument(metavar="TEXT", help="The comment ('-': read from stdin).")],
    user_uuid: UserUuidOpt = None,
) -> None:
    """Add a comment to a case."""

    async def work(s: Session) -> int:
        reply = await s.mc.add_case_activity(
            case_id=case_id, content=await _read_text(text), user_uuid=_user_uuid(s, user_uuid, required=True)
        )
        if s.out.json_mode:
            s.out.json({"case_id": case_id, "trace_id": reply.meta.trace_id})
        else:
            s.out.out.print(f"comment added to case [cyan]{escape(case_id)}[/]")
        return ExitCode.OK

    execute(ctx, work)


# -- activities -------------------------------------------------------------------------------------


async def _activities(
    mc: AsyncMessageCenter,
    case_id: str,
    *,
    fql: str | None = None,
    sort: str | None = None,
    limit: int | None = None,
) -> list[CaseActivity]:
    ids: list[str] = []
    paginator = mc.query_activities(case_id=case_id, filter=fql, sort=sort,
                                    limit=min(limit or MAX_PAGE, MAX_PAGE))
    async with _closing(paginator.__aiter__()) as walk:
        async for activity_id in walk:
            ids.append(activity_id)
            if limit is not None and len(ids) >= limit:
                break
    return (await mc.get_case_activity(ids)).resources if ids else []


@global_options()
def activities_list(
    ctx: typer.Context,
    case_id: Annotated[str, typer.Argument(metavar="CASE_ID", help="The case id.")],
    fql: Annotated[
        str | None,
        typer.Option("--filter", "-f", help="FQL on activity.type / activity.created_time.",
                     show_default=False),
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option(help="activity.created_time.asc|desc or activity.type.asc|desc.",
                     show_default=False),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most this many (default: all).",
                                 show_default=False)
    ] = None,
) -> None:
    """List a case's activities (comments and status changes)."""

    async def work(s: Session) -> int:
        activities = await _activities(s.mc, case_id, fql=fql, sort=sort, limit=limit)
        if s.out.json_mode:
            for activity in activities:
                s.out.json(dump(activity))
        else:
            s.out.out.print(activities_table(activities, title=f"activities of case {escape(case_id)}"))
            s.out.note(f"{len(activities)} activities")
        return ExitCode.OK

    execute(ctx, work)


# -- attachments ------------------------------------------------------------------------------------


@global_options()
def attachments_upload(
    ctx: typer.Context,
    case_id: Annotated[str, typer.Argument(metavar="CASE_ID", help="The case id.")],
    file: Annotated[
        Path,
        typer.Argument(metavar="FILE", exists=True, dir_okay=False, readable=True,
                       help="The file (png bmp jpg jpeg gif pdf doc docx xls xlsx pptx txt csv, "
                       "at most 15 MB)."),
    ],
    user_uuid: UserUuidOpt = None,
    name: Annotated[
        str | None, typer.Option(help="File name to send (default: FILE's).", show_default=False)
    ] = None,
) -> None:
    """Upload a file to a case (streamed from disk)."""

    async def work(s: Session) -> int:
        reply = await s.mc.add_case_attachment(
            case_id=case_id, user_uuid=_user_uuid(s, user_uuid, required=True) or "",
            path=file, filename=name,
        )
        attachment = reply.resources[0] if reply.resources else None
        if s.out.json_mode:
            s.out.json(dump(attachment) if attachment is not None else {})
        elif attachment is not None:
            s.out.out.print(
                f"uploaded {escape(attachment.name or file.name)} ({attachment.size} bytes) to "
                f"case [cyan]{escape(case_id)}[/]: attachment id [cyan]{escape(str(attachment.id))}[/]"
            )
        return ExitCode.OK

    execute(ctx, work)


@global_options()
def attachments_download(
    ctx: typer.Context,
    attachment_id: Annotated[str, typer.Argument(metavar="ID", help="The attachment id.")],
    output: Annotated[
        str,
        typer.Option("--output", "-o",
                     help="A file, or a folder to save under the attachment's name; "
                     "'-' writes the bytes to stdout."),
    ] = ".",
) -> None:
    """Download an attachment, streamed to disk (or stdout with -o -)."""

    async def work(s: Session) -> int:
        async with s.mc.download_case_attachment(attachment_id) as download:
            if output == "-":
                stdout = sys.stdout.buffer
                async for chunk in download.aiter_bytes():
                    stdout.write(chunk)
                stdout.flush()
                return ExitCode.OK
            path = await download.save(output)
        size = (await anyio.Path(path).stat()).st_size
        if s.out.json_mode:
            s.out.json({"id": attachment_id, "path": str(path), "bytes": size,
                        "content_type": download.content_type})
        else:
            s.out.out.print(
                f"saved {escape(str(path))} ({size} bytes, {escape(download.content_type)})"
            )
        return ExitCode.OK

    execute(ctx, work)


# -- aggregate --------------------------------------------------------------------------------------


def _aggregate_queries(
    raw: str | None,
    field: str | None,
    kind: str,
    name: str | None,
    interval: str | None,
    fql: str | None,
    size: int | None,
) -> list[dict[str, Any]]:
    if raw is not None and field is not None:
        raise typer.BadParameter("pass either --json or --field, not both", param_hint="--json")
    if raw is not None:
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"not JSON: {exc}", param_hint="--json") from None
        if isinstance(parsed, dict):
            parsed = [parsed]
        if not isinstance(parsed, list) or not all(isinstance(q, dict) for q in parsed):
            raise typer.BadParameter("expected a JSON array of query objects",
                                     param_hint="--json")
        return parsed
    if field is None:
        raise typer.BadParameter(
            "pass --field (and --type) or --json '<array of queries>'", param_hint="--field"
        )
    if kind in ("range", "date_range"):  # they need bounds, which only --json can give
        raise typer.BadParameter(
            f"a {kind} aggregation needs its {kind}s: pass the query with --json, e.g. "
            + ("'[{\"name\": \"n\", \"type\": \"date_range\", \"field\": \"case.created_time\", "
               "\"date_ranges\": [{\"from\": \"now-7d\", \"to\": \"now\"}]}]'"
               if kind == "date_range" else
               "'[{\"name\": \"n\", \"type\": \"range\", \"field\": \"...\", "
               "\"ranges\": [{\"From\": 0, \"To\": 10}]}]'"),
            param_hint="--type",
        )
    query: dict[str, Any] = {
        "field": field, "type": kind, "name": name or f"by_{field.rsplit('.', 1)[-1]}",
    }
    for key, value in (("interval", interval), ("filter", fql), ("size", size)):
        if value is not None:
            query[key] = value
    return [query]


@global_options(skip=("json",))
def aggregate(
    ctx: typer.Context,
    queries: Annotated[
        str | None,
        typer.Option("--json", help="A JSON array of aggregate queries (the spec's "
                     "msaAggregateQueryRequest). For JSON output use `falcon-mc --json aggregate`.",
                     show_default=False),
    ] = None,
    field: Annotated[
        str | None, typer.Option(help="Field to aggregate, e.g. case.status.", show_default=False)
    ] = None,
    kind: Annotated[
        str, typer.Option("--type", help="terms, date_histogram, date_range, range, or a metric.")
    ] = "terms",
    name: Annotated[
        str | None, typer.Option(help="Result name (default: by_<field>).", show_default=False)
    ] = None,
    interval: Annotated[
        str | None,
        typer.Option(help="date_histogram interval: year, month, week, day, hour, minute.",
                     show_default=False),
    ] = None,
    fql: FilterOpt = None,
    size: Annotated[
        int | None, typer.Option(min=1, help="Most buckets (terms).", show_default=False)
    ] = None,
) -> None:
    """Aggregate cases: buckets by a field (simple flags) or any queries (--json)."""
    items = _aggregate_queries(queries, field, kind, name, interval, fql, size)

    async def work(s: Session) -> int:
        result = await s.mc.aggregate_cases(*items)
        for item in result.resources:
            if s.out.json_mode:
                s.out.json(dump(item))
            else:
                s.out.out.print(aggregation_table(item))
        return ExitCode.OK

    execute(ctx, work)


# -- export -----------------------------------------------------------------------------------------


async def _batches(cases: AsyncIterator[Case], size: int) -> AsyncIterator[list[Case]]:
    batch: list[Case] = []
    async for case in cases:
        batch.append(case)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _activities_of(mc: AsyncMessageCenter, cases: Sequence[Case]) -> dict[str, list[Any]]:
    """Every activity of ``cases``: ids queried per case concurrently, then fetched in bulk."""
    ids_by_case: dict[str, list[str]] = {}

    async def query(case_id: str) -> None:
        ids_by_case[case_id] = [i async for i in mc.query_activities(case_id=case_id)]

    async with anyio.create_task_group() as tg:
        for case in cases:
            if case.id:
                tg.start_soon(query, case.id)
    wanted = [i for ids in ids_by_case.values() for i in ids]
    found = {a.id: a for a in (await mc.get_case_activity(wanted)).resources} if wanted else {}
    return {
        case_id: [dump(found[i]) for i in ids if i in found]
        for case_id, ids in ids_by_case.items()
    }


async def _open_output(
    stack: AsyncExitStack, output: Path
) -> PartFile | anyio.AsyncFile[bytes]:
    """Where ``export -o`` writes. A file is written whole or not at all, through a part file,
    so a failed run leaves the last export as it was (through a symlink, its target is, and the
    link stays); anything else (a FIFO, ``/dev/fd/3``, ``/dev/stdout``) is written to as is."""
    path = anyio.Path(output)
    if await path.exists() and not await path.is_file():
        return await stack.enter_async_context(await anyio.open_file(output, "wb"))
    return await stack.enter_async_context(PartFile(Path(await path.resolve())))


@global_options()
def export(
    ctx: typer.Context,
    fql: FilterOpt = None,
    sort: Annotated[str | None, typer.Option(help="Sort of the cases.", show_default=False)] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write JSON lines here (default: stdout).",
                     show_default=False, dir_okay=False),
    ] = None,
    batch: Annotated[
        int, typer.Option(min=1, max=MAX_PAGE, help="Cases whose activities are fetched together.")
    ] = 100,
) -> None:
    """Export every case matching --filter, with its activities, as JSON lines."""

    async def work(s: Session) -> int:
        started = time.perf_counter()
        total = (await s.mc.query_cases(filter=fql, limit=1)).total
        exported = n_activities = 0
        progress = Progress(
            TextColumn("[progress.description]{task.description}"), BarColumn(),
            MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False,
            # the JSON lines are written to stdout directly: on a terminal, rich would
            # otherwise capture them and print them on stderr above the bar
            redirect_stdout=False, redirect_stderr=False,
        )
        async with AsyncExitStack() as stack:
            sink = await _open_output(stack, output) if output else None
            stack.enter_context(progress)
            task = progress.add_task("exporting cases", total=total)
            it = await stack.enter_async_context(
                _closing(_batches(s.mc.iter_cases(filter=fql, sort=sort), batch))
            )
            async for chunk in it:
                activities = await _activities_of(s.mc, chunk)
                lines = []
                for case in chunk:
                    record = dump(case)
                    record["activities"] = activities.get(case.id or "", [])
                    n_activities += len(record["activities"])
                    lines.append(json.dumps(record, ensure_ascii=False) + "\n")
                if sink is not None:
                    await sink.write("".join(lines).encode())
                else:
                    sys.stdout.write("".join(lines))
                exported += len(chunk)
                progress.update(task, advance=len(chunk))
        where = f" to {escape(str(output))}" if output else ""
        s.out.note(
            f"exported {exported} cases and {n_activities} activities{where} in "
            f"{time.perf_counter() - started:.2f} s"
        )
        return ExitCode.OK

    execute(ctx, work)


# -- emulator ---------------------------------------------------------------------------------------


def _url_host(host: str) -> str:
    """``host`` as a client reaches it: a wildcard address means this machine (loopback, the
    only plain-http host the client takes), an IPv6 address goes in brackets."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - naming it, not binding it
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@global_options(skip=("json", "emulator", "cloud", "base_url", "member_cid", "client_id"))
def emulator(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8080,
    cases: Annotated[int, typer.Option(min=0, help="Cases to seed.")] = EMULATOR_CASES,
    seed: Annotated[int, typer.Option(help="Seed of the data (same seed, same ids).")] = (
        EMULATOR_SEED
    ),
    latency: Annotated[float, typer.Option(min=0, help="Seconds from a request's arrival to its reply.")] = 0.0,
    rate_limit: Annotated[
        int | None,
        typer.Option(min=1, help="Requests per minute before 429s (default: unlimited).",
                     show_default=False),
    ] = None,
) -> None:
    """Serve the embedded Message Center emulator on HTTP until Ctrl-C."""
    options = state(ctx)
    out = Output(json_mode=False)
    emu = Emulator.seeded(n_cases=cases, seed=seed)
    emu.settings.latency = latency
    emu.settings.rate_limit_per_minute = rate_limit
    url = f"http://{_url_host(host)}:{port}" if port else "<the URL it listens on>"
    out.err.print(
        f"[bold]falcon-mc emulator[/]: {cases} cases (seed {seed}). Any non-empty client id and "
        "secret are accepted, for example:\n"
        "  export FALCON_CLIENT_ID=demo FALCON_CLIENT_SECRET=demo\n"
        f"  falcon-mc --base-url {url} cases list\n"
        "Press Ctrl-C to stop.",
        markup=True, highlight=False,
    )
    with verbose_logging(options.verbose), guard(out):
        emu.run(host=host, port=port)
