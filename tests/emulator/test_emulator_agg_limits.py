"""AggregateCases at the edges: time metrics whose value is no instant (a sum of instants, a
stored time outside the years 1-9999), dates in requests beyond those years, JSON numbers that
overflow a float64, and ``time_zone`` checked on every aggregation type.

Each is a 200 or a 400 envelope, never a 500 with a logged traceback.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from falcon_mc.emulator import Emulator
from falcon_mc.emulator._util import parse_time

from .helpers import BASE

AGG = "/message-center/aggregates/cases/GET/v1"
JSON = {"Content-Type": "application/json"}
TIME = "case.created_time"


@pytest.fixture(autouse=True)
def no_emulator_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test in which the emulator logged an error (a 500's traceback)."""
    with caplog.at_level(logging.ERROR, logger="falcon_mc.emulator"):
        yield
    assert not caplog.records, [r.getMessage() for r in caplog.records]


async def post(http: httpx.AsyncClient, *queries: dict[str, Any]) -> httpx.Response:
    """POST ``queries`` to AggregateCases."""
    return await http.post(AGG, json=list(queries))


def ok(reply: httpx.Response) -> list[dict[str, Any]]:
    """The ``resources`` of a 200 reply."""
    assert reply.status_code == 200, reply.text
    resources: list[dict[str, Any]] = reply.json()["resources"]
    return resources


def assert_400(reply: httpx.Response, fragment: str) -> None:
    """``reply`` is the emulator's 400 envelope, its message containing ``fragment``."""
    assert reply.status_code == 400, reply.text
    body = reply.json()
    assert body["meta"]["trace_id"]
    [err] = body["errors"]
    assert err["code"] == 400
    assert fragment in err["message"], err["message"]


def ms(text: str) -> float:
    """An RFC 3339 time as epoch milliseconds, as the emulator computes it."""
    return parse_time(text) * 1000.0


def metric(kind: str, **extra: Any) -> dict[str, Any]:
    """A metric query named ``kind`` on ``case.created_time``."""
    return {"name": kind, "type": kind, "field": TIME, **extra}


async def client_for(emu: Emulator) -> httpx.AsyncClient:
    """An authorised in-process client of ``emu`` (the caller closes it)."""
    headers = {"Authorization": f"Bearer {emu.issue_token()}"}
    return httpx.AsyncClient(transport=emu.transport(), base_url=BASE, headers=headers)


# 1. time metrics ------------------------------------------------------------------------------
async def test_sum_of_times_over_seeded_cases_is_a_value_without_string() -> None:
    """The reported repro: 500 seeded cases sum to an epoch-ms value past the year 9999."""
    emu = Emulator.seeded(n_cases=500, seed=7)
    async with await client_for(emu) as http:
        [result] = ok(await post(http, metric("sum")))
    [bucket] = result["buckets"]
    expected = math.fsum(ms(case["created_time"]) for case in emu.cases.values())
    assert bucket == {"label": "created_time", "count": 500, "value": expected}


async def test_sum_of_times_never_has_value_as_string(http: httpx.AsyncClient) -> None:
    """Even a sum small enough to read as a date is no instant: ``value`` only."""
    [result] = ok(await post(http, metric("sum")))
    [bucket] = result["buckets"]
    assert "value_as_string" not in bucket
    assert bucket["count"] == 6 and bucket["value"] > 0


async def test_sum_of_two_far_future_times(emu: Emulator, http: httpx.AsyncClient) -> None:
    emu.add_case(created_time="9000-01-01T00:00:00Z")
    emu.add_case(created_time="9000-01-01T00:00:00Z")
    [result] = ok(await post(http, metric("sum", filter="case.created_time:>'8000-01-01'")))
    assert result["buckets"] == [
        {"label": "created_time", "count": 2, "value": 2 * ms("9000-01-01T00:00:00Z")}
    ]


