"""Build FQL (Falcon Query Language) filters with correct quoting and escaping.

A :class:`Filter` is an immutable expression whose ``str()`` is the FQL text; pass it wherever
a ``filter`` is accepted (plain strings still work everywhere)::

    from falcon_mc import fql

    f = fql.eq("case.status", "open") & fql.gte("case.created_time", since)
    f |= fql.contains("case.title", user_input)
    str(f)  # "case.status:'open'+case.created_time:>='2024-01-01T00:00:00Z',case.title:'*...*'"
    async for case_id in mc.query_cases(filter=f): ...

Operators: ``&`` is AND (FQL ``+``), ``|`` is OR (FQL ``,``), ``~`` is NOT. AND binds tighter than
OR in FQL, so the builder adds parentheses only where they are needed
(``(a | b) & c`` -> ``(a,b)+c``).

Escaping: every value is single-quoted; inside the quotes a backslash and a single quote are
escaped (``\\\\``, ``\\'``), and ``*`` is escaped (``\\*``) in every value except the pattern given
to :func:`wildcard`, so user text can neither close the quote, add clauses nor become a wildcard.
Field names must match ``[A-Za-z_][A-Za-z0-9_.]*``. The fields and sort values the spec allows
per operation are :data:`CASE_FILTER_FIELDS`, :data:`ACTIVITY_FILTER_FIELDS`,
:data:`CASE_SORT_VALUES` and :data:`ACTIVITY_SORT_VALUES` (the builder itself does not restrict
fields, since it does not know which operation a filter is for).

Negation: FQL negates per field (``field:!'v'``), so ``~`` toggles the ``!`` of a single
comparison (:func:`eq` <-> :func:`ne`, also for :func:`any_of`, :func:`wildcard`, :func:`contains`)
and pushes negation through ``&``/``|`` by De Morgan's laws (``~(a & b)`` is ``~a | ~b``), which
needs no group negation syntax. Range comparisons (:func:`gt`...) and :func:`raw` filters have no
per-field negation and raise :class:`TypeError`; negate them yourself (``lt`` instead of ``gte``:
on a missing or multi-valued field the two are not exact complements, so the builder does not
guess).

:func:`check_filter` is the lightweight syntax check the client runs on every filter string
before sending it (balanced quotes, parentheses and brackets; not empty).
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeAlias

from ._exceptions import InvalidArgumentError

__all__ = [
    "ACTIVITY_FILTER_FIELDS",
    "ACTIVITY_SORT_VALUES",
    "CASE_FILTER_FIELDS",
    "CASE_SORT_VALUES",
    "Filter",
    "Value",
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

CASE_FILTER_FIELDS: frozenset[str] = frozenset(
    {
        "_all",
        "activity.body",
        "case.aids",
        "case.assigner.display_name",
        "case.assigner.first_name",
        "case.assigner.last_name",
        "case.assigner.uid",
        "case.assigner.uuid",
        "case.body",
        "case.created_time",
        "case.detections.id",
        "case.hosts",
        "case.id",
        "case.incidents.id",
        "case.ip_addresses",
        "case.key",
        "case.last_modified_time",
        "case.status",
        "case.title",
        "case.type",
    }
)
"""The filter fields the spec allows on ``QueryCasesIdsByFilter`` (``query_cases``).

Example::

    assert "case.status" in fql.CASE_FILTER_FIELDS
"""

ACTIVITY_FILTER_FIELDS: frozenset[str] = frozenset({"activity.created_time", "activity.type"})
"""The filter fields the spec allows on ``QueryActivityByCaseID`` (``query_activities``).

Example::

    assert "activity.type" in fql.ACTIVITY_FILTER_FIELDS
"""

CASE_SORT_VALUES: frozenset[str] = frozenset(
    f"case.{field}.{direction}"
    for field in ("created_time", "last_modified_time", "status", "type", "id")
    for direction in ("asc", "desc")
)
"""The spec's ``sort`` enum for ``QueryCasesIdsByFilter`` (upstream has changed it over time).

Example::

    assert "case.created_time.desc" in fql.CASE_SORT_VALUES
"""

ACTIVITY_SORT_VALUES: frozenset[str] = frozenset(
    f"activity.{field}.{direction}"
    for field in ("type", "created_time")
    for direction in ("asc", "desc")
)
"""The spec's ``sort`` enum for ``QueryActivityByCaseID``.

Example::

    assert "activity.created_time.asc" in fql.ACTIVITY_SORT_VALUES
"""

Value: TypeAlias = str | int | float | datetime
"""A comparison value: text, a number, or a timezone-aware :class:`~datetime.datetime`.

