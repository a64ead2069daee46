"""Spec conformance: the models' wire names and types match the swagger definitions."""

from __future__ import annotations

import json
import types
import typing
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from falcon_mc import models

SPEC_PATH = Path(__file__).parent / "data" / "message-center.swagger.json"
DEFINITIONS: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))["definitions"]

# definition name -> model whose declared fields must be exactly the definition's properties
EXACT: dict[str, type[BaseModel]] = {
    "messages.Case": models.Case,
    "messages.Activity": models.CaseActivity,
    "messages.Author": models.User,
    "messages.Attachment": models.Attachment,
    "msa.AffectedEntity": models.AffectedEntity,
    "msa.APIError": models.ErrorDetail,
    "msa.Paging": models.Pagination,
    "msa.MetaInfo": models.Meta,
    "msa.Resources": models.Writes,
    "msa.AggregateQueryRequest": models.AggregateQuery,
    "msa.DateRangeSpec": models.DateRange,
    "msa.RangeSpec": models.Range,
    "msa.ExtendedBoundsSpec": models.ExtendedBounds,
    "msa.APIFiltersSpec": models.FiltersSpec,
    "msa.AggregationResult": models.AggregationResult,
    "msa.AggregationResultItem": models.Bucket,
    "msa.Hits": models.Hits,
    "msa.Hit": models.Hit,
    "domain.CaseCreationRequest": models.CaseCreationRequest,
    "messagecenter.CaseCreationRequestV2": models.CaseCreationRequestV2,
    "api.CaseUpdateRequest": models.CaseUpdateRequest,
    "messagecenter.ActivityCreationRequest": models.ActivityCreationRequest,
    "msa.IdsRequest": models.IdsRequest,
}

# definition name -> model whose declared fields must include the definition's properties
SUPERSET: dict[str, type[BaseModel]] = {
    "messages.Detection": models.EntityRef,
    "messages.Incident": models.EntityRef,
    "messages.Alert": models.EntityRef,
}

# envelope replies: meta/resources/errors, resources of the given model
ENVELOPES: dict[str, type[Any] | None] = {
    "api.MessageCenterCasesResponse": models.Case,
    "api.MessageCenterActivityResponse": models.CaseActivity,
    "messagecenter.AttachmentUploadResponse": models.Attachment,
    "msa.ReplyAffectedEntities": models.AffectedEntity,
    "msa.AggregatesResponse": models.AggregationResult,
    "msaspec.QueryResponse": str,
    "msa.ReplyMetaOnly": None,
    "msaspec.ResponseFields": None,
}

ALL_MODELS = {**EXACT, **SUPERSET}


def wire_fields(model: type[BaseModel]) -> dict[str, Any]:
    """Wire name -> declared annotation of every declared field."""
    return {(info.serialization_alias or name): info.annotation for name, info in model.model_fields.items()}


def leaves(annotation: Any) -> list[Any]:
    """The members of a (possibly optional / Annotated) union annotation, ``None`` dropped."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return leaves(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [leaf for arg in typing.get_args(annotation) for leaf in leaves(arg)]
    if annotation is type(None):
        return []
    return [annotation]


def ref_model(ref: str) -> type[BaseModel] | None:
    name = ref.rsplit("/", 1)[-1]
    return ALL_MODELS.get(name)


def type_agrees(schema: dict[str, Any], annotation: Any) -> bool:
    """Broad agreement between a swagger property schema and a model annotation."""
    options = leaves(annotation)
    if "$ref" in schema:
        expected = ref_model(schema["$ref"])
        return expected is not None and expected in options
    kind = schema.get("type")
    if kind == "string":
        return str in options or datetime in options
    if kind == "integer":
        return int in options
    if kind == "number":
        return float in options
    if kind == "boolean":
        return bool in options
    if kind == "array":
        for option in options:
            if typing.get_origin(option) is list:
                (item,) = typing.get_args(option)
                if type_agrees(schema["items"], item):
                    return True
        return False
    if kind == "object":
        dicts = [o for o in options if typing.get_origin(o) is dict]
        if "additionalProperties" in schema:
            value_schema = schema["additionalProperties"]
            return any(
                typing.get_args(d)[0] is str and type_agrees(value_schema, typing.get_args(d)[1])
                for d in dicts
            )
        return bool(dicts)  # free-form object
    raise AssertionError(f"unhandled schema {schema}")


@pytest.mark.parametrize("definition", sorted(EXACT))
def test_field_names_match_exactly(definition: str) -> None:
    model = EXACT[definition]
    assert set(wire_fields(model)) == set(DEFINITIONS[definition]["properties"])


@pytest.mark.parametrize("definition", sorted(SUPERSET))
def test_entity_ref_covers(definition: str) -> None:
    model = SUPERSET[definition]
    assert set(DEFINITIONS[definition]["properties"]) <= set(wire_fields(model))


@pytest.mark.parametrize("definition", sorted(ALL_MODELS))
def test_field_types_agree(definition: str) -> None:
    fields = wire_fields(ALL_MODELS[definition])
    for wire_name, schema in DEFINITIONS[definition]["properties"].items():
        assert type_agrees(schema, fields[wire_name]), (definition, wire_name, schema)


@pytest.mark.parametrize("definition", sorted(ENVELOPES))
def test_envelope_shapes(definition: str) -> None:
    props = DEFINITIONS[definition]["properties"]
    envelope_fields = set(wire_fields(models.Envelope))
    assert set(props) <= envelope_fields
    assert props["meta"] == {"$ref": "#/definitions/msa.MetaInfo"}
    assert props["errors"]["items"] == {"$ref": "#/definitions/msa.APIError"}
    resource = ENVELOPES[definition]
    if resource is None:
        assert "resources" not in props
        return
    items = props["resources"]["items"]
    assert type_agrees(items, resource)
    concrete = typing.cast(type[BaseModel], models.Envelope[resource])  # type: ignore[valid-type]
    assert typing.get_args(concrete.model_fields["resources"].annotation) == (resource,)


def test_every_spec_model_definition_is_covered() -> None:
    covered = set(ALL_MODELS) | set(ENVELOPES)
    assert covered == set(DEFINITIONS)


def test_request_required_fields_are_a_subset_of_spec_properties() -> None:
    """What a request model requires is always a field the spec knows."""
    requests: dict[str, type[BaseModel]] = {
        "msa.AggregateQueryRequest": models.AggregateQuery,
        "domain.CaseCreationRequest": models.CaseCreationRequest,
        "messagecenter.CaseCreationRequestV2": models.CaseCreationRequestV2,
        "api.CaseUpdateRequest": models.CaseUpdateRequest,
        "messagecenter.ActivityCreationRequest": models.ActivityCreationRequest,
        "msa.IdsRequest": models.IdsRequest,
    }
    for definition, model in requests.items():
        required = {
            (info.serialization_alias or name) for name, info in model.model_fields.items() if info.is_required()
        }
        assert required <= set(DEFINITIONS[definition].get("required", [])), definition
