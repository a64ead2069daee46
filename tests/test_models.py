"""Wire models: parsing realistic replies, tolerance, strictness, request bodies, rate limits."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from falcon_mc import models
from falcon_mc._exceptions import InvalidArgumentError
from falcon_mc.models import (
    ActivityCreationRequest,
    AffectedEntity,
    AggregateQuery,
    AggregationResult,
    Attachment,
    Bucket,
    Case,
    CaseActivity,
    CaseCreationRequest,
    CaseCreationRequestV2,
    CaseUpdateRequest,
    DateRange,
    EntityRef,
    Envelope,
    ExtendedBounds,
    FiltersSpec,
    Hits,
    IdPage,
    IdsRequest,
    Meta,
    Pagination,
    Range,
    RateLimit,
    User,
    parse_retry_after,
    validate_aggregate_depth,
)

AUTHOR: dict[str, Any] = {
    "uid": "jane@example.com",
    "uuid": "5d7c6f0e-1111-2222-3333-444455556666",
    "display_name": "Jane Doe",
    "first_name": "Jane",
    "last_name": "Doe",
    "email_address": "jane@example.com",
}

CASE: dict[str, Any] = {
    "id": "c-0001",
    "cid": "0123456789abcdef0123456789abcdef",
    "key": "FC-1234",
    "title": "Support | Suspicious PowerShell",
    "body": "Please review the detection.",
    "status": "1",
    "type": "fc:detection-support",
    "case_type": "fc:detection-support",
    "assigner": AUTHOR,
    "aids": ["aid1", "aid2"],
    "hosts": ["host-a"],
    "ip_addresses": ["10.0.0.1"],
    "attachments": [
        {
            "id": "att-1",
            "name": "evidence.png",
            "mime_type": "image/png",
            "size": 2048,
            "created_by": "jane@example.com",
            "created_time": "2024-05-01T12:00:00Z",
        }
    ],
    "detections": [{"id": "ldt:0123456789abcdef0123456789abcdef:42", "url": "https://falcon/d/42"}],
    "incidents": [],
    "malware_submission_id": "",
    "malware_submission_url": "",
    "recon_rule_type": "",
    "rfi_id": "",
    "created_time": "2024-05-01T12:00:00Z",
    "last_modified_time": "2021-05-15T14:55:21.892315096Z",
}

ACTIVITY: dict[str, Any] = {
    "id": "act-1",
    "case_id": "c-0001",
    "cid": "0123456789abcdef0123456789abcdef",
    "type": "comment",
    "body": "Any news?",
    "created_by": AUTHOR,
    "created_time": "2024-05-02T08:30:00.123Z",
    "last_modified_time": None,
    "modified_by": None,
}

META: dict[str, Any] = {
    "query_time": 0.0123,
    "powered_by": "messagecenter-api",
    "trace_id": "trace-abc",
}


def envelope(resources: Any, **meta: Any) -> bytes:
    return json.dumps({"meta": {**META, **meta}, "resources": resources, "errors": []}).encode()


# --------------------------------------------------------------------------- replies


def test_cases_reply_parses() -> None:
    env = TypeAdapter(Envelope[Case]).validate_json(envelope([CASE]))
    assert env.trace_id == "trace-abc"
    assert env.meta.query_time == pytest.approx(0.0123)
    case = env.resources[0]
    assert case.id == "c-0001"
    assert case.status == "1"
    assert case.assigner is not None
    assert case.assigner.display_name == "Jane Doe"
    assert case.attachments[0].size == 2048
    assert case.attachments[0].created_time == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert case.detections[0].id == "ldt:0123456789abcdef0123456789abcdef:42"
    assert case.detections[0].product is None
    assert case.last_modified_time == datetime(2021, 5, 15, 14, 55, 21, 892315, tzinfo=UTC)


def test_activity_reply_parses() -> None:
    env = TypeAdapter(Envelope[CaseActivity]).validate_json(envelope([ACTIVITY]))
    act = env.resources[0]
    assert act.type == "comment"
    assert act.created_by == User.model_validate(AUTHOR)
    assert act.created_time == datetime(2024, 5, 2, 8, 30, 0, 123000, tzinfo=UTC)
    assert act.last_modified_time is None
    assert act.modified_by is None


def test_query_reply_and_id_page() -> None:
    raw = envelope(["c-1", "c-2"], pagination={"offset": 10, "limit": 2, "total": 13})
    env = TypeAdapter(Envelope[str]).validate_json(raw)
    page = IdPage.from_envelope(env)
    assert page.ids == ["c-1", "c-2"]
    assert (page.offset, page.limit, page.total) == (10, 2, 13)
    assert page.meta.trace_id == "trace-abc"
    assert page.next_offset == 12


@pytest.mark.parametrize(
    ("ids", "offset", "total", "expected"),
    [
        (["a"], 12, 13, None),
        (["a", "b"], 0, 2, None),
        ([], 0, 100, None),
        (["a", "b"], 0, None, 2),
        (["a", "b"], 4, 10, 6),
    ],
)
def test_id_page_next_offset(
    ids: list[str], offset: int, total: int | None, expected: int | None
) -> None:
    assert IdPage(ids=ids, offset=offset, total=total).next_offset == expected


def test_id_page_without_pagination() -> None:
    page = IdPage.from_envelope(Envelope[str](resources=["x"]))
    assert (page.offset, page.limit, page.total, page.next_offset) == (0, None, None, 1)


def test_write_reply_parses() -> None:
    raw = json.dumps(
        {
            "meta": {**META, "writes": {"resources_affected": 1}},
            "resources": [{"id": "c-9", "path": "/message-center/entities/cases/v1?ids=c-9"}],
            "errors": None,
        }
    ).encode()
    env = TypeAdapter(Envelope[AffectedEntity]).validate_json(raw)
    path = "/message-center/entities/cases/v1?ids=c-9"
    assert env.resources == [AffectedEntity(id="c-9", path=path)]
    assert env.meta.writes is not None
    assert env.meta.writes.resources_affected == 1
    assert env.errors == []


def test_meta_only_reply() -> None:
    raw = b'{"meta": {"query_time": 0.1, "trace_id": "t"}, "errors": []}'
    env = TypeAdapter(Envelope[None]).validate_json(raw)
    assert env.resources == []
    assert env.trace_id == "t"
    assert TypeAdapter(Envelope[None]).validate_json(b"{}").meta == Meta()


def test_errors_and_nulls() -> None:
    raw = json.dumps(
        {
            "meta": None,
            "resources": None,
            "errors": [{"code": 404, "message": "case not found", "id": "c-x"}, {"code": 400}],
        }
    ).encode()
    env = TypeAdapter(Envelope[Case]).validate_json(raw)
    assert env.resources == []
    assert env.meta == Meta()
    assert env.errors[0].code == 404
    assert env.errors[0].id == "c-x"
    assert env.errors[1].message is None


def test_upload_reply_parses() -> None:
    env = TypeAdapter(Envelope[Attachment]).validate_json(envelope(CASE["attachments"]))
    assert env.resources[0].name == "evidence.png"
    assert env.resources[0].created_by == "jane@example.com"


def test_missing_fields_parse() -> None:
    case = Case.model_validate({})
    assert case.id is None
    assert case.aids == []
    assert case.attachments == []
    assert case.created_time is None
    assert CaseActivity.model_validate({}).created_by is None
    assert Attachment.model_validate({}).size is None
    assert Bucket.model_validate({}).sub_aggregates == []
    assert AggregationResult.model_validate({}).buckets == []
    assert Pagination.model_validate({}).total is None
    assert EntityRef.model_validate({}).id is None


def test_null_lists_read_as_empty() -> None:
    case = Case.model_validate(
        {"aids": None, "hosts": None, "detections": None, "attachments": None, "title": None}
    )
    assert (case.aids, case.hosts, case.detections, case.attachments) == ([], [], [], [])
    assert case.title is None


def test_empty_timestamp_is_none() -> None:
    assert CaseActivity.model_validate({"last_modified_time": ""}).last_modified_time is None


@pytest.mark.parametrize(
    ("model", "payload"),
    [
        (Case, {"title": ["a"]}),
        (Case, {"title": {"a": 1}}),
        (Case, {"aids": "aid1"}),
        (Case, {"assigner": "Jane"}),
        (Case, {"created_time": "yesterday"}),
        (Case, {"detections": ["ldt:1"]}),
        (Attachment, {"size": "big"}),
        (Attachment, {"size": 1.5}),
        (CaseActivity, {"created_by": ["x"]}),
        (models.ErrorDetail, {"code": "oops"}),
        (Pagination, {"total": "many"}),
        (Bucket, {"label": ["a"]}),
        (Bucket, {"count": "n"}),
        (Hits, {"Hits": "x"}),
    ],
)
def test_wrong_types_fail(model: type[BaseModel], payload: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(payload)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"resources": "x"}',
        b'{"resources": [{"title": ["a"]}]}',
        b'{"errors": {"code": 1}}',
        b'{"meta": "m"}',
        b'{"meta": {"pagination": {"offset": "zero"}}}',
        b'{"resources": [{"attachments": [{"size": "big"}]}]}',
    ],
)
def test_wrong_types_fail_in_envelope(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Envelope[Case]).validate_json(raw)


def test_lax_int_from_numeric_string_is_accepted() -> None:
    assert Attachment.model_validate({"size": "5"}).size == 5


def test_unknown_fields_round_trip() -> None:
    wire = {**CASE, "priority": "high", "assigner": {**AUTHOR, "team": "x"}}
    wire["detections"] = [{"id": "d", "url": "u", "severity": 5}]
    case = Case.model_validate(wire)
    dumped = case.model_dump(by_alias=True, mode="json")
    assert dumped["priority"] == "high"
    assert dumped["assigner"]["team"] == "x"
    assert dumped["detections"][0] == {"id": "d", "url": "u", "product": None, "severity": 5}
    # timestamps come back as RFC 3339 (nanoseconds truncated to microseconds)
    assert dumped["created_time"] == "2024-05-01T12:00:00Z"
    assert dumped["last_modified_time"] == "2021-05-15T14:55:21.892315Z"
    again = Case.model_validate(dumped)
    assert again == case


def test_envelope_round_trip_keeps_unknown_keys() -> None:
    raw = b'{"meta": {"trace_id": "t", "x": 1}, "resources": [], "errors": [], "extra": true}'
    env = TypeAdapter(Envelope[Case]).validate_json(raw)
    dumped = env.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert dumped == {
        "meta": {"trace_id": "t", "x": 1},
        "resources": [],
        "errors": [],
        "extra": True,
    }


SECOND = (2021, 5, 15, 14, 55, 21)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2021-05-15T14:55:21.892315096Z", datetime(*SECOND, 892315, tzinfo=UTC)),
        ("2021-05-15T14:55:21.1234567+00:00", datetime(*SECOND, 123456, tzinfo=UTC)),
        ("2021-05-15T14:55:21.5Z", datetime(*SECOND, 500000, tzinfo=UTC)),
        ("2021-05-15T16:55:21.000000001+02:00", datetime(*SECOND, tzinfo=UTC)),
    ],
)
def test_timestamps(text: str, expected: datetime) -> None:
    assert Attachment.model_validate({"created_time": text}).created_time == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T11:00:00.123456", datetime(2024, 5, 1, 11, 0, 0, 123456, tzinfo=UTC)),
        ("2021-05-15T14:55:21.892315096", datetime(*SECOND, 892315, tzinfo=UTC)),
        ("2024-05-02", datetime(2024, 5, 2, tzinfo=UTC)),
        ("2024-05-02T08:00:00", datetime(2024, 5, 2, 8, tzinfo=UTC)),
    ],
)
def test_timestamps_without_an_offset_read_as_utc(text: str, expected: datetime) -> None:
    """They were naive datetimes (the docs promise aware ones): comparing one with an aware
    datetime, or sorting a mix, raised TypeError."""
    raw = envelope([{"id": "a", "created_time": "2000-01-01T00:00:00Z"},
                    {"id": "b", "created_time": text}])
    first, second = TypeAdapter(Envelope[Case]).validate_json(raw).resources
    assert second.created_time is not None and second.created_time.utcoffset() is not None
    assert second.created_time == expected
    assert first.created_time is not None and first.created_time < second.created_time
    from_python = CaseActivity.model_validate({"created_time": expected.replace(tzinfo=None)})
    assert from_python.created_time == expected and from_python.created_time.tzinfo is not None


def test_timestamps_keep_their_offset() -> None:
    time = Attachment.model_validate({"created_time": "2024-05-01T12:00:00+02:00"}).created_time
    assert time is not None and time.utcoffset() is not None
    assert time.utcoffset().total_seconds() == 7200  # type: ignore[union-attr]
    assert time == datetime(2024, 5, 1, 10, tzinfo=UTC)


def test_aggregation_reply_nested() -> None:
    raw = envelope(
        [
            {
                "name": "by_status",
                "doc_count_error_upper_bound": 0,
                "sum_other_doc_count": 0,
                "buckets": [
                    {
                        "label": "1",
                        "count": 7,
                        "sub_aggregates": [
                            {
                                "name": "by_type",
                                "buckets": [
                                    {"label": {"type": "fc:contact"}, "count": 3},
                                    {"label": "fc:detection-support", "count": 4},
                                ],
                            }
                        ],
                    },
                    {
                        "label": "last week",
                        "count": 2,
                        "from": 1714521600000,
                        "to": 1715126400000,
                        "string_from": "2024-05-01T00:00:00.000Z",
                        "string_to": "2024-05-08T00:00:00.000Z",
                        "key_as_string": "2024-05-01",
                        "value": 2.5,
                        "value_as_string": "2.5",
                    },
                ],
                "hits": {"Hits": [{"ID": "c-1", "Score": 1.5, "Source": "{}"}], "MaxScore": 1.5},
            }
        ]
    )
    env = TypeAdapter(Envelope[AggregationResult]).validate_json(raw)
    result = env.resources[0]
    assert result.name == "by_status"
    first, second = result.buckets
    assert first.label == "1"
    assert first.count == 7
    nested = first.sub_aggregates[0]
    assert nested.name == "by_type"
    assert nested.buckets[0].label == {"type": "fc:contact"}
    assert nested.buckets[1].label == "fc:detection-support"
    assert second.from_ == 1714521600000.0
    assert second.to == 1715126400000.0
    assert second.value == 2.5
    assert result.hits is not None
    assert result.hits.max_score == 1.5
    assert result.hits.hits[0].id == "c-1"
    assert result.hits.hits[0].score == 1.5
    dumped = result.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert dumped["buckets"][1]["from"] == 1714521600000.0
    hits = {"Hits": [{"ID": "c-1", "Score": 1.5, "Source": "{}"}], "MaxScore": 1.5}
    assert dumped["hits"] == hits


def test_many_cases_parse_in_order() -> None:
    raw = envelope([{**CASE, "id": f"c-{i}"} for i in range(500)])
    env = TypeAdapter(Envelope[Case]).validate_json(raw)
    assert [case.id for case in env.resources] == [f"c-{i}" for i in range(500)]
    assert {case.assigner.uid for case in env.resources if case.assigner} == {AUTHOR["uid"]}


# --------------------------------------------------------------------------- requests


def wire(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


def test_aggregate_query_sends_only_what_was_set() -> None:
    query = AggregateQuery(field="case.status", name="by_status", type="terms", size=10)
    assert wire(query) == {"field": "case.status", "name": "by_status", "type": "terms", "size": 10}


def test_aggregate_query_full() -> None:
    query = AggregateQuery(
        field="case.created_time",
        name="created",
        type="date_range",
        date_ranges=[
            DateRange(from_="now-7d", to="now"),
            DateRange(from_=datetime(2024, 5, 1, tzinfo=UTC), to=datetime(2024, 5, 2, 3, 4, 5)),
        ],
        ranges=[Range(from_=0, to=10), Range(to=5.5)],
        extended_bounds=ExtendedBounds(min="now-30d", max="now"),
        filters_spec=FiltersSpec(filters={"open": "case.status:'1'"}, other_bucket=True),
        from_=0,
        min_doc_count=0,
        percents=[50, 99.5],
        sort="_count|desc",
        time_zone="UTC",
        sub_aggregates=[AggregateQuery(field="case.type", name="types", type="terms")],
    )
    assert wire(query) == {
        "field": "case.created_time",
        "name": "created",
        "type": "date_range",
        "date_ranges": [
            {"from": "now-7d", "to": "now"},
            {"from": "2024-05-01T00:00:00Z", "to": "2024-05-02T03:04:05Z"},
        ],
        "ranges": [{"From": 0, "To": 10}, {"To": 5.5}],
        "extended_bounds": {"min": "now-30d", "max": "now"},
        "filters_spec": {"filters": {"open": "case.status:'1'"}, "other_bucket": True},
        "from": 0,
        "min_doc_count": 0,
        "percents": [50, 99.5],
        "sort": "_count|desc",
        "time_zone": "UTC",
        "sub_aggregates": [{"field": "case.type", "name": "types", "type": "terms"}],
    }


def test_aggregate_query_from_dicts() -> None:
    query = AggregateQuery.model_validate(
        {
            "field": "f",
            "name": "n",
            "type": "range",
            "ranges": [{"From": 1, "To": 2}],
            "date_ranges": [{"from": "now-1d", "to": "now"}],
            "from": 5,
            "custom": "kept",
        }
    )
    assert query.ranges == [Range(from_=1, to=2)]
    assert query.date_ranges == [DateRange(from_="now-1d", to="now")]
    assert query.from_ == 5
    assert wire(query)["custom"] == "kept"


def test_date_range_offset_datetime_is_sent_in_utc() -> None:
    from datetime import timedelta, timezone

    dt = datetime(2024, 5, 1, 2, 0, 0, 250000, tzinfo=timezone(timedelta(hours=2)))
    expected = {"from": "2024-05-01T00:00:00.250000Z", "to": "now"}
    assert wire(DateRange(from_=dt, to="now")) == expected


@pytest.mark.parametrize(
    "given", [{"from": 10, "to": 20}, {"From": 10, "To": 20}, {"from_": 10, "to": 20}]
)
def test_range_reads_every_spelling_of_its_bounds(given: dict[str, Any]) -> None:
    rng = Range.model_validate(given)
    assert (rng.from_, rng.to) == (10.0, 20.0)
    assert rng.model_extra == {}
    assert wire(rng) == {"From": 10.0, "To": 20.0}


def test_range_lower_case_dict_inside_a_query_keeps_its_lower_bound() -> None:
    query = AggregateQuery.model_validate(
        {"field": "case.key", "name": "k", "type": "range", "ranges": [{"from": 10, "to": 20}]}
    )
    assert wire(query)["ranges"] == [{"From": 10.0, "To": 20.0}]


def test_date_range_date_is_sent_as_midnight_utc() -> None:
    from datetime import date

    sent = wire(DateRange(from_=date(2024, 5, 1), to=date(2024, 6, 1)))
    assert sent == {"from": "2024-05-01T00:00:00Z", "to": "2024-06-01T00:00:00Z"}


def test_date_range_converts_values_assigned_after_construction() -> None:
    from datetime import date, timedelta, timezone

    rng = DateRange(from_="now-1d", to="now")
    rng.from_ = datetime(2024, 5, 1)
    assert wire(rng) == {"from": "2024-05-01T00:00:00Z", "to": "now"}
    rng.from_ = datetime(2024, 5, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    rng.to = date(2024, 5, 2)
    assert wire(rng) == {"from": "2024-05-01T00:00:00Z", "to": "2024-05-02T00:00:00Z"}
    assert rng.model_dump(by_alias=True)["from"] == "2024-05-01T00:00:00Z"  # python mode too


def test_date_range_strings_are_sent_as_given() -> None:
    rng = DateRange.model_validate({"from": "2024-05-01", "to": "now-1d/d"})
    assert wire(rng) == {"from": "2024-05-01", "to": "now-1d/d"}


def test_aggregate_query_requires_field_name_type() -> None:
    with pytest.raises(ValidationError):
        AggregateQuery.model_validate({"field": "f", "name": "n"})


def nested(depth: int) -> AggregateQuery:
    query = AggregateQuery(field="f", name=f"n{depth}", type="terms")
    for level in range(depth):
        query = AggregateQuery(field="f", name=f"l{level}", type="terms", sub_aggregates=[query])
    return query


def test_aggregate_depth() -> None:
    assert nested(0).nesting_depth() == 0
    assert nested(3).nesting_depth() == 3
    validate_aggregate_depth(nested(3))
    with pytest.raises(InvalidArgumentError) as info:
        validate_aggregate_depth(nested(4))
    assert info.value.argument == "queries"
    assert isinstance(info.value, ValueError)
    validate_aggregate_depth(nested(1), max_depth=1)
    as_dict = wire(nested(4))
    with pytest.raises(InvalidArgumentError):
        validate_aggregate_depth(as_dict)
    validate_aggregate_depth(wire(nested(2)))


def test_case_creation_v1() -> None:
    req = CaseCreationRequest(
        body="Please look",
        title="Help",
        type="fc:detection-support",
        user_uuid="u-1",
        detections=[EntityRef(id="ldt:1", url="")],
    )
    assert wire(req) == {
        "body": "Please look",
        "title": "Help",
        "type": "fc:detection-support",
        "user_uuid": "u-1",
        "detections": [{"id": "ldt:1", "url": ""}],
        "incidents": [],
    }
    with pytest.raises(ValidationError):
        CaseCreationRequest.model_validate({"body": "b", "title": "t", "type": "fc:contact"})


def test_case_creation_v2() -> None:
    req = CaseCreationRequestV2(body="b", title="t", type="fc:contact")
    assert wire(req) == {
        "body": "b",
        "title": "t",
        "type": "fc:contact",
        "detections": [],
        "incidents": [],
    }
    req = CaseCreationRequestV2.model_validate(
        {
            "body": "b",
            "title": "t",
            "type": "fc:detection-support",
            "user_uuid": "u",
            "detections": [{"id": "d", "url": "", "product": "epp"}],
        }
    )
    assert wire(req)["detections"] == [{"id": "d", "url": "", "product": "epp"}]
    assert wire(req)["user_uuid"] == "u"


@pytest.mark.parametrize("model", [CaseCreationRequest, CaseCreationRequestV2, CaseUpdateRequest])
@pytest.mark.parametrize("ref", [{"url": "https://falcon/d/1"}, {"id": None}, {"id": ""}])
def test_request_references_need_an_id_reply_references_do_not(
    model: type[BaseModel], ref: dict[str, object]
) -> None:
    """A reference without an id was sent (the API answers 400); replies keep accepting it."""
    request = {"id": "c-1", "body": "b", "title": "t", "type": "fc:contact", "user_uuid": "u"}
    for key in ("detections", "incidents"):
        with pytest.raises(ValidationError, match="a reference needs an 'id'"):
            model.model_validate({**request, key: [ref]})
        assert getattr(Case.model_validate({key: [ref]}), key)[0].url == ref.get("url")
    assert model.model_validate({**request, "detections": [EntityRef(id="ldt:1")]})


def test_case_update() -> None:
    # only what is given: an update of the body must not send (and so clear) the lists
    assert wire(CaseUpdateRequest(id="c-1", body="more")) == {"id": "c-1", "body": "more"}
    assert wire(CaseUpdateRequest(id="c-1", incidents=[])) == {"id": "c-1", "incidents": []}


def test_activity_creation() -> None:
    req = ActivityCreationRequest(body="hi", case_id="c-1", user_uuid="u")
    assert wire(req) == {"body": "hi", "case_id": "c-1", "user_uuid": "u", "type": "comment"}
    with pytest.raises(ValidationError):
        ActivityCreationRequest.model_validate({"body": "hi", "case_id": "c-1"})


def test_ids_request() -> None:
    assert wire(IdsRequest(ids=["a", "b"])) == {"ids": ["a", "b"]}
    with pytest.raises(ValidationError):
        IdsRequest.model_validate({"ids": "a"})


@pytest.mark.parametrize("number", [float("inf"), float("-inf"), float("nan")])
def test_request_numbers_are_finite(number: float) -> None:
    """JSON has no NaN or infinity (they went on the wire as bare ``Infinity``/``NaN``)."""
    with pytest.raises(ValidationError, match="finite number"):
        Range(from_=0, to=number)
    with pytest.raises(ValidationError, match="finite number"):
        Range.model_validate({"From": number})
    with pytest.raises(ValidationError, match="finite number"):
        AggregateQuery(field="f", name="n", type="percentiles", percents=[50, number])
    assert wire(Range(from_=0, to=1e300)) == {"From": 0, "To": 1e300}


def test_request_wrong_types_fail() -> None:
    with pytest.raises(ValidationError):
        CaseCreationRequestV2.model_validate({"body": ["b"], "title": "t", "type": "x"})
    with pytest.raises(ValidationError):
        FiltersSpec.model_validate({"filters": ["x"]})


# --------------------------------------------------------------------------- rate limits

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-RateLimit-RetryAfter": str(int((NOW + 2.5) * 1000))}, 2.5),  # ms epoch (spec)
        ({"X-RateLimit-RetryAfter": str(int(NOW + 3))}, 3.0),  # s epoch (other clients)
        ({"X-RateLimit-RetryAfter": "7"}, 7.0),  # plain seconds
        ({"x-ratelimit-retryafter": "0.5"}, 0.5),  # case-insensitive
        ({"X-RateLimit-RetryAfter": str(int((NOW - 10) * 1000))}, None),  # past: no hint
        ({"X-RateLimit-RetryAfter": str(int(NOW - 10))}, None),
        ({"X-RateLimit-RetryAfter": "-4"}, None),
        ({"Retry-After": "4"}, 4.0),
        ({"Retry-After": "Tue, 14 Nov 2023 22:13:25 GMT"}, 5.0),  # HTTP date, NOW + 5
        ({"Retry-After": "Tue, 14 Nov 2020 22:13:25 GMT"}, None),
        ({"X-RateLimit-RetryAfter": "soon", "Retry-After": "2"}, 2.0),
        ({"X-RateLimit-RetryAfter": "soon"}, None),
        ({"Retry-After": "whenever"}, None),
        ({}, None),
        ({"X-RateLimit-Limit": "6000"}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    result = parse_retry_after(headers, NOW)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected, abs=1e-3)


def test_parse_retry_after_defaults_to_now() -> None:
    result = parse_retry_after({"X-RateLimit-RetryAfter": str(int((time.time() + 60) * 1000))})
    assert result is not None
    assert 55 < result <= 60


def test_rate_limit_from_headers() -> None:
    headers = {
        "X-RateLimit-Limit": "6000",
        "X-RateLimit-Remaining": "5999",
        "X-CS-TRACEID": "t",
    }
    rl = RateLimit.from_headers(headers, now_epoch=NOW, now_monotonic=42.0)
    assert rl == RateLimit(limit=6000, remaining=5999, retry_after=None, observed_at=42.0)
    with pytest.raises(ValidationError):
        rl.limit = 1  # type: ignore[misc]


def test_rate_limit_429() -> None:
    headers = {
        "x-ratelimit-limit": "10",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-retryafter": str(int((NOW + 1.5) * 1000)),
    }
    rl = RateLimit.from_headers(headers, now_epoch=NOW, now_monotonic=1.0)
    assert rl is not None
    assert (rl.limit, rl.remaining) == (10, 0)
    assert rl.retry_after == pytest.approx(1.5)


def test_rate_limit_absent() -> None:
    assert RateLimit.from_headers({"Content-Type": "application/json"}) is None
    assert RateLimit.from_headers({"Retry-After": "3"}) is None


def test_rate_limit_garbage_values_and_default_clock() -> None:
    before = time.monotonic()
    rl = RateLimit.from_headers({"X-RateLimit-Limit": "lots", "X-RateLimit-Remaining": ""})
    assert rl is not None
    assert rl.limit is None
    assert rl.remaining is None
    assert before <= rl.observed_at <= time.monotonic()


def test_rate_limit_accepts_httpx_headers() -> None:
    import httpx

    headers = httpx.Headers({"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "3"})
    rl = RateLimit.from_headers(headers, now_monotonic=0.0)
    assert rl is not None
    assert (rl.limit, rl.remaining) == (100, 3)


def test_all_is_sorted_and_exported() -> None:
    assert models.__all__ == sorted(models.__all__)
    for name in models.__all__:
        obj = getattr(models, name)
        assert obj.__doc__
        assert "Example" in obj.__doc__, name
