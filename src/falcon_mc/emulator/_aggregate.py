"""Aggregations over cases (AggregateCases): terms, date_range, range, date_histogram, metrics.

Shapes follow ``msa.AggregationResult`` / ``msa.AggregationResultItem``:

* ``terms``: one bucket per distinct value, ``label`` the value (a string), ``count`` the number
  of cases; ``size`` (default 10), ``sort`` (``_count|desc`` default, ``_count|asc``,
  ``_term|asc``/``_term|desc``; ``_key`` is a synonym of ``_term``), ``min_doc_count`` (default
  1), ``missing`` (the value used for cases without one), ``include``/``exclude`` (regular
  expressions on the term), ``from`` (bucket offset); ``sum_other_doc_count`` counts what ``size``
  cut off.
* ``date_range``: ``date_ranges`` ``[{"from", "to"}]`` (``from`` inclusive, ``to`` exclusive,
  either may be left out; ``now``/``now-7d`` work); buckets carry ``from``/``to`` (epoch
  milliseconds), ``string_from``/``string_to`` and ``label`` ``"<string_from>-<string_to>"``.
* ``range``: ``ranges`` ``[{"From", "To"}]`` on a numeric field (case ``key`` numbers, or a time
  field in epoch milliseconds); ``label`` ``"<From>-<To>"``, ``from``/``to`` numbers.
* ``date_histogram``: ``interval`` year|month|week|day|hour|minute (weeks start on Monday),
  ``time_zone`` (IANA name or ``+02:00``), ``min_doc_count`` (default 0: empty buckets between
  the first and the last are included), ``extended_bounds``; ``label`` and ``key_as_string``
  are the bucket start in RFC 3339 (``Z`` in UTC, else the offset), ordered by time; buckets
  are told apart by their start instant, so an hour repeated when clocks go back is two buckets.
* metrics ``cardinality``, ``min``, ``max``, ``avg``, ``sum``: one bucket, ``label`` the field,
  ``count`` the cases with a value, ``value`` the result (times in epoch milliseconds, with
  ``value_as_string`` when the value is an instant of the years 1-9999: never for ``sum``, as a
  sum of instants is no instant); ``percentiles``: one bucket per percent (``percents``, default
  1,5,25,50,75,95,99) labelled by the percent.

``time_zone``, when given, must be a known IANA zone or an offset, whatever the type. Dates in
requests (``date_ranges``, ``extended_bounds``) must lie in the years 1-9999 (else a 400); a
``date_histogram`` bucket outside those years is a 400 too, never a 500.

Bucket aggregations take ``sub_aggregates`` (at most 3 levels of nesting), computed over the
cases of each bucket. ``field`` may be written with or without ``case.``. ``filter`` (FQL) and
``q`` (full text) narrow the cases first.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import _fql
from ._fields import CASE_FILTER_FIELDS, case_resolver
from ._state import Store
from ._util import TIME_FIELDS, parse_time, parse_time_or_none

__all__ = ["MAX_DEPTH", "AggregationError", "aggregate"]

#: Maximum nesting of ``sub_aggregates``.
MAX_DEPTH = 3
MAX_BUCKETS = 65536
BUCKET_TYPES = ("terms", "date_range", "range", "date_histogram")
METRIC_TYPES = ("cardinality", "min", "max", "avg", "sum", "percentiles")
INTERVALS = {
    "year": "year", "1y": "year", "month": "month", "1M": "month", "week": "week", "1w": "week",
    "day": "day", "1d": "day", "hour": "hour", "1h": "hour", "minute": "minute", "1m": "minute",
}
_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: What ``datetime`` arithmetic raises beyond the years 1-9999 (``OSError`` on some platforms).
_DATE_ERRORS = (OverflowError, ValueError, OSError)

Resolve = Callable[[str], Sequence[str]]
Doc = tuple[dict[str, Any], Resolve]


class AggregationError(ValueError):
    """An aggregate query the emulator cannot run (answered with a 400)."""


def _field(query: dict[str, Any], where: str) -> str:
    field = query.get("field")
    if not isinstance(field, str) or not field:
        raise AggregationError(f"{where}: 'field' is required")
    name = field if field.startswith(("case.", "activity.")) else f"case.{field}"
    if name not in CASE_FILTER_FIELDS or name == "_all":
        allowed = ", ".join(sorted(f.removeprefix("case.") for f in CASE_FILTER_FIELDS - {"_all"}))
        raise AggregationError(f"{where}: invalid aggregation field {field!r}; allowed: {allowed}")
    return name


def _int(query: dict[str, Any], key: str, default: int, where: str) -> int:
    value = query.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise AggregationError(f"{where}: {key!r} must be an integer")
    return value


def _depth(query: dict[str, Any]) -> int:
    subs = query.get("sub_aggregates") or []
    if not isinstance(subs, list):
        raise AggregationError("'sub_aggregates' must be an array")
    return 1 + max((_depth(s) for s in subs if isinstance(s, dict)), default=0) if subs else 0


def _is_time(field: str) -> bool:
    return field.rsplit(".", 1)[-1] in TIME_FIELDS


def _numbers(field: str, values: Sequence[str]) -> list[float]:
    out: list[float] = []
    for value in values:
        if _is_time(field):
            moment = parse_time_or_none(value)
            if moment is not None:
                out.append(moment * 1000.0)
        else:
            try:
                num = float(value)
            except ValueError:
                continue
            if math.isfinite(num):
                out.append(num)
    return out


def _fmt_num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _ms_string(ms: float) -> str | None:
    """Epoch milliseconds as RFC 3339 UTC to the millisecond (``2024-06-01T00:00:00.000Z``).

    Fractions of a millisecond are cut off (never rounded up into the next second). ``None``
    when ``ms`` is no instant of the years 1-9999 (a sum of instants, say).
    """
    if not math.isfinite(ms):
        return None
    try:
        moment = _EPOCH + timedelta(milliseconds=math.floor(ms))
    except OverflowError:
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _zone(name: object, where: str) -> tzinfo:
    """The ``time_zone`` option: UTC if absent, an offset (``+02:00``) or an IANA name.

    Anything else is an :class:`AggregationError` (a 400).
    """
    if name is None or name == "" or name in ("UTC", "Z", "utc"):
        return UTC
    if not isinstance(name, str):
        raise AggregationError(f"{where}: 'time_zone' must be a string")
    match = _OFFSET.match(name)
    if match:
        delta = timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
        return timezone(-delta if match.group(1) == "-" else delta)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise AggregationError(f"{where}: unknown time_zone {name!r}") from None


def _floor(moment: datetime, interval: str) -> datetime:
    tz = moment.tzinfo
    if interval == "year":
        return datetime(moment.year, 1, 1, tzinfo=tz)
    if interval == "month":
        return datetime(moment.year, moment.month, 1, tzinfo=tz)
    if interval == "week":
        day = moment.date() - timedelta(days=moment.weekday())
        return datetime(day.year, day.month, day.day, tzinfo=tz)
    if interval == "day":
        return datetime(moment.year, moment.month, moment.day, tzinfo=tz)
    if interval == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(second=0, microsecond=0)


def _bucket_start(seconds: float, tz: tzinfo, interval: str) -> datetime | None:
    """The start, in ``tz``, of the ``interval`` holding ``seconds`` (epoch seconds).

    ``None`` when that local time is outside the years 1-9999.
    """
    try:
        return _floor(datetime.fromtimestamp(seconds, tz), interval)
    except _DATE_ERRORS:
        return None


def _next(start: datetime, interval: str) -> datetime | None:
    """The start of the interval after ``start``; ``None`` past the year 9999."""
    try:
        return _step(start, interval)
    except _DATE_ERRORS:
        return None


def _step(start: datetime, interval: str) -> datetime:
    """:func:`_next`, raising what ``datetime`` raises past the year 9999."""
    tz = start.tzinfo
    if interval == "year":
        return datetime(start.year + 1, 1, 1, tzinfo=tz)
    if interval == "month":
        year, month = divmod(start.month, 12)
        return datetime(start.year + year, month + 1, 1, tzinfo=tz)
    if interval in ("week", "day"):
        day = start.date() + timedelta(days=7 if interval == "week" else 1)
        return datetime(day.year, day.month, day.day, tzinfo=tz)
    step = 3600 if interval == "hour" else 60
    return datetime.fromtimestamp(start.timestamp() + step, tz)


def _key_string(moment: datetime) -> str:
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class _Aggregator:
    def __init__(self, store: Store, now: float) -> None:
        self.store = store
        self.now = now

    def narrow(self, query: dict[str, Any], docs: list[Doc], where: str) -> list[Doc]:
        text = query.get("filter")
        if text:
            if not isinstance(text, str):
                raise AggregationError(f"{where}: 'filter' must be a string")
            try:
                node = _fql.parse(text, CASE_FILTER_FIELDS)
                _fql.check_times(node)
            except _fql.FQLError as exc:
                raise AggregationError(f"{where}: {exc}") from None
            docs = [d for d in docs if _fql.evaluate(node, d[1])]
        q = query.get("q")
        if q:
            node = _fql.Cmp("_all", "~", (_fql.plain_text(str(q)),))
            docs = [d for d in docs if _fql.evaluate(node, d[1])]
        return docs

    def run(self, query: dict[str, Any], docs: list[Doc], path: str) -> dict[str, Any]:
        if not isinstance(query, dict):
            raise AggregationError(f"{path}: an aggregate query must be a JSON object")
        name = query.get("name")
        where = f"aggregation {name!r}" if name else path
        if not isinstance(name, str) or not name:
            raise AggregationError(f"{where}: 'name' is required")
        kind = query.get("type")
        if not isinstance(kind, str) or not kind:
            raise AggregationError(f"{where}: 'type' is required")
        if kind not in BUCKET_TYPES and kind not in METRIC_TYPES:
            raise AggregationError(
                f"{where}: unsupported aggregation type {kind!r}; supported: "
                + ", ".join(BUCKET_TYPES + METRIC_TYPES)
            )
        field = _field(query, where)
        _zone(query.get("time_zone"), where)  # checked whatever the type, like any option
        docs = self.narrow(query, docs, where)
        if kind in METRIC_TYPES:
            return {"name": name, "buckets": self.metric(kind, field, query, docs, where)}
        groups = getattr(self, kind)(field, query, docs, where)
        subs = query.get("sub_aggregates") or []
        result: dict[str, Any] = {"name": name, "buckets": []}
        for bucket, members in groups["buckets"]:
            if subs:
                bucket["sub_aggregates"] = [
                    self.run(sub, members, f"{where}.sub_aggregates[{i}]")
                    for i, sub in enumerate(subs)
                ]
            result["buckets"].append(bucket)
        if "sum_other_doc_count" in groups:
            result["sum_other_doc_count"] = groups["sum_other_doc_count"]
        return result

    # bucket aggregations ----------------------------------------------------------------------
    def terms(
        self, field: str, query: dict[str, Any], docs: list[Doc], where: str
    ) -> dict[str, Any]:
        size = _int(query, "size", 10, where)
        if size < 0:
            raise AggregationError(f"{where}: 'size' must be >= 0")
        min_count = _int(query, "min_doc_count", 1, where)
        offset = _int(query, "from", 0, where)
        if offset < 0:
            raise AggregationError(f"{where}: 'from' must be >= 0")
        missing = query.get("missing")
        include = self._regex(query, "include", where)
        exclude = self._regex(query, "exclude", where)
        members: dict[str, list[Doc]] = {}
        labels: dict[str, str] = {}
        for doc in docs:
            values = set(doc[1](field))
            if not values and missing not in (None, ""):
                values = {str(missing)}
            for value in values:
                if include is not None and not include.fullmatch(value):
                    continue
                if exclude is not None and exclude.fullmatch(value):
                    continue
                key = value
                labels.setdefault(key, value)
                members.setdefault(key, []).append(doc)
        by, descending = self._sort(query.get("sort"), "_count", True, where)
        keys = sorted(members)  # term asc: the tie-breaker
        if by == "_count":
            keys.sort(key=lambda k: len(members[k]), reverse=descending)
        elif descending:
            keys.reverse()
        keys = [k for k in keys if len(members[k]) >= min_count][offset:]
        shown, rest = keys[:size], keys[size:]
        return {
            "buckets": [
                ({"label": labels[k], "count": len(members[k])}, members[k]) for k in shown
            ],
            "sum_other_doc_count": sum(len(members[k]) for k in rest),
        }

    def date_range(
        self, field: str, query: dict[str, Any], docs: list[Doc], where: str
    ) -> dict[str, Any]:
        ranges = query.get("date_ranges")
        if not isinstance(ranges, list) or not ranges:
            raise AggregationError(f"{where}: 'date_ranges' is required for date_range")
        out = []
        for spec in ranges:
            if not isinstance(spec, dict):
                raise AggregationError(f"{where}: each date range must be an object")
            lo = self._time(spec.get("from"), where)
            hi = self._time(spec.get("to"), where)
            members = [d for d in docs if self._in_time_range(field, d, lo, hi)]
            bucket: dict[str, Any] = {"count": len(members)}
            parts = []
            if lo is not None:  # _time checked that lo and hi have a string form
                bucket["from"] = lo
                bucket["string_from"] = _ms_string(lo)
            parts.append(bucket.get("string_from", "*"))
            if hi is not None:
                bucket["to"] = hi
                bucket["string_to"] = _ms_string(hi)
            parts.append(bucket.get("string_to", "*"))
            bucket["label"] = "-".join(parts)
            out.append((bucket, members))
        return {"buckets": out}

    @staticmethod
    def _in_time_range(field: str, doc: Doc, lo: float | None, hi: float | None) -> bool:
        for value in doc[1](field):
            moment = parse_time_or_none(value)
            if moment is not None and (lo is None or moment * 1000 >= lo) and (
                hi is None or moment * 1000 < hi
            ):
                return True
        return False

    def range(
        self, field: str, query: dict[str, Any], docs: list[Doc], where: str
    ) -> dict[str, Any]:
        ranges = query.get("ranges")
        if not isinstance(ranges, list) or not ranges:
            raise AggregationError(f"{where}: 'ranges' is required for range")
        out = []
        for spec in ranges:
            if not isinstance(spec, dict):
                raise AggregationError(f"{where}: each range must be an object")
            lo = self._num(spec.get("From", spec.get("from")), where)
            hi = self._num(spec.get("To", spec.get("to")), where)
            members = [
                d for d in docs
                if any(
                    (lo is None or v >= lo) and (hi is None or v < hi)
                    for v in _numbers(field, d[1](field))
                )
            ]
            bucket: dict[str, Any] = {"count": len(members)}
            if lo is not None:
                bucket["from"] = lo
            if hi is not None:
                bucket["to"] = hi
            bucket["label"] = (
                f"{'*' if lo is None else _fmt_num(lo)}-{'*' if hi is None else _fmt_num(hi)}"
            )
            out.append((bucket, members))
        return {"buckets": out}

    def date_histogram(
        self, field: str, query: dict[str, Any], docs: list[Doc], where: str
    ) -> dict[str, Any]:
        interval = INTERVALS.get(str(query.get("interval") or ""))
        if interval is None:
            raise AggregationError(
                f"{where}: 'interval' must be one of year, month, week, day, hour, minute"
            )
        tz = _zone(query.get("time_zone"), where)
        min_count = _int(query, "min_doc_count", 0, where)
        # Buckets are keyed by their start as a UTC instant (epoch seconds): two local starts can
        # look the same (02:00 twice on a DST fall-back night) yet be different hours.
        starts: dict[float, datetime] = {}

        def bucket_of(seconds: float, shown: object) -> float:
            start = _bucket_start(seconds, tz, interval)
            if start is None:
                raise AggregationError(
                    f"{where}: {shown!r} falls in a {interval} outside the years 1-9999 "
                    f"in time_zone {query.get('time_zone') or 'UTC'!r}"
                )
            key = start.timestamp()
            starts.setdefault(key, start)
            return key

        members: dict[float, list[Doc]] = {}
        for doc in docs:
            seen: set[float] = set()
            for value in doc[1](field):
                moment = parse_time_or_none(value)
                if moment is None:
                    continue
                key = bucket_of(moment, value)
                if key not in seen:
                    seen.add(key)
                    members.setdefault(key, []).append(doc)
        keys: list[float] = []
        bounds = query.get("extended_bounds")
        lows = list(members)
        highs = list(members)
        if isinstance(bounds, dict):
            for side, target in (("min", lows), ("max", highs)):
                moment = self._time(bounds.get(side), where)
                if moment is not None:
                    target.append(bucket_of(moment / 1000, bounds.get(side)))
        if min_count == 0 and lows and highs:
            current, last = starts[min(lows)], max(highs)
            while (key := current.timestamp()) <= last:
                keys.append(key)
                starts.setdefault(key, current)
                if len(keys) > MAX_BUCKETS:
                    raise AggregationError(
                        f"{where}: too many buckets (more than {MAX_BUCKETS}); "
                        "use a larger interval"
                    )
                following = _next(current, interval)
                if following is None:  # the last bucket ends the year 9999
                    break
                current = following
        else:
            keys = sorted(k for k, v in members.items() if len(v) >= min_count)
        by, descending = self._sort(query.get("sort"), "_key", False, where)
        if by == "_count":
            keys.sort(key=lambda k: len(members.get(k, ())), reverse=descending)
        elif descending:
            keys.reverse()
        out = []
        for key in keys:
            group = members.get(key, [])
            text = _key_string(starts[key])
            out.append(({"label": text, "key_as_string": text, "count": len(group)}, group))
        return {"buckets": out}

    # metrics ------------------------------------------------------------------------------------
    def metric(
        self, kind: str, field: str, query: dict[str, Any], docs: list[Doc], where: str
    ) -> list[dict[str, Any]]:
        with_value = [d for d in docs if d[1](field)]
        label = field.removeprefix("case.")
        if kind == "cardinality":
            distinct = {v.casefold() for d in docs for v in d[1](field)}
            return [{"label": label, "count": len(with_value), "value": len(distinct)}]
        numbers = [n for d in docs for n in _numbers(field, d[1](field))]
        if kind == "percentiles":
            percents = query.get("percents") or [1, 5, 25, 50, 75, 95, 99]
            buckets = []
            ordered = sorted(numbers)
            for p in percents:
                if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 100:
                    raise AggregationError(f"{where}: 'percents' must be numbers in 0..100")
                bucket: dict[str, Any] = {"label": _fmt_num(p), "count": len(ordered)}
                if ordered:
                    rank = (len(ordered) - 1) * p / 100
                    low = ordered[math.floor(rank)]
                    high = ordered[math.ceil(rank)]
                    bucket["value"] = low + (high - low) * (rank - math.floor(rank))
                out_bucket = self._as_string(field, kind, bucket)
                buckets.append(out_bucket)
            return buckets
        bucket = {"label": label, "count": len(with_value)}
        if numbers:
            if kind == "min":
                bucket["value"] = min(numbers)
            elif kind == "max":
                bucket["value"] = max(numbers)
            elif kind == "sum":
                bucket["value"] = math.fsum(numbers)
            else:
                bucket["value"] = math.fsum(numbers) / len(numbers)
        elif kind == "sum":
            bucket["value"] = 0.0
        return [self._as_string(field, kind, bucket)]

    @staticmethod
    def _as_string(field: str, kind: str, bucket: dict[str, Any]) -> dict[str, Any]:
        """Add ``value_as_string`` to a metric ``bucket`` on a time field.

        Only when ``value`` is an instant: never for ``sum`` (a sum of instants is none, and
        soon beyond the year 9999), nor for a value outside the years 1-9999.
        """
        if not _is_time(field) or "value" not in bucket or kind == "sum":
            return bucket
        text = _ms_string(bucket["value"])
        if text is not None:
            bucket["value_as_string"] = text
        return bucket

    # helpers ------------------------------------------------------------------------------------
    def _time(self, value: object, where: str) -> float | None:
        """A date option (epoch milliseconds, RFC 3339 or ``now-7d``) as epoch milliseconds.

        ``None`` if absent; a 400 if it is not a date, or not one of the years 1-9999.
        """
        if value is None or value == "":
            return None
        ms = self._time_ms(value)
        if ms is None:
            raise AggregationError(f"{where}: invalid date {value!r}")
        if _ms_string(ms) is None:
            raise AggregationError(f"{where}: date {value!r} is outside the years 1-9999")
        return ms

    def _time_ms(self, value: object) -> float | None:
        """``value`` (a number or a date string) as epoch milliseconds; ``None`` if neither."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                return math.inf
        if not isinstance(value, str):
            return None
        try:
            return parse_time(value, now=self.now) * 1000.0
        except (ValueError, OverflowError):
            return None

    @staticmethod
    def _num(value: object, where: str) -> float | None:
        """A ``range`` bound: ``None`` if absent, else a finite number (a 400 otherwise).

        Strings are read as numbers; ``"inf"``, ``"nan"`` and ``"1e400"`` are refused, as JSON
        carries no such number (and a reply holding one would not be JSON).
        """
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise AggregationError(f"{where}: range bounds must be numbers")
        try:
            number = float(value)
        except (ValueError, OverflowError):
            raise AggregationError(f"{where}: range bounds must be numbers") from None
        if not math.isfinite(number):
            raise AggregationError(f"{where}: range bounds must be finite numbers")
        return number

    @staticmethod
    def _regex(query: dict[str, Any], key: str, where: str) -> re.Pattern[str] | None:
        """``query[key]`` (``include``/``exclude``) compiled; a string (the spec's type) or
        absent/empty, anything else a 400."""
        value = query.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise AggregationError(f"{where}: {key!r} must be a string (a regular expression)")
        try:
            return re.compile(value)
        except re.error:
            raise AggregationError(f"{where}: invalid regular expression {value!r}") from None

    @staticmethod
    def _sort(value: object, default: str, default_desc: bool, where: str) -> tuple[str, bool]:
        if value is None or value == "":
            return default, default_desc
        text = str(value)
        sep = "|" if "|" in text else "."
        name, _, direction = text.rpartition(sep)
        if not name:
            name, direction = text, "asc"
        name = {"_term": "_key", "_key": "_key", "_count": "_count"}.get(name, "")
        if not name or direction not in ("asc", "desc"):
            raise AggregationError(
                f"{where}: invalid bucket sort {text!r}; use _count|desc, _count|asc, "
                "_term|asc or _term|desc"
            )
        return name, direction == "desc"


def aggregate(
    queries: list[dict[str, Any]], store: Store, *, now: float
) -> list[dict[str, Any]]:
    """Run ``queries`` (the AggregateCases body) over ``store``'s cases.

    Example::

        aggregate([{"name": "s", "type": "terms", "field": "status"}], store, now=time.time())
    """
    for i, query in enumerate(queries):
        if isinstance(query, dict) and _depth(query) > MAX_DEPTH:
            raise AggregationError(
                f"aggregation {query.get('name', i)!r}: at most {MAX_DEPTH} levels of "
                "sub_aggregates are allowed"
            )
    cases = list(store.cases.values())  # a snapshot: another thread may add cases meanwhile
    docs: list[Doc] = [(case, case_resolver(store, case)) for case in cases]
    runner = _Aggregator(store, now)
    return [runner.run(query, docs, f"aggregation #{i}") for i, query in enumerate(queries)]