async def test_time_metrics_outside_years_1_to_9999_have_no_string(
    emu: Emulator, http: httpx.AsyncClient
) -> None:
    """Stored times whose UTC instant is in year 0 or 10000: the values, no strings."""
    emu.add_case(id="early", created_time="0001-01-01T00:30:00+01:00")
    emu.add_case(id="late", created_time="9999-12-31T23:30:00-01:00")
    percentiles = metric("percentiles", percents=[0, 50, 100])
    results = ok(await post(http, metric("min"), metric("max"), percentiles))
    by_name = {r["name"]: r["buckets"] for r in results}
    [low] = by_name["min"]
    [high] = by_name["max"]
    assert low["value"] == ms("0001-01-01T00:30:00+01:00") and "value_as_string" not in low
    assert high["value"] == ms("9999-12-31T23:30:00-01:00") and "value_as_string" not in high
    assert [b.get("value_as_string") for b in by_name["percentiles"]] == [
        None, "2024-01-17T04:00:00.000Z", None,  # the mean of c3 and c4
    ]


async def test_value_as_string_pads_the_year(emu: Emulator, http: httpx.AsyncClient) -> None:
    emu.add_case(created_time="0628-04-05T17:38:32.210Z")
    [result] = ok(await post(http, metric("min")))
    assert result["buckets"][0]["value_as_string"] == "0628-04-05T17:38:32.210Z"


async def test_value_as_string_cuts_off_sub_milliseconds(
    emu: Emulator, http: httpx.AsyncClient
) -> None:
    """The mean of …00.999999 and …01.000000 is …00.9999995: still second 00, not 01."""
    emu.add_case(created_time="2024-01-01T00:00:00.999999Z")
    emu.add_case(created_time="2024-01-01T00:00:01Z")
    query = metric("avg", filter="case.created_time:<'2024-01-01T00:00:02Z'")
    [result] = ok(await post(http, query))
    assert result["buckets"][0]["value"] == 1704067200999.9995
    assert result["buckets"][0]["value_as_string"] == "2024-01-01T00:00:00.999Z"


@pytest.mark.parametrize(
    "bound", ["now+9000y", "now-3000y", 1e20, -1e20, 10**20], ids=repr
)
@pytest.mark.parametrize("side", ["from", "to"])
async def test_date_range_bounds_outside_years_1_to_9999_are_400(
    http: httpx.AsyncClient, side: str, bound: Any
) -> None:
    query = {"name": "r", "type": "date_range", "field": TIME, "date_ranges": [{side: bound}]}
    assert_400(await post(http, query), "is outside the years 1-9999")


async def test_date_range_bounds_at_the_ends_of_years_1_to_9999(
    http: httpx.AsyncClient,
) -> None:
    ranges = [{"from": "0001-01-01T00:00:00Z", "to": "9999-12-31T23:59:59.999Z"}]
    query = {"name": "r", "type": "date_range", "field": TIME, "date_ranges": ranges}
    [result] = ok(await post(http, query))
    [bucket] = result["buckets"]
    assert bucket["label"] == "0001-01-01T00:00:00.000Z-9999-12-31T23:59:59.999Z"
    assert bucket["count"] == 6


def histogram(**extra: Any) -> dict[str, Any]:
    """A yearly date_histogram on ``case.created_time``."""
    return {"name": "h", "type": "date_histogram", "field": TIME, "interval": "year", **extra}


@pytest.mark.parametrize("bound", [{"max": 1e20}, {"min": "now-3000y"}], ids=str)
async def test_histogram_extended_bounds_outside_years_are_400(
    http: httpx.AsyncClient, bound: dict[str, Any]
) -> None:
    reply = await post(http, histogram(extended_bounds=bound))
    assert_400(reply, "is outside the years 1-9999")


async def test_histogram_up_to_year_9999(emu: Emulator, http: httpx.AsyncClient) -> None:
    """Empty buckets run to the year 9999, whose successor does not exist."""
    emu.add_case(created_time="9999-12-31T23:30:00Z")
    [result] = ok(await post(http, histogram(filter="case.created_time:>'9000-01-01'",
                                             extended_bounds={"min": "9997-06-01T00:00:00Z"})))
    assert [(b["label"], b["count"]) for b in result["buckets"]] == [
        ("9997-01-01T00:00:00Z", 0), ("9998-01-01T00:00:00Z", 0), ("9999-01-01T00:00:00Z", 1),
    ]


@pytest.mark.parametrize("interval", ["hour", "minute"])
async def test_histogram_last_hour_and_minute_of_year_9999(
    emu: Emulator, http: httpx.AsyncClient, interval: str
) -> None:
    emu.add_case(created_time="9999-12-31T23:59:00Z")
    query = histogram(interval=interval, filter="case.created_time:>'9000-01-01'")
    [result] = ok(await post(http, query))
    [bucket] = result["buckets"]
    assert bucket["count"] == 1


