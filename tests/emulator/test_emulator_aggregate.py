"""Aggregations checked against hand-computed expectations on the c1..c6 dataset.

created_time: c1 2024-01-01T10:00Z (Mon), c2 01-03T12:00 (Wed), c3 01-10T08:00 (Wed),
c4 01-24T00:00 (Wed), c5 02-01T00:00 (Thu), c6 02-15T23:30 (Thu); keys 10..60.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from falcon_mc.emulator import Emulator

AGG = "/message-center/aggregates/cases/GET/v1"


async def run(http: httpx.AsyncClient, *queries: dict[str, Any]) -> list[dict[str, Any]]:
    reply = await http.post(AGG, json=list(queries))
    assert reply.status_code == 200, reply.text
    resources: list[dict[str, Any]] = reply.json()["resources"]
    assert [r["name"] for r in resources] == [q["name"] for q in queries]
    return resources


def counts(result: dict[str, Any]) -> list[tuple[Any, int]]:
    return [(b["label"], b["count"]) for b in result["buckets"]]


async def test_terms_default_sort(http: httpx.AsyncClient) -> None:
    (result,) = await run(http, {"name": "s", "type": "terms", "field": "case.status"})
    assert counts(result) == [
        ("closed", 2), ("open", 2), ("in_progress", 1), ("waiting_for_customer", 1)
    ]
    assert result["sum_other_doc_count"] == 0


async def test_terms_size_and_other(http: httpx.AsyncClient) -> None:
    (result,) = await run(http, {"name": "s", "type": "terms", "field": "status", "size": 2})
    assert counts(result) == [("closed", 2), ("open", 2)]
    assert result["sum_other_doc_count"] == 2


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("_count|asc", ["in_progress", "waiting_for_customer", "closed", "open"]),
        ("_term|asc", ["closed", "in_progress", "open", "waiting_for_customer"]),
        ("_term|desc", ["waiting_for_customer", "open", "in_progress", "closed"]),
    ],
)
async def test_terms_sort(http: httpx.AsyncClient, sort: str, expected: list[str]) -> None:
    (result,) = await run(http, {"name": "s", "type": "terms", "field": "status", "sort": sort})
    assert [b["label"] for b in result["buckets"]] == expected


async def test_terms_multi_valued_missing_and_min_doc_count(http: httpx.AsyncClient) -> None:
    (hosts, missing, frequent) = await run(
        http,
        {"name": "hosts", "type": "terms", "field": "hosts"},
        {"name": "missing", "type": "terms", "field": "hosts", "missing": "none"},
        {"name": "frequent", "type": "terms", "field": "hosts", "min_doc_count": 2},
    )
    assert counts(hosts) == [("WS-1", 2), ("SRV-1", 1), ("WS-2", 1), ("WS-3", 1)]
    assert counts(missing)[0:2] == [("WS-1", 2), ("none", 2)]
    assert counts(frequent) == [("WS-1", 2)]


async def test_terms_with_filter(http: httpx.AsyncClient) -> None:
    (result,) = await run(
        http, {"name": "t", "type": "terms", "field": "type", "filter": "case.status:'open'"}
    )
    assert counts(result) == [("fc:contact", 1), ("fc:detection-support", 1)]


async def test_date_histogram_weeks(http: httpx.AsyncClient) -> None:
    (result,) = await run(
        http, {"name": "w", "type": "date_histogram", "field": "created_time", "interval": "week"}
    )
    assert counts(result) == [
        ("2024-01-01T00:00:00Z", 2),
        ("2024-01-08T00:00:00Z", 1),
        ("2024-01-15T00:00:00Z", 0),
        ("2024-01-22T00:00:00Z", 1),
        ("2024-01-29T00:00:00Z", 1),
        ("2024-02-05T00:00:00Z", 0),
        ("2024-02-12T00:00:00Z", 1),
    ]
    assert all(b["key_as_string"] == b["label"] for b in result["buckets"])


async def test_date_histogram_min_doc_count_and_months(http: httpx.AsyncClient) -> None:
    weeks, months = await run(
        http,
        {"name": "w", "type": "date_histogram", "field": "created_time", "interval": "week",
         "min_doc_count": 1},
        {"name": "m", "type": "date_histogram", "field": "case.created_time",
         "interval": "month"},
    )
    assert [c for _, c in counts(weeks)] == [2, 1, 1, 1, 1]
    assert counts(months) == [("2024-01-01T00:00:00Z", 4), ("2024-02-01T00:00:00Z", 2)]


async def test_date_histogram_time_zone(http: httpx.AsyncClient) -> None:
    utc, plus2, berlin = await run(
        http,
        {"name": "utc", "type": "date_histogram", "field": "created_time", "interval": "day",
         "min_doc_count": 1, "filter": "case.id:'c6'"},
        {"name": "plus2", "type": "date_histogram", "field": "created_time", "interval": "day",
         "min_doc_count": 1, "filter": "case.id:'c6'", "time_zone": "+02:00"},
        {"name": "berlin", "type": "date_histogram", "field": "created_time", "interval": "day",
         "min_doc_count": 1, "filter": "case.id:'c6'", "time_zone": "Europe/Berlin"},
    )
    assert counts(utc) == [("2024-02-15T00:00:00Z", 1)]
    assert counts(plus2) == [("2024-02-16T00:00:00+02:00", 1)]
    assert counts(berlin) == [("2024-02-16T00:00:00+01:00", 1)]


# Europe/Berlin leaves summer time on 2024-10-27 at 01:00Z: local 02:00-03:00 happens twice.
DST_NIGHT = {
    "d1": "2024-10-26T23:10:00Z",  # 01:10 +02:00
    "d2": "2024-10-27T00:30:00Z",  # 02:30 +02:00 (first 02:00 hour)
    "d3": "2024-10-27T01:30:00Z",  # 02:30 +01:00 (second 02:00 hour)
    "d4": "2024-10-27T01:40:00Z",  # 02:40 +01:00 (second 02:00 hour)
}


@pytest.mark.parametrize("min_doc_count", [0, 1])
async def test_date_histogram_dst_fall_back_keeps_the_repeated_hour_apart(
    http: httpx.AsyncClient, emu: Emulator, min_doc_count: int
) -> None:
    for case_id, created in DST_NIGHT.items():
        emu.add_case(id=case_id, title="dst", created_time=created)
    (hours,) = await run(
        http,
        {"name": "h", "type": "date_histogram", "field": "created_time", "interval": "hour",
         "time_zone": "Europe/Berlin", "min_doc_count": min_doc_count,
         "filter": "case.id:['d1','d2','d3','d4']"},
    )
    assert counts(hours) == [
        ("2024-10-27T01:00:00+02:00", 1),
        ("2024-10-27T02:00:00+02:00", 1),
        ("2024-10-27T02:00:00+01:00", 2),
    ]
    assert sum(count for _, count in counts(hours)) == len(DST_NIGHT)


async def test_date_histogram_dst_fall_back_fills_both_hours(
    http: httpx.AsyncClient, emu: Emulator
) -> None:
    emu.add_case(id="d1", title="dst", created_time="2024-10-27T01:30:00Z")  # 02:30 +01:00
    (hours,) = await run(
        http,
        {"name": "h", "type": "date_histogram", "field": "created_time", "interval": "hour",
         "time_zone": "Europe/Berlin", "filter": "case.id:'d1'",
         "extended_bounds": {"min": "2024-10-26T23:00:00Z", "max": "2024-10-27T02:00:00Z"}},
    )
    assert counts(hours) == [
        ("2024-10-27T01:00:00+02:00", 0),
        ("2024-10-27T02:00:00+02:00", 0),
        ("2024-10-27T02:00:00+01:00", 1),
        ("2024-10-27T03:00:00+01:00", 0),
    ]


async def test_range(http: httpx.AsyncClient) -> None:
    (result,) = await run(
        http,
        {"name": "r", "type": "range", "field": "key",
         "ranges": [{"From": 0, "To": 25}, {"From": 25, "To": 100}, {"From": 45.5}]},
    )
    assert counts(result) == [("0-25", 2), ("25-100", 4), ("45.5-*", 2)]
    first = result["buckets"][0]
    assert (first["from"], first["to"]) == (0, 25)


async def test_date_range(http: httpx.AsyncClient) -> None:
    (result,) = await run(
        http,
        {"name": "d", "type": "date_range", "field": "created_time",
         "date_ranges": [{"from": "2024-01-01T00:00:00Z", "to": "2024-01-15T00:00:00Z"},
                         {"from": "2024-01-15T00:00:00Z"}]},
    )
    assert [b["count"] for b in result["buckets"]] == [3, 3]
    first = result["buckets"][0]
    assert first["from"] == 1704067200000
    assert first["to"] == 1705276800000
    assert first["string_from"] == "2024-01-01T00:00:00.000Z"
    assert first["string_to"] == "2024-01-15T00:00:00.000Z"
    assert "to" not in result["buckets"][1]


async def test_nested_sub_aggregates(http: httpx.AsyncClient) -> None:
    (result,) = await run(
        http,
        {"name": "s", "type": "terms", "field": "status", "size": 2,
         "sub_aggregates": [
             {"name": "t", "type": "terms", "field": "type",
              "sub_aggregates": [
                  {"name": "m", "type": "date_histogram", "field": "created_time",
                   "interval": "month",
                   "sub_aggregates": [{"name": "n", "type": "cardinality", "field": "id"}]}
              ]}
         ]},
    )
    closed = result["buckets"][0]
    assert closed["label"] == "closed"
    (types,) = closed["sub_aggregates"]
    assert counts(types) == [("fc:contact", 1), ("fc:falcon-product-support", 1)]
    (months,) = types["buckets"][0]["sub_aggregates"]
    assert counts(months) == [("2024-02-01T00:00:00Z", 1)]
    (cardinality,) = months["buckets"][0]["sub_aggregates"]
    assert cardinality["buckets"][0]["value"] == 1


async def test_metrics(http: httpx.AsyncClient) -> None:
    card, first, last, avg, total, pct = await run(
        http,
        {"name": "card", "type": "cardinality", "field": "status"},
        {"name": "first", "type": "min", "field": "created_time"},
        {"name": "last", "type": "max", "field": "created_time"},
        {"name": "avg", "type": "avg", "field": "key"},
        {"name": "sum", "type": "sum", "field": "key"},
        {"name": "pct", "type": "percentiles", "field": "key", "percents": [50]},
    )
    assert card["buckets"][0]["value"] == 4
    assert first["buckets"][0]["value"] == 1704103200000
    assert first["buckets"][0]["value_as_string"] == "2024-01-01T10:00:00.000Z"
    assert last["buckets"][0]["value_as_string"] == "2024-02-15T23:30:00.000Z"
    assert avg["buckets"][0]["value"] == 35
    assert total["buckets"][0]["value"] == 210
    assert pct["buckets"] == [{"label": "50", "count": 6, "value": 35}]


async def test_single_object_body_is_accepted(http: httpx.AsyncClient) -> None:
    reply = await http.post(AGG, json={"name": "s", "type": "terms", "field": "status"})
    assert reply.status_code == 200


def nest(depth: int) -> dict[str, Any]:
    query: dict[str, Any] = {"name": "leaf", "type": "terms", "field": "status"}
    for level in range(depth):
        query = {"name": f"l{level}", "type": "terms", "field": "type", "sub_aggregates": [query]}
    return query


async def test_depth_limit(http: httpx.AsyncClient) -> None:
    assert (await http.post(AGG, json=[nest(3)])).status_code == 200
    reply = await http.post(AGG, json=[nest(4)])
    assert reply.status_code == 400
    assert "sub_aggregates" in reply.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    "query",
    [
        {"type": "terms", "field": "status"},
        {"name": "x", "field": "status"},
        {"name": "x", "type": "terms"},
        {"name": "x", "type": "bogus", "field": "status"},
        {"name": "x", "type": "terms", "field": "nope"},
        {"name": "x", "type": "terms", "field": "status", "sort": "sideways"},
        {"name": "x", "type": "terms", "field": "status", "filter": "case.status:'x"},
        {"name": "x", "type": "terms", "field": "status", "size": "ten"},
        {"name": "x", "type": "date_histogram", "field": "created_time", "interval": "fortnight"},
        {"name": "x", "type": "date_histogram", "field": "created_time", "interval": "day",
         "time_zone": "Mars/Olympus"},
        {"name": "x", "type": "date_histogram", "field": "created_time", "interval": "minute"},
        {"name": "x", "type": "range", "field": "key"},
        {"name": "x", "type": "range", "field": "key", "ranges": [{"From": "a"}]},
        {"name": "x", "type": "date_range", "field": "created_time"},
        {"name": "x", "type": "date_range", "field": "created_time",
         "date_ranges": [{"from": "yesterday-ish"}]},
    ],
    ids=str,
)
async def test_bad_queries_are_400(http: httpx.AsyncClient, query: dict[str, Any]) -> None:
    reply = await http.post(AGG, json=[query])
    assert reply.status_code == 400, reply.text
    assert reply.json()["errors"][0]["code"] == 400


@pytest.mark.parametrize("body", [b"[]", b"3", b"nope"])
async def test_bad_bodies_are_400(http: httpx.AsyncClient, body: bytes) -> None:
    reply = await http.post(AGG, content=body, headers={"Content-Type": "application/json"})
    assert reply.status_code == 400
