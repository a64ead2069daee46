"""The client's operations agree with the spec copy in tests/data: routes, methods, parameters."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest

import falcon_mc
from falcon_mc import AsyncMessageCenter
from falcon_mc._operations import OPERATIONS

SPEC: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "message-center.swagger.json").read_text()
)
SPEC_OPS = {
    op["operationId"]: (method.upper(), path, op)
    for path, item in SPEC["paths"].items()
    for method, op in item.items()
}

# FalconPy's method name for each operationId (the seed's 11 operations).
METHODS = {
    "AggregateCases": "aggregate_cases",
    "GetCaseActivityByIds": "get_case_activity",
    "CaseAddActivity": "add_case_activity",
    "CaseDownloadAttachment": "download_case_attachment",
    "CaseAddAttachment": "add_case_attachment",
    "CreateCase": "create_case",
    "CreateCaseV2": "create_case_v2",
    "UpdateCase": "update_case",
    "GetCaseEntitiesByIDs": "get_cases",
    "QueryActivityByCaseID": "query_activities",
    "QueryCasesIdsByFilter": "query_cases",
}

# Python keyword -> wire name where they differ (FalconPy's convention).
KEYWORD_TO_WIRE = {
    "content": "body", "file_data": "file", "path": "file", "file": "file", "sample": "file",
    "upfile": "file", "case_type": "type", "activity_type": "type",
}


def test_every_spec_operation_is_implemented() -> None:
    assert set(OPERATIONS) == set(SPEC_OPS) == set(METHODS)


@pytest.mark.parametrize("op_id", sorted(METHODS))
def test_route_and_method_match_the_spec(op_id: str) -> None:
    method, path, _ = SPEC_OPS[op_id]
    op = OPERATIONS[op_id]
    assert (op.method, op.path) == (method, path)
    assert callable(getattr(AsyncMessageCenter, METHODS[op_id]))
    assert op.idempotent == (op_id in {
        "AggregateCases", "GetCaseActivityByIds", "CaseDownloadAttachment",
        "GetCaseEntitiesByIDs", "QueryActivityByCaseID", "QueryCasesIdsByFilter",
    })


def _wire_names(op_id: str) -> set[str]:
    """Every parameter name the spec defines for an operation (body properties flattened)."""
    _, _, op = SPEC_OPS[op_id]
    names: set[str] = set()
    for param in op.get("parameters", []):
        if param["in"] != "body":
            names.add(param["name"])
            continue
        schema = param["schema"]
        if "$ref" in schema:
            definition = SPEC["definitions"][schema["$ref"].split("/")[-1]]
            names.update(definition["properties"])
    return names


@pytest.mark.parametrize("op_id", sorted(METHODS))
def test_keywords_map_onto_spec_parameters(op_id: str) -> None:
    signature = inspect.signature(getattr(AsyncMessageCenter, METHODS[op_id]))
    keywords = {
        name for name, p in signature.parameters.items()
        if name not in {"self", "body", "filename", "file_name", "content_type", "queries", "query"}
        and p.kind is not inspect.Parameter.VAR_POSITIONAL
    }
    wire = _wire_names(op_id)
    mapped = {KEYWORD_TO_WIRE.get(name, name) for name in keywords}
    assert mapped <= wire, mapped - wire
    if op_id == "AggregateCases":
        assert {"field", "name", "type"} <= set(
            falcon_mc.AggregateQuery.model_fields
        )
    elif op_id in {"GetCaseEntitiesByIDs", "GetCaseActivityByIds"}:
        assert wire == {"ids"} and "ids" in keywords
    else:
        assert wire <= mapped, wire - mapped


def test_exported_names_are_sorted_and_documented() -> None:
    names = falcon_mc.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(falcon_mc, name), name
        obj = getattr(falcon_mc, name)
        if name != "__version__":
            assert inspect.getdoc(obj), f"{name} has no docstring"
