"""Build FQL (Falcon Query Language) filters safely.

Values are always quoted and escaped, so user text can never close the quote, add a clause or
become a wildcard. Combine filters with ``&`` (FQL ``+``, and) and ``|`` (FQL ``,``, or); ``~``
negates a single-field filter. Every ``Filter`` is accepted wherever a filter string is.

Example::

    from falcon_mc import fql

    f = fql.eq("case.status", "open") & fql.gte("case.created_time", "2024-01-01T00:00:00Z")
    str(f)   # "case.status:'open'+case.created_time:>='2024-01-01T00:00:00Z'"
    await mc.query_cases(filter=f)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from ._exceptions import InvalidArgumentError

__all__ = [
    "ACTIVITY_FILTER_FIELDS",
    "ACTIVITY_SORT_VALUES",
    "CASE_FILTER_FIELDS",
    "CASE_SORT_VALUES",
    "Filter",
    "and_",
    "any_of",
    "check_filter",
    "contains",
    "eq",
    "gt",
    "gte",
    "lt",
    "lte",
    "ne",
    "or_",
    "raw",
    "wildcard",
]

CASE_FILTER_FIELDS: frozenset[str] = frozenset({
    "_all", "activity.body", "case.aids", "case.assigner.display_name",
    "case.assigner.first_name", "case.assigner.last_name", "case.assigner.uid",
    "case.assigner.uuid", "case.body", "case.created_time", "case.detections.id", "case.hosts",
    "case.id", "case.incidents.id", "case.ip_addresses", "case.key", "case.last_modified_time",
    "case.status", "case.title", "case.type",
})
"""The filter fields the spec allows on ``query_cases``."""

ACTIVITY_FILTER_FIELDS: frozenset[str] = frozenset({"activity.created_time", "activity.type"})
"""The filter fields the spec allows on ``query_activities``."""

CASE_SORT_VALUES: frozenset[str] = frozenset(
    f"case.{field}.{direction}"
    for field in ("created_time", "last_modified_time", "status", "type", "id")
    for direction in ("asc", "desc")
)
"""The spec's sort values for ``query_cases``."""

ACTIVITY_SORT_VALUES: frozenset[str] = frozenset(
    f"activity.{field}.{direction}"
    for field in ("type", "created_time")
    for direction in ("asc", "desc")
)
"""The spec's sort values for ``query_activities``."""

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")

Value = str | int | float | datetime


def _field(name: str) -> str:
    if not isinstance(name, str) or not _FIELD.fullmatch(name):
        raise InvalidArgumentError("field", f"not an FQL field name: {name!r}")
    return name


