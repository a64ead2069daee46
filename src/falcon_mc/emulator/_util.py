"""Small shared helpers of the emulator: time parsing and formatting, ids, envelopes."""

from __future__ import annotations

import functools
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "TIME_FIELDS",
    "envelope",
    "error",
    "format_time",
    "parse_instant",
    "parse_instant_or_none",
    "parse_time",
    "parse_time_or_none",
]

#: Field names (without the ``case.``/``activity.`` prefix) that hold RFC 3339 timestamps.
TIME_FIELDS = frozenset({"created_time", "last_modified_time"})

_FRACTION = re.compile(r"(\.\d{1,6})\d*")
_RELATIVE = re.compile(r"^now(?:([+-])(\d+)([smhdwMy]))?$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "M": 30 * 86400, "y": 365 * 86400}


def format_time(moment: datetime | float) -> str:
    """Format a datetime (or epoch seconds) as RFC 3339 UTC: ``2025-01-02T03:04:05Z``."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=65536)
def _parse_absolute(text: str) -> int:
    """An absolute timestamp as integer epoch microseconds (exact in every year)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    value = _FRACTION.sub(lambda m: m.group(1), value, count=1)
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


def parse_time(text: str, *, now: float | None = None) -> float:
    """Parse an RFC 3339 / ISO 8601 timestamp (or ``now``, ``now-7d``...) to epoch seconds.

    Naive values are read as UTC; a bare date is midnight UTC. Raises ``ValueError``.

    Example::

        parse_time("2024-01-01T00:00:00Z")  # 1704067200.0
    """
    rel = _RELATIVE.match(text.strip())
    if rel:
        base = time.time() if now is None else now
        if rel.group(1) is None:
            return base
        delta = int(rel.group(2)) * _UNITS[rel.group(3)]
        return base + delta if rel.group(1) == "+" else base - delta
    return _parse_absolute(text) / 1_000_000


def parse_instant(text: str, *, now: float | None = None) -> int:
    """:func:`parse_time` as integer epoch microseconds, to compare instants exactly.

    Float seconds lose microseconds far from 1970 (in year 9000, two instants 1 µs apart are
    the same float); use this, not :func:`parse_time`, to order or equate timestamps.

    Example::

        parse_instant("9000-01-01T00:00:00.000002Z") > parse_instant("9000-01-01T00:00:00.000001Z")
    """
    if _RELATIVE.match(text.strip()):
        return round(parse_time(text, now=now) * 1_000_000)
    return _parse_absolute(text)


def parse_instant_or_none(text: object) -> int | None:
    """:func:`parse_instant`, or ``None`` if ``text`` is not a string holding a timestamp."""
    if not isinstance(text, str):
        return None
    try:
        return parse_instant(text)
    except (ValueError, OverflowError):
        return None


def parse_time_or_none(text: object) -> float | None:
    """:func:`parse_time`, or ``None`` if ``text`` is not a string holding a timestamp."""
    instant = parse_instant_or_none(text)
    return None if instant is None else instant / 1_000_000


def to_datetime(epoch: float) -> datetime:
    """Epoch seconds to an aware UTC datetime."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=epoch)


def new_trace_id() -> str:
    """A fresh trace id (uuid4 string)."""
    return str(uuid.uuid4())


def error(code: int, message: str, id: str | None = None) -> dict[str, Any]:
    """An ``msa.APIError`` dict."""
    err: dict[str, Any] = {"code": code, "message": message}
    if id is not None:
        err["id"] = id
    return err


def envelope(
    *,
    trace_id: str,
    query_time: float,
    resources: list[Any] | None = None,
    errors: list[dict[str, Any]] | None = None,
    pagination: dict[str, int] | None = None,
    writes: int | None = None,
) -> dict[str, Any]:
    """A reply envelope: ``meta`` (+ ``pagination``/``writes``), ``resources``, ``errors``.

    ``resources=None`` leaves the key out (meta-only replies such as errors and comments).
    """
    meta: dict[str, Any] = {
        "query_time": round(query_time, 9),
        "powered_by": "msa-api",
        "trace_id": trace_id,
    }
    if pagination is not None:
        meta["pagination"] = pagination
    if writes is not None:
        meta["writes"] = {"resources_affected": writes}
    body: dict[str, Any] = {"meta": meta}
    if resources is not None:
        body["resources"] = resources
    body["errors"] = errors or []
    return body