Example::

    fql.gte("case.created_time", datetime(2024, 1, 1, tzinfo=UTC))
"""

_FIELD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")

# Precedence levels of rendered expressions.
_OR = 0
_AND = 1
_ATOM = 2


class Filter(ABC):
    """An immutable FQL expression; ``str(f)`` is its FQL text.

    Build filters with :func:`eq`, :func:`ne`, :func:`any_of`, :func:`gt`/:func:`gte`/
    :func:`lt`/:func:`lte`, :func:`wildcard`, :func:`contains` and :func:`raw`, and combine them
    with ``&`` (AND), ``|`` (OR) and ``~`` (NOT). A plain string on either side of ``&``/``|`` is
    taken as :func:`raw` FQL. Filters compare equal when built the same way, and are hashable.

    Example::

        f = (fql.eq("case.type", "fc:detection") | fql.eq("case.type", "fc:incident")) \\
            & fql.ne("case.status", "closed")
        str(f)  # "(case.type:'fc:detection',case.type:'fc:incident')+case.status:!'closed'"
    """

    __slots__ = ()

    @abstractmethod
    def _render(self) -> str: ...

    @property
    @abstractmethod
    def _precedence(self) -> int: ...

    @abstractmethod
    def _negate(self) -> Filter: ...

    def __str__(self) -> str:
        return self._render()

    def __repr__(self) -> str:
        return f"<fql.Filter {self._render()!r}>"

    def __and__(self, other: Filter | str) -> Filter:
        return and_(self, other)

    def __rand__(self, other: str) -> Filter:
        return and_(other, self)

    def __or__(self, other: Filter | str) -> Filter:
        return or_(self, other)

    def __ror__(self, other: str) -> Filter:
        return or_(other, self)

    def __invert__(self) -> Filter:
        return self._negate()


def _coerce(value: object) -> Filter:
    if isinstance(value, Filter):
        return value
    if isinstance(value, str):
        return raw(value)
    raise TypeError(f"cannot combine an fql.Filter with {type(value).__name__}")


@dataclass(frozen=True, slots=True, repr=False)
class _Comparison(Filter):
    """``field:<op><value>``; ``negatable`` when ``op`` is ``""`` or ``"!"``."""

    field: str
    op: str
    value: str
    negatable: bool

    def _render(self) -> str:
        return f"{self.field}:{self.op}{self.value}"

    @property
    def _precedence(self) -> int:
        return _ATOM

    def _negate(self) -> Filter:
        if not self.negatable:
            raise TypeError(
                f"FQL has no negation for the range comparison {self._render()!r}; "
                "use the complementary comparison (e.g. lt instead of gte)"
            )
        op = "" if self.op == "!" else "!"
        return _Comparison(self.field, op, self.value, negatable=True)


@dataclass(frozen=True, slots=True, repr=False)
class _And(Filter):
    items: tuple[Filter, ...]

    def _render(self) -> str:
        return "+".join(
            f"({item._render()})" if item._precedence < _AND else item._render()
            for item in self.items
        )

    @property
    def _precedence(self) -> int:
        return _AND

    def _negate(self) -> Filter:
        return or_(*(~item for item in self.items))


@dataclass(frozen=True, slots=True, repr=False)
class _Or(Filter):
    items: tuple[Filter, ...]

    def _render(self) -> str:
        return ",".join(item._render() for item in self.items)

    @property
    def _precedence(self) -> int:
        return _OR

    def _negate(self) -> Filter:
        return and_(*(~item for item in self.items))


@dataclass(frozen=True, slots=True, repr=False)
class _Raw(Filter):
    text: str

    def _render(self) -> str:
        return self.text

    @property
    def _precedence(self) -> int:
        # A top-level "," makes the text an OR; it needs parentheses inside an AND.
        return _OR if _scan(self.text) else _AND

    def _negate(self) -> Filter:
        raise TypeError(
            f"cannot negate a raw FQL filter {self.text!r}; build it with fql.eq/ne/... instead"
        )


# --------------------------------------------------------------------------- helpers


def _check_field(field: object) -> str:
    if not isinstance(field, str) or not _FIELD_RE.fullmatch(field):
        raise InvalidArgumentError(
            "field", f"{field!r} is not a valid FQL field name ([A-Za-z_][A-Za-z0-9_.]*)"
        )
    return field


def _rfc3339(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgumentError(
            "value",
            f"naive datetime {value.isoformat()!r}: attach a timezone (e.g. tzinfo=UTC) "
            "so the instant is unambiguous",
        )
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise InvalidArgumentError(
            "value", f"{value.isoformat()!r} is out of range once converted to UTC"
        ) from None
    text = (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
    )
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"


def _literal(value: object) -> str:
    """The text of a comparison value (before quoting)."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return _rfc3339(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgumentError("value", f"{value!r} is not a finite number")
        return repr(value)
    raise InvalidArgumentError(
        "value", f"expected str, int, float or datetime, got {type(value).__name__}"
    )


