"""Field access on stored cases and activities, shared by filtering, sorting and aggregating."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..fql import (
    ACTIVITY_FILTER_FIELDS,
    ACTIVITY_SORT_VALUES,
    CASE_FILTER_FIELDS,
    CASE_SORT_VALUES,
)
from ._state import Store
from ._util import parse_instant_or_none

__all__ = [
    "ACTIVITY_FILTER_FIELDS",
    "ACTIVITY_SORTS",
    "CASE_FILTER_FIELDS",
    "CASE_SORTS",
    "activity_resolver",
    "case_resolver",
    "sort_key",
]

#: Sortable fields (the spec's sort enums, without ``.asc``/``.desc``).
CASE_SORTS = frozenset(value.rsplit(".", 1)[0] for value in CASE_SORT_VALUES)
ACTIVITY_SORTS = frozenset(value.rsplit(".", 1)[0] for value in ACTIVITY_SORT_VALUES)

_LIST_FIELDS = {"aids", "hosts", "ip_addresses"}
_TEXT_FIELDS = ("id", "key", "title", "body", "status", "type")


def _case_values(store: Store, case: dict[str, Any], field: str) -> list[str]:
    name = field.removeprefix("case.")
    if name in _LIST_FIELDS:
        return [str(v) for v in case.get(name) or () if v is not None]
    if name.startswith("assigner."):
        value = (case.get("assigner") or {}).get(name[len("assigner.") :])
        return [] if value is None else [str(value)]
    if name in ("detections.id", "incidents.id"):
        key = name.split(".", 1)[0]
        return [str(d.get("id")) for d in case.get(key) or () if d.get("id") is not None]
    if field == "activity.body":
        return [
            store.activities[a]["body"]
            for a in store.activities_by_case.get(case["id"], ())
            if a in store.activities
        ]
    if field == "_all":
        out = [str(case[k]) for k in _TEXT_FIELDS if case.get(k)]
        for key in ("aids", "hosts", "ip_addresses"):
            out.extend(str(v) for v in case.get(key) or ())
        for key in ("detections", "incidents"):
            out.extend(str(d.get("id")) for d in case.get(key) or ())
        assigner = case.get("assigner") or {}
        out.extend(str(v) for v in assigner.values() if v)
        out.extend(_case_values(store, case, "activity.body"))
        return out
    value = case.get(name)
    if value is None or isinstance(value, (list, dict)):
        return []
    return [str(value)]


def case_resolver(store: Store, case: dict[str, Any]) -> Callable[[str], Sequence[str]]:
    """A function: field name (with or without ``case.``) -> the case's values for it."""
    return lambda field: _case_values(store, case, field)


def activity_resolver(activity: dict[str, Any]) -> Callable[[str], Sequence[str]]:
    """A function: field name (with or without ``activity.``) -> the activity's values for it."""

    def resolve(field: str) -> Sequence[str]:
        value = activity.get(field.removeprefix("activity."))
        return [] if value is None else [str(value)]

    return resolve


def sort_key(entity: dict[str, Any], field: str) -> tuple[int, Any]:
    """A sort key for ``entity``'s ``field`` (times as instants, missing values first)."""
    name = field.split(".", 1)[1] if "." in field else field
    value = entity.get(name)
    if name in ("created_time", "last_modified_time"):
        moment = parse_instant_or_none(value)
        return (0, 0) if moment is None else (1, moment)
    return (0, "") if value is None else (1, str(value))
