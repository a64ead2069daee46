"""Checks on the caller's arguments, done before anything is sent.

Each raises :class:`InvalidArgumentError` (a ``ValueError``) naming the argument.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import TypeVar, cast

import httpx
from pydantic import BaseModel, ValidationError

from ._exceptions import InvalidArgumentError
from .fql import Filter, check_filter

__all__ = [
    "NOT_UNICODE",
    "build_model",
    "check_count",
    "check_limit",
    "check_offset",
    "check_seconds",
    "check_sort",
    "check_text",
    "check_timeout",
    "check_unicode",
    "normalize_filter",
    "normalize_ids",
    "normalize_refs",
]

MAX_LIMIT = 500

M = TypeVar("M", bound=BaseModel)


NOT_UNICODE = (
    "holds text that is not valid Unicode (a lone surrogate: what undecodable bytes from the "
    "command line or a file become in Python)"
)


def check_unicode(argument: str, text: str) -> str:
    """``text`` must encode as UTF-8 (httpx would raise ``UnicodeEncodeError`` deep inside, or
    JSON carry an escaped lone surrogate, which servers fail on)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        raise InvalidArgumentError(argument, NOT_UNICODE) from None
    return text


def check_text(argument: str, value: object) -> str:
    """A required, non-empty string of valid Unicode."""
    if not isinstance(value, str):
        raise InvalidArgumentError(argument, f"expected a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidArgumentError(argument, "must not be empty")
    return check_unicode(argument, value)


def check_count(argument: str, value: object, *, minimum: int) -> int:
    """An integer (not a ``bool``) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgumentError(argument, f"must be an integer >= {minimum}, got {value!r}")
    return value


def check_seconds(argument: str, value: object, *, zero: bool = False) -> float:
    """A number of seconds: more than 0 (or at least 0 with ``zero``)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (value >= 0 if zero else value > 0)  # NaN fails both
    ):
        bound = ">= 0" if zero else "> 0"
        raise InvalidArgumentError(argument, f"must be seconds {bound}, got {value!r}")
    return float(value)


def check_timeout(timeout: object) -> httpx.Timeout:
    """Seconds (> 0), ``None`` for no limit, or an ``httpx.Timeout`` whose phases are so."""
    phases: tuple[object, ...] = (timeout,)
    if isinstance(timeout, httpx.Timeout):
        phases = (timeout.connect, timeout.read, timeout.write, timeout.pool)
    for phase in phases:
        if phase is not None:
            check_seconds("timeout", phase)
    return timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(cast(float, timeout))


def check_limit(limit: object) -> int | None:
    """``limit`` is an integer in 1..500 (the spec's range); a string of ASCII digits is
    accepted, as FalconPy does (the rules of :func:`check_offset`)."""
    if limit is None:
        return None
    if (number := _ascii_digits(limit)) is not None:
        limit = number
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise InvalidArgumentError("limit", f"expected an integer, got {limit!r}")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgumentError("limit", f"must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


def _ascii_digits(value: object) -> int | None:
    """The number a string of ASCII digits (spaces around allowed) spells; else ``None``.

    Other Unicode digits (``'²'``, ``'٣'``) are not read: ``int()`` rejects some and reads
    others as a number the caller may not have meant.
    """
    if isinstance(value, str):
        digits = value.strip()
        if digits.isascii() and digits.isdigit():
            return int(digits)
    return None


def check_offset(offset: object) -> int | None:
    """``offset`` is a non-negative integer (a string of ASCII digits is accepted, as FalconPy;
    other Unicode digits are refused)."""
    if offset is None:
        return None
    if (number := _ascii_digits(offset)) is not None:
        return number
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise InvalidArgumentError("offset", f"expected an integer, got {offset!r}")
    if offset < 0:
        raise InvalidArgumentError("offset", f"must not be negative, got {offset}")
    return offset


def check_sort(sort: object, allowed: Collection[str], *, strict: bool) -> str | None:
    """``sort`` is one of the spec's values; ``field|asc`` (FalconPy style) is accepted too."""
    if sort is None:
        return None
    text = check_text("sort", sort).strip()
    normalized = text.replace("|", ".")
    if strict and normalized not in allowed:
        raise InvalidArgumentError(
            "sort", f"{text!r} is not one of the spec's values: {', '.join(sorted(allowed))}"
        )
    return normalized


def normalize_filter(value: object) -> str | None:
    """A filter string or :class:`falcon_mc.fql.Filter`, syntax-checked."""
    if value is None:
        return None
    if isinstance(value, Filter):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise InvalidArgumentError("filter", f"expected a string or fql.Filter, got {value!r}")
    check_filter(check_unicode("filter", text))
    return text


def normalize_ids(ids: object, *, argument: str = "ids") -> list[str]:
    """A list of ids, or a comma-separated string; duplicates removed, order kept."""
    if isinstance(ids, str):
        items = [part.strip() for part in ids.split(",")]
        items = [item for item in items if item]
    elif isinstance(ids, Collection) and not isinstance(ids, bytes | Mapping):
        items = []
        for item in ids:
            if not isinstance(item, str) or not item.strip():
                raise InvalidArgumentError(argument, f"every id must be a non-empty string: {item!r}")
            items.append(item.strip())
    else:
        raise InvalidArgumentError(
            argument, f"expected a list of ids or a comma-separated string, got {ids!r}"
        )
    if not items:
        raise InvalidArgumentError(argument, "at least one id is required")
    return [check_unicode(argument, item) for item in dict.fromkeys(items)]


def normalize_refs(argument: str, refs: object) -> list[object] | None:
    """Detections or incidents: a list (or other iterable) of references, or ``None`` for "not
    given" (as FalconPy). A lone reference (a dict, an ``EntityRef``) or a string is refused:
    iterating it would send its keys, fields or characters."""
    if refs is None:
        return None
    if isinstance(refs, Mapping | BaseModel):
        raise InvalidArgumentError(
            argument, f"expected a list of references, got a single {type(refs).__name__}: "
            "wrap it in a list ([...])"
        )
    if isinstance(refs, str | bytes) or not isinstance(refs, Iterable):
        raise InvalidArgumentError(
            argument, f"expected a list of references (EntityRef or dict), got {refs!r}"
        )
    return list(refs)


# Wire key -> the Python keyword that fills it (FalconPy's convention).
_KEYWORDS = {"body": "content"}


def build_model(argument: str, model: type[M], data: object) -> M:
    """Validate ``data`` (a mapping or model) into ``model``; problems become InvalidArgumentError.

    ``argument`` is the keyword the data came in (``"body"`` for a raw payload); when empty, the
    data was built from keywords and the error names the keyword (``content`` for ``body``).
    """
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(p) for p in first["loc"]]
        if not argument and loc:
            loc[0] = _KEYWORDS.get(loc[0], loc[0])
        name = ".".join([argument, *loc] if argument else loc) or argument or "body"
        raise InvalidArgumentError(name, first["msg"]) from None