def _escape(text: str, *, star: bool) -> str:
    text = text.replace("\\", "\\\\").replace("'", "\\'")
    if star:
        text = text.replace("*", "\\*")
    return text


def _quote(value: object) -> str:
    """A single-quoted literal: backslash, quote and ``*`` escaped."""
    return f"'{_escape(_literal(value), star=True)}'"


# --------------------------------------------------------------------------- constructors


def eq(field: str, value: Value) -> Filter:
    """``field:'value'``: the field equals ``value`` (a literal; ``*`` is not a wildcard).

    Example::

        str(fql.eq("case.status", "open"))     # "case.status:'open'"
        str(fql.eq("case.title", "it's 5*"))   # r"case.title:'it\\'s 5\\*'"
    """
    return _Comparison(_check_field(field), "", _quote(value), negatable=True)


def ne(field: str, value: Value) -> Filter:
    """``field:!'value'``: the field does not equal ``value`` (the negation of :func:`eq`).

    Example::

        str(fql.ne("case.status", "closed"))   # "case.status:!'closed'"
    """
    return _Comparison(_check_field(field), "!", _quote(value), negatable=True)


def any_of(field: str, values: Iterable[Value]) -> Filter:
    """``field:['a','b']``: the field equals any of ``values`` (each a literal).

    ``values`` must be a non-empty collection (not a single string). ``~any_of(...)`` gives
    ``field:!['a','b']`` (none of them).

    Example::

        str(fql.any_of("case.type", ["fc:detection", "fc:incident"]))
        # "case.type:['fc:detection','fc:incident']"
    """
    field = _check_field(field)
    if isinstance(values, str | bytes):
        raise InvalidArgumentError(
            "values", "expected a collection of values, not a single string (use eq)"
        )
    items = [_quote(value) for value in values]
    if not items:
        raise InvalidArgumentError("values", "any_of needs at least one value")
    return _Comparison(field, "", f"[{','.join(items)}]", negatable=True)


def _range(field: str, op: str, value: Value) -> Filter:
    return _Comparison(_check_field(field), op, _quote(value), negatable=False)


def gt(field: str, value: Value) -> Filter:
    """``field:>'value'``; a datetime is sent as RFC 3339 UTC (``2024-01-01T00:00:00Z``).

    Naive datetimes are refused (their instant is ambiguous).

    Example::

        str(fql.gt("case.created_time", datetime(2024, 1, 1, tzinfo=UTC)))
        # "case.created_time:>'2024-01-01T00:00:00Z'"
    """
    return _range(field, ">", value)


def gte(field: str, value: Value) -> Filter:
    """``field:>='value'`` (greater than or equal).

    Example::

        str(fql.gte("case.last_modified_time", "2024-06-01T00:00:00Z"))
        # "case.last_modified_time:>='2024-06-01T00:00:00Z'"
    """
    return _range(field, ">=", value)


def lt(field: str, value: Value) -> Filter:
    """``field:<'value'`` (less than).

    Example::

        str(fql.lt("activity.created_time", datetime(2024, 1, 1, tzinfo=UTC)))
        # "activity.created_time:<'2024-01-01T00:00:00Z'"
    """
    return _range(field, "<", value)


def lte(field: str, value: Value) -> Filter:
    """``field:<='value'`` (less than or equal).

    Example::

        str(fql.lte("case.created_time", "2024-12-31T23:59:59Z"))
        # "case.created_time:<='2024-12-31T23:59:59Z'"
    """
    return _range(field, "<=", value)


def wildcard(field: str, pattern: str) -> Filter:
    """``field:'pattern'`` where each ``*`` in ``pattern`` is a wildcard (on purpose).

    Everything else in ``pattern`` is literal (quotes and backslashes are escaped). For
    untrusted text use :func:`contains` or :func:`eq`, which escape ``*`` too.

    Example::

        str(fql.wildcard("case.title", "Phishing*"))   # "case.title:'Phishing*'"
    """
    if not isinstance(pattern, str):
        raise InvalidArgumentError("pattern", f"expected a string, got {type(pattern).__name__}")
    return _Comparison(
        _check_field(field), "", f"'{_escape(pattern, star=False)}'", negatable=True
    )