def _literal(value: Value, *, escape_wildcards: bool = True) -> str:
    """Quote a value; backslash, quote (and ``*`` unless wanted as a wildcard) are escaped."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    elif isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidArgumentError("value", f"expected str, int, float or datetime: {value!r}")
    else:
        text = str(value)
    text = text.replace("\\", "\\\\").replace("'", "\\'")
    if escape_wildcards:
        text = text.replace("*", "\\*")
    return f"'{text}'"


@dataclass(frozen=True)
class Filter:
    """An FQL filter expression; ``str(f)`` is the FQL text.

    Example::

        f = (fql.eq("case.type", "fc:contact") | fql.eq("case.type", "fc:incident-support")) \\
            & fql.ne("case.status", "closed")
    """

    text: str
    kind: str = "term"  # "term" (one field), "and", "or", or "raw"
    field: str | None = None
    negatable: str | None = None  # the text with the operator negated, for ~

    def __str__(self) -> str:
        return self.text

    def _operand(self, kind: str) -> str:
        if (self.kind == "or" and kind == "and") or self.kind == "raw":
            return f"({self.text})"
        return self.text

    def __and__(self, other: Filter) -> Filter:
        return and_(self, other)

    def __or__(self, other: Filter) -> Filter:
        return or_(self, other)

    def __invert__(self) -> Filter:
        if self.negatable is None:
            raise TypeError("only single-field filters can be negated with ~")
        return Filter(self.negatable, "term", self.field, self.text)


def _term(field: str, operator: str, literal: str, negated: str | None = None) -> Filter:
    name = _field(field)
    text = f"{name}:{operator}{literal}"
    other = f"{name}:{negated}{literal}" if negated is not None else None
    return Filter(text, "term", name, other)


def eq(field: str, value: Value) -> Filter:
    """``field:'value'``: equality (``*`` in ``value`` is literal).

    >>> str(eq("case.status", "open"))
    "case.status:'open'"
    """
    return _term(field, "", _literal(value), "!")


def ne(field: str, value: Value) -> Filter:
    """``field:!'value'``: not equal.

    >>> str(ne("case.status", "closed"))
    "case.status:!'closed'"
    """
    return _term(field, "!", _literal(value), "")


def any_of(field: str, values: Iterable[Value]) -> Filter:
    """``field:['a','b']``: one of several values.

    >>> str(any_of("case.type", ["fc:contact", "fc:incident-support"]))
    "case.type:['fc:contact','fc:incident-support']"
    """
    items = [_literal(v) for v in values]
    if not items:
        raise InvalidArgumentError("values", "at least one value is required")
    listing = f"[{','.join(items)}]"
    return _term(field, "", listing, "!")


def gt(field: str, value: Value) -> Filter:
    """``field:>'value'`` (times as RFC 3339 UTC).

    >>> str(gt("case.created_time", "2024-01-01T00:00:00Z"))
    "case.created_time:>'2024-01-01T00:00:00Z'"
    """
    return _term(field, ">", _literal(value), "<=")


def gte(field: str, value: Value) -> Filter:
    """``field:>='value'``."""
    return _term(field, ">=", _literal(value), "<")


def lt(field: str, value: Value) -> Filter:
    """``field:<'value'``."""
    return _term(field, "<", _literal(value), ">=")


def lte(field: str, value: Value) -> Filter:
    """``field:<='value'``."""
    return _term(field, "<=", _literal(value), ">")


def wildcard(field: str, pattern: str) -> Filter:
    """``field:'pat*tern'``: ``*`` in ``pattern`` is a wildcard, everything else literal.

    >>> str(wildcard("case.title", "Suspicious*"))
    "case.title:'Suspicious*'"
    """
    return _term(field, "", _literal(pattern, escape_wildcards=False), "!")


def contains(field: str, text: str) -> Filter:
    """``field:'*text*'``: ``text`` anywhere (``text`` is escaped, ``*`` included).

    >>> str(contains("case.title", "power*shell"))
    "case.title:'*power\\\\*shell*'"
    """
    inner = _literal(text)[1:-1]
    return _term(field, "", f"'*{inner}*'", "!")


def raw(text: str) -> Filter:
    """Wrap an FQL string written by hand (checked with :func:`check_filter`)."""
    check_filter(text)
    return Filter(text, "raw")


def _join(kind: str, separator: str, filters: tuple[Filter, ...]) -> Filter:
    if not filters:
        raise InvalidArgumentError("filters", "at least one filter is required")
    if len(filters) == 1:
        return filters[0]
    return Filter(separator.join(f._operand(kind) for f in filters), kind)


def and_(*filters: Filter) -> Filter:
    """All of the filters (FQL ``+``)."""
    return _join("and", "+", filters)


def or_(*filters: Filter) -> Filter:
    """Any of the filters (FQL ``,``); parenthesised when combined with ``and``."""
    return _join("or", ",", filters)


def check_filter(text: str) -> None:
    """Refuse an FQL string with unbalanced quotes, parentheses or brackets, or an empty one.

    Raises :class:`~falcon_mc.InvalidArgumentError` (argument ``"filter"``).

    >>> check_filter("case.status:'open'")
    """
    if not text.strip():
        raise InvalidArgumentError("filter", "must not be empty (pass None for no filter)")
    quote: str | None = None
    depth = {"(": 0, "[": 0}
    closers = {")": "(", "]": "["}
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif quote is not None:
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
        elif ch in depth:
            depth[ch] += 1
        elif ch in closers:
            depth[closers[ch]] -= 1
            if depth[closers[ch]] < 0:
                raise InvalidArgumentError("filter", f"unbalanced {ch!r} in {text!r}")
    if quote is not None:
        raise InvalidArgumentError("filter", f"unbalanced quote in {text!r}")
    for opener, count in depth.items():
        if count:
            raise InvalidArgumentError("filter", f"unbalanced {opener!r} in {text!r}")