@pytest.mark.parametrize(
    ("created", "zone"),
    [
        ("9999-12-31T23:30:00Z", "+02:00"),
        ("9999-12-31T23:30:00Z", "Europe/Berlin"),
        ("0001-01-01T00:30:00Z", "-02:00"),
        ("0001-01-01T00:30:00Z", "America/New_York"),
        ("0001-01-01T00:30:00+01:00", "UTC"),
    ],
)
async def test_histogram_buckets_outside_years_in_the_zone_are_400(
    emu: Emulator, http: httpx.AsyncClient, created: str, zone: str
) -> None:
    emu.add_case(created_time=created)
    reply = await post(http, histogram(time_zone=zone, min_doc_count=1))
    assert_400(reply, f"{created!r} falls in a year outside the years 1-9999")


# 2. JSON numbers beyond a float64 ------------------------------------------------------------
_BIG = "1" + "0" * 400


@pytest.mark.parametrize(
    "number", ["1e400", "-1e400", "1E+309", "2e308", _BIG, "-" + _BIG, _BIG + ".5"],
    ids=lambda n: n[:12],
)
async def test_json_numbers_overflowing_a_float64_are_400(
    http: httpx.AsyncClient, number: str
) -> None:
    body = f'[{{"name": "r", "type": "range", "field": "key", "ranges": [{{"From": {number}}}]}}]'
    reply = await http.post(AGG, content=body.encode(), headers=JSON)
    assert_400(reply, "invalid JSON body: number ")
    assert "is out of range" in reply.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    ("number", "value"),
    [("1.7976931348623157e308", 1.7976931348623157e308), ("1e-400", 0.0),
     ("-" + "9" * 300, -1e300)],
    ids=lambda n: str(n)[:12],
)
async def test_json_numbers_within_a_float64_are_read(
    http: httpx.AsyncClient, number: str, value: float
) -> None:
    body = f'[{{"name": "r", "type": "range", "field": "key", "ranges": [{{"From": {number}}}]}}]'
    [result] = ok(await http.post(AGG, content=body.encode(), headers=JSON))
    assert result["buckets"][0]["from"] == value


@pytest.mark.parametrize("bound", ["inf", "-Infinity", "nan", "1e400"])
async def test_range_string_bounds_must_be_finite(http: httpx.AsyncClient, bound: str) -> None:
    query = {"name": "r", "type": "range", "field": "key", "ranges": [{"From": bound}]}
    assert_400(await post(http, query), "range bounds must be finite numbers")


# 3. time_zone ---------------------------------------------------------------------------------
DATE_RANGE = {
    "name": "d", "type": "date_range", "field": TIME,
    "date_ranges": [{"from": "2024-01-01T00:00:00Z", "to": "2024-02-01T00:00:00Z"}],
}


@pytest.mark.parametrize(
    ("zone", "fragment"),
    [("Nope/Nope", "unknown time_zone 'Nope/Nope'"), ("Mars/Olympus", "unknown time_zone"),
     ("../etc/passwd", "unknown time_zone"), (5, "'time_zone' must be a string")],
    ids=str,
)
async def test_date_range_time_zone_is_checked(
    http: httpx.AsyncClient, zone: Any, fragment: str
) -> None:
    assert_400(await post(http, {**DATE_RANGE, "time_zone": zone}), f"aggregation 'd': {fragment}")


@pytest.mark.parametrize(
    "query",
    [
        {"name": "t", "type": "terms", "field": "status"},
        {"name": "r", "type": "range", "field": "key", "ranges": [{"From": 0}]},
        {"name": "m", "type": "max", "field": TIME},
    ],
    ids=lambda q: q["type"],
)
async def test_time_zone_is_checked_whatever_the_type(
    http: httpx.AsyncClient, query: dict[str, Any]
) -> None:
    reply = await post(http, {**query, "time_zone": "Nope/Nope"})
    assert_400(reply, "unknown time_zone 'Nope/Nope'")


@pytest.mark.parametrize("zone", ["Europe/Berlin", "+02:00", "-0530", "UTC", "", None])
async def test_date_range_accepts_known_time_zones(
    http: httpx.AsyncClient, zone: str | None
) -> None:
    [result] = ok(await post(http, {**DATE_RANGE, "time_zone": zone}))
    assert [b["count"] for b in result["buckets"]] == [4]