def contains(field: str, text: str) -> Filter:
    """``field:'*text*'``: the field contains ``text`` (escaped, including any ``*`` in it).

    ``text`` must not be empty.

    Example::

        str(fql.contains("case.title", "50% off*"))   # r"case.title:'*50% off\\**'"
    """
    field = _check_field(field)
    if not isinstance(text, str):
        raise InvalidArgumentError("text", f"expected a string, got {type(text).__name__}")
    if not text:
        raise InvalidArgumentError("text", "contains needs a non-empty text")
    return _Comparison(field, "", f"'*{_escape(text, star=True)}*'", negatable=True)


def raw(text: str) -> Filter:
    """Wrap an existing FQL string (checked with :func:`check_filter`) as a :class:`Filter`.

    Combined with ``&``, a raw filter containing a top-level ``,`` is parenthesised. Raw
    filters cannot be negated with ``~``.

    Example::

        f = fql.raw("case.status:'open',case.status:'reopened'") & fql.eq("case.type", "fc:x")
        str(f)  # "(case.status:'open',case.status:'reopened')+case.type:'fc:x'"
    """
    if not isinstance(text, str):
        raise InvalidArgumentError("filter", f"expected a string, got {type(text).__name__}")
    check_filter(text)
    return _Raw(text.strip())


def _combine(kind: type[_And | _Or], filters: tuple[Filter | str, ...]) -> Filter:
    items: list[Filter] = []
    for item in filters:
        coerced = _coerce(item)
        if isinstance(coerced, kind):
            items.extend(coerced.items)
        else:
            items.append(coerced)
    if not items:
        name = "and_" if kind is _And else "or_"
        raise InvalidArgumentError("filters", f"{name} needs at least one filter")
    if len(items) == 1:
        return items[0]
    return kind(tuple(items))


def and_(*filters: Filter | str) -> Filter:
    """All of ``filters`` (FQL ``+``); same as ``a & b & ...``. Strings are :func:`raw` FQL.

    Example::

        str(fql.and_(fql.eq("case.status", "open"), fql.eq("case.type", "fc:contact")))
        # "case.status:'open'+case.type:'fc:contact'"
    """
    return _combine(_And, filters)


def or_(*filters: Filter | str) -> Filter:
    """Any of ``filters`` (FQL ``,``); same as ``a | b | ...``. Strings are :func:`raw` FQL.

    Example::

        str(fql.or_(fql.eq("case.status", "open"), fql.eq("case.status", "reopened")))
        # "case.status:'open',case.status:'reopened'"
    """
    return _combine(_Or, filters)


# --------------------------------------------------------------------------- syntax check

_CLOSERS = {")": "(", "]": "["}


def _scan(text: str) -> bool:
    """Check quotes and brackets; return whether ``text`` has a top-level ``,``.

    Raises :class:`InvalidArgumentError` (argument ``"filter"``) on an unbalanced quote,
    parenthesis or bracket.
    """
    stack: list[tuple[str, int]] = []
    quote: tuple[str, int] | None = None
    top_comma = False
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if quote is not None:
            if ch == "\\":
                i += 2
                continue
            if ch == quote[0]:
                quote = None
        elif ch in ("'", '"'):
            quote = (ch, i)
        elif ch in ("(", "["):
            stack.append((ch, i))
        elif ch in _CLOSERS:
            if not stack:
                raise InvalidArgumentError("filter", f"unmatched {ch!r} at position {i}")
            opener, at = stack.pop()
            if opener != _CLOSERS[ch]:
                raise InvalidArgumentError(
                    "filter", f"{ch!r} at position {i} does not close {opener!r} at position {at}"
                )
        elif ch == "," and not stack:
            top_comma = True
        i += 1
    if quote is not None:
        raise InvalidArgumentError(
            "filter", f"unterminated quoted value starting at position {quote[1]}"
        )
    if stack:
        opener, at = stack[-1]
        raise InvalidArgumentError("filter", f"unclosed {opener!r} at position {at}")
    return top_comma


def check_filter(text: str) -> None:
    """Raise :class:`~falcon_mc.InvalidArgumentError` (``"filter"``) if ``text`` is malformed.

    A lightweight check, not a full parse: the filter must not be empty, quotes (``'`` or
    ``"``; a backslash escapes the next character inside them) must be closed, and parentheses
    and brackets must balance and nest. Field names and operators are left to the server.

    Example::

        fql.check_filter("case.status:'open'")       # fine
        fql.check_filter("case.title:'unclosed")     # raises InvalidArgumentError
    """
    if not isinstance(text, str):
        raise InvalidArgumentError("filter", f"expected a string, got {type(text).__name__}")
    if not text.strip():
        raise InvalidArgumentError("filter", "the filter is empty")
    _scan(text)
