"""Models of one reply share their fields-set; no model can change another's through it."""

from __future__ import annotations

import copy
import gc
import pickle
import tracemalloc
from typing import Any

import pytest
import respx
from pydantic import TypeAdapter

from falcon_mc import AsyncMessageCenter
from falcon_mc._fieldsets import SharedFieldNames, share_fields_sets
from falcon_mc.models import Case, Envelope, IdPage, User

from .conftest import envelope
from .test_models import CASE

ADAPTER = TypeAdapter(Envelope[Case])


def cases(n: int, **changes: Any) -> list[dict[str, Any]]:
    return [{**CASE, "id": f"c-{i}", **changes} for i in range(n)]


def parsed(resources: list[dict[str, Any]]) -> list[Case]:
    env = ADAPTER.validate_python({"resources": resources})
    share_fields_sets(env)
    return env.resources


async def test_cases_of_a_reply_share_one_fields_set(
    mc: AsyncMessageCenter, router: respx.MockRouter
) -> None:
    router.post("/message-center/entities/cases/GET/v1").respond(200, json=envelope(cases(3)))
    env = await mc.get_cases(["c-0", "c-1", "c-2"])
    first, second, third = env.resources
    shared = first.__pydantic_fields_set__
    assert type(shared) is SharedFieldNames
    assert shared == set(CASE)
    assert second.__pydantic_fields_set__ is shared and third.__pydantic_fields_set__ is shared
    # nested models too, across cases
    assert first.assigner is not None and second.assigner is not None
    assert first.assigner.__pydantic_fields_set__ is second.assigner.__pydantic_fields_set__
    assert first.detections[0].__pydantic_fields_set__ is second.detections[0].__pydantic_fields_set__
    assert first.attachments[0].__pydantic_fields_set__ is third.attachments[0].__pydantic_fields_set__


def held_bytes(share: bool) -> int:
    """Bytes still allocated by parsing 200 cases, measured by tracemalloc."""
    raw = ADAPTER.dump_json(Envelope[Case](resources=[Case(**c) for c in cases(200)]))
    tracemalloc.start()
    try:
        env = ADAPTER.validate_json(raw)
        if share:
            share_fields_sets(env)
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(env.resources) == 200
    return held


def test_sharing_frees_a_set_per_case() -> None:
    saved_per_case = (held_bytes(share=False) - held_bytes(share=True)) / 200
    # a fields-set of 21 names takes over 2 KiB, the assigner's of 6 names over 600 bytes
    assert saved_per_case > 2048


def test_models_with_other_fields_get_their_own_set() -> None:
    full = cases(2)
    sparse = [{"id": "s-0", "title": "t"}, {"id": "s-1", "title": "u"}]
    a, b, c, d = parsed([full[0], sparse[0], sparse[1], full[1]])
    assert b.__pydantic_fields_set__ is c.__pydantic_fields_set__
    assert a.__pydantic_fields_set__ is not b.__pydantic_fields_set__
    assert d.__pydantic_fields_set__ is not b.__pydantic_fields_set__
    assert a.model_fields_set == d.model_fields_set == set(CASE)
    assert b.model_fields_set == c.model_fields_set == {"id", "title"}
    assert b.model_dump(exclude_unset=True) == {"id": "s-0", "title": "t"}


def test_assignment_does_not_reach_the_other_models() -> None:
    first, second = parsed([{"id": "c-0"}, {"id": "c-1"}])
    assert first.__pydantic_fields_set__ is second.__pydantic_fields_set__
    first.title = "changed"
    first.custom = "an unknown field"  # kept as an extra, like the wire's unknown fields
    assert first.model_fields_set == {"id", "title", "custom"}
    assert second.model_fields_set == {"id"}
    assert second.model_dump(exclude_unset=True) == {"id": "c-1"}
    assert first.model_dump(exclude_unset=True) == {
        "id": "c-0", "title": "changed", "custom": "an unknown field",
    }


