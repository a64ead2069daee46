"""One ``model_fields_set`` for all the models of a reply that came with the same fields.

Pydantic gives each model its own ``__pydantic_fields_set__``: for a :class:`~falcon_mc.Case`,
a set of up to 21 names that takes 2.2 KiB (a set keeps its table at most 60% full), more than
the case's other fields together, and a reply of 100 cases holds 100 equal sets. After a reply
is validated, :func:`share_fields_sets` walks its models and gives each one the frozen set of
the last model of its class when the names are the same. A model takes a private copy the first
time anything could change it (an assignment, or a caller reading ``model_fields_set``);
pydantic's own copies (``model_copy``, ``copy``, ``deepcopy``, pickle) make plain sets of it. A
case then takes about 40% less memory and fewer objects for the cyclic garbage collector to walk.
"""

from __future__ import annotations

import typing
from typing import NoReturn

from pydantic import BaseModel

__all__ = ["SharedFieldNames", "SharingModel", "share_fields_sets"]

_object_setattr = object.__setattr__


class SharedFieldNames(set[str]):
    """A fields-set shared by many models: mutating it raises (unshare the model first)."""

    __slots__ = ()

    def _refuse(self, *_args: object) -> NoReturn:
        raise TypeError("this fields-set is shared between models; it cannot change")

    add = discard = remove = pop = clear = _refuse
    update = difference_update = intersection_update = symmetric_difference_update = _refuse
    __ior__ = __iand__ = __isub__ = __ixor__ = _refuse

    def __copy__(self) -> set[str]:
        return set(self)

    def __reduce__(self) -> tuple[type[set[str]], tuple[list[str]]]:
        return set, (list(self),)


def _own_fields_set(model: BaseModel) -> set[str]:
    fields_set = model.__pydantic_fields_set__
    if type(fields_set) is SharedFieldNames:
        fields_set = set(fields_set)
        _object_setattr(model, "__pydantic_fields_set__", fields_set)
    return fields_set


class SharingModel(BaseModel):
    """A model whose fields-set may be shared: it unshares before anything could change it."""

    def __setattr__(self, name: str, value: object) -> None:
        _own_fields_set(self)
        super().__setattr__(name, value)

    @property
    def model_fields_set(self) -> set[str]:
        """The names of the fields set on this model: on the wire, at construction, or since."""
        return _own_fields_set(self)


_LAST: dict[type, SharedFieldNames] = {}
_NESTED: dict[type, tuple[str, ...] | None] = {}  # None: not a SharingModel


def _holds_model(annotation: object) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_holds_model(arg) for arg in typing.get_args(annotation))


def _nested_fields(cls: type) -> tuple[str, ...] | None:
    """Fields of ``cls`` whose values may be or contain models; None if ``cls`` can't share."""
    names = None
    if issubclass(cls, SharingModel):
        fields = cls.model_fields.items()
        names = tuple(name for name, info in fields if _holds_model(info.annotation))
    _NESTED[cls] = names
    return names


def share_fields_sets(value: object) -> None:
    """Share fields-sets across every :class:`SharingModel` in ``value`` (models, lists, dicts).

    Classes are looked up in a cache rather than checked with ``isinstance``, which costs more
    on pydantic's ABC-based metaclass; this runs once for every model of every reply.
    """
    cls = type(value)
    if cls is list:
        for item in value:  # type: ignore[attr-defined]
            share_fields_sets(item)
        return
    if cls is dict:
        for item in value.values():  # type: ignore[attr-defined]
            share_fields_sets(item)
        return
    nested = _NESTED[cls] if cls in _NESTED else _nested_fields(cls)
    if nested is None:
        return
    own = value.__pydantic_fields_set__  # type: ignore[attr-defined]
    shared = _LAST.get(cls)
    if shared is None or own != shared:
        shared = _LAST[cls] = SharedFieldNames(own)
    _object_setattr(value, "__pydantic_fields_set__", shared)
    attributes: dict[str, object] = value.__dict__
    for name in nested:
        if child := attributes[name]:  # skip None and empty lists without a call
            share_fields_sets(child)
