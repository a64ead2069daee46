"""Rich tables and JSON shapes of the command line's output.

Every string from the server goes into a cell as :class:`~rich.text.Text`, never as markup: a
name like ``Bob [/]`` is shown as written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..models import AggregationResult, Attachment, Bucket, Case, CaseActivity, User

__all__ = [
    "activities_table",
    "aggregation_table",
    "bar",
    "case_detail",
    "cases_table",
    "dump",
    "fmt_time",
]


def dump(model: BaseModel) -> dict[str, Any]:
    """A model as the wire spells it (aliases, no ``None`` fields), JSON-ready."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def fmt_time(moment: datetime | None) -> str:
    """``2025-05-31 14:03`` (UTC as sent), or an empty string."""
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else ""


def _cell(text: str | None, style: str = "") -> Text:
    """A table cell holding ``text`` as written (never read as markup), folded when too long
    for its column (never cropped: cropping loses text)."""
    return Text(text or "", style=style, overflow="fold")


def _who(user: User | None) -> str:
    if user is None:
        return ""
    return user.display_name or user.uid or user.uuid or ""


def cases_table(cases: Iterable[Case], *, title: str | None = None) -> Table:
    """id, status, type, created, title."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    # shares of a narrow terminal, no minimum widths and no edge padding: rich crops a table
    # whose minimums do not fit, and its text with it (at 80 columns: "Request / call wit")
    table.add_column("id", ratio=2, overflow="fold", style="cyan")
    table.add_column("status", ratio=1, overflow="fold")
    table.add_column("type", ratio=1, overflow="fold")
    table.add_column("created", ratio=1)
    table.add_column("title", ratio=3, overflow="fold")
    for case in cases:
        table.add_row(
            _cell(case.id), _cell(case.status), _cell(case.type),
            fmt_time(case.created_time), _cell(case.title),
        )
    return table


def _refs(refs: Sequence[Any]) -> str:
    return ", ".join(str(r.id) for r in refs if r.id) or "-"


def _attachments(attachments: Sequence[Attachment]) -> str:
    return "\n".join(
        f"{a.id}  {a.name or ''}  ({a.size if a.size is not None else '?'} bytes)"
        for a in attachments
    ) or "-"


def case_detail(case: Case) -> RenderableType:
    """One case in full: the fields in a grid, the body below."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    rows = [
        ("id", case.id or ""),
        ("key", case.key or ""),
        ("status", case.status or ""),
        ("type", case.type or ""),
        ("created", fmt_time(case.created_time)),
        ("modified", fmt_time(case.last_modified_time)),
        ("assigner", _who(case.assigner)),
        ("hosts", ", ".join(case.hosts) or "-"),
        ("detections", _refs(case.detections)),
        ("incidents", _refs(case.incidents)),
        ("attachments", _attachments(case.attachments)),
    ]
    for name, value in rows:
        grid.add_row(name, _cell(value))
    body = Text(case.body or "", style="dim")
    return Panel(Group(grid, Text(""), body), title=Text(case.title or case.id or ""),
                 title_align="left")


def activities_table(
    activities: Iterable[CaseActivity], *, title: str | None = None, highlight: str | None = None
) -> Table:
    """created, type, author, body (the ``highlight`` body in bold)."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("created", min_width=10)
    table.add_column("type", min_width=7, overflow="fold")
    table.add_column("author", min_width=8, overflow="fold")
    table.add_column("body", min_width=20, overflow="fold", ratio=1)
    table.add_column("id", min_width=12, overflow="fold", style="cyan")
    for activity in activities:
        style = "bold green" if highlight and activity.body == highlight else ""
        table.add_row(
            fmt_time(activity.created_time), _cell(activity.type),
            _cell(_who(activity.created_by)), _cell(activity.body, style=style),
            _cell(activity.id),
        )
    return table


def bar(count: float, largest: float, width: int = 30) -> str:
    """A proportional bar of block characters."""
    if largest <= 0:
        return ""
    return "█" * max(1 if count else 0, round(width * count / largest))


def _label(bucket: Bucket) -> str:
    label = bucket.label
    if isinstance(label, dict):
        return ", ".join(f"{k}={v}" for k, v in label.items())
    if label is not None:
        return str(label)
    return bucket.key_as_string or ""


def _sub(bucket: Bucket) -> str:
    parts = []
    for result in bucket.sub_aggregates:
        inner = ", ".join(f"{_label(b)}={b.count if b.count is not None else b.value}"
                          for b in result.buckets)
        parts.append(f"{result.name}: {inner}")
    return "; ".join(parts)


def aggregation_table(result: AggregationResult, *, last: int | None = None) -> Table:
    """One aggregation result: bucket, count (value), a bar, sub-aggregates if any."""
    buckets = list(result.buckets)
    shown = buckets[-last:] if last is not None and len(buckets) > last else buckets
    title = result.name or "aggregation"
    if len(shown) < len(buckets):
        title += f" (last {len(shown)} of {len(buckets)} buckets)"
    table = Table(title=title, title_justify="left")
    table.add_column("bucket", overflow="fold")
    table.add_column("count", justify="right", no_wrap=True, min_width=5)
    has_value = any(b.value is not None for b in shown)
    if has_value:
        table.add_column("value", justify="right")
    table.add_column("", no_wrap=True, style="blue")
    has_sub = any(b.sub_aggregates for b in shown)
    if has_sub:
        table.add_column("sub-aggregates", overflow="fold")
    largest = max((b.count or 0 for b in shown), default=0)
    for bucket in shown:
        row: list[RenderableType] = [
            _cell(_label(bucket)), "" if bucket.count is None else str(bucket.count)
        ]
        if has_value:
            row.append(Text(
                bucket.value_as_string or ("" if bucket.value is None else f"{bucket.value:g}")
            ))
        row.append(bar(bucket.count or 0, largest))
        if has_sub:
            row.append(_cell(_sub(bucket)))
        table.add_row(*row)
    return table