def test_model_fields_set_is_the_models_own() -> None:
    first, second = parsed([{"id": "c-0"}, {"id": "c-1"}])
    own = first.model_fields_set
    own.add("title")  # pydantic hands out the set itself; mutating it must stay local
    assert first.model_fields_set == {"id", "title"}
    assert second.model_fields_set == {"id"}
    assert type(own) is set


def test_exclude_unset_reads_the_shared_set() -> None:
    first, second = parsed([{"id": "c-0", "title": "a"}, {"id": "c-1", "title": "b"}])
    assert type(second.__pydantic_fields_set__) is SharedFieldNames
    assert second.model_dump(exclude_unset=True) == {"id": "c-1", "title": "b"}
    assert first.model_dump_json(exclude_unset=True) == '{"id":"c-0","title":"a"}'


@pytest.mark.parametrize(
    "duplicate",
    [
        lambda m: m.model_copy(),
        lambda m: m.model_copy(deep=True),
        lambda m: m.model_copy(update={"title": "new"}),
        copy.copy,
        copy.deepcopy,
        lambda m: pickle.loads(pickle.dumps(m)),  # noqa: S301 (our own bytes)
    ],
    ids=["model_copy", "model_copy-deep", "model_copy-update", "copy", "deepcopy", "pickle"],
)
def test_copies_get_a_plain_set(duplicate: Any) -> None:
    first, second = parsed([{"id": "c-0"}, {"id": "c-1"}])
    dup = duplicate(first)
    assert type(dup.__pydantic_fields_set__) is set
    dup.body = "set on the copy"
    assert "body" in dup.model_fields_set
    assert first.model_fields_set == second.model_fields_set == {"id"}
    assert second.model_dump(exclude_unset=True) == {"id": "c-1"}


def test_update_through_model_copy_keeps_the_original_unchanged() -> None:
    first, _ = parsed([{"id": "c-0"}, {"id": "c-1"}])
    updated = first.model_copy(update={"status": "3"})
    assert updated.model_fields_set == {"id", "status"}
    assert first.model_fields_set == {"id"}


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s.add("x"),
        lambda s: s.discard("id"),
        lambda s: s.remove("id"),
        lambda s: s.pop(),
        lambda s: s.clear(),
        lambda s: s.update({"x"}),
        lambda s: s.difference_update({"id"}),
        lambda s: s.intersection_update(set()),
        lambda s: s.symmetric_difference_update({"x"}),
    ],
)
def test_the_shared_set_refuses_changes(mutate: Any) -> None:
    shared = SharedFieldNames({"id"})
    with pytest.raises(TypeError, match="shared"):
        mutate(shared)
    assert shared == {"id"}


@pytest.mark.parametrize("operator", ["__ior__", "__iand__", "__isub__", "__ixor__"])
def test_the_shared_set_refuses_in_place_operators(operator: str) -> None:
    shared = SharedFieldNames({"id"})
    with pytest.raises(TypeError, match="shared"):
        getattr(shared, operator)({"x"})
    assert shared == {"id"}


def test_models_outside_the_wire_models_are_left_alone() -> None:
    page = IdPage(ids=["a"], offset=0, total=1)  # a plain BaseModel: it would not unshare
    own = page.__pydantic_fields_set__
    share_fields_sets([page, {"page": page}])
    assert page.__pydantic_fields_set__ is own


def test_models_in_lists_and_dicts_are_shared() -> None:
    users = [User(uid="a"), User(uid="b")]
    holder = {"x": User(uid="c"), "nested": [[User(uid="d")]]}
    share_fields_sets([users, holder])
    shared = users[0].__pydantic_fields_set__
    assert type(shared) is SharedFieldNames
    assert users[1].__pydantic_fields_set__ is shared
    assert holder["x"].__pydantic_fields_set__ is shared  # type: ignore[attr-defined]
    assert holder["nested"][0][0].__pydantic_fields_set__ is shared  # type: ignore[index]
