"""Input a strict (Go) server refuses: non-standard or too deeply nested JSON, malformed or
out-of-range ``limit``/``offset``, ill-typed aggregate options. Each is a 400 envelope."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

QUERY = "/message-center/queries/cases/v1"
GET_CASES = "/message-center/entities/cases/GET/v1"
AGG = "/message-center/aggregates/cases/GET/v1"
JSON = {"Content-Type": "application/json"}
INT64_MAX = 2**63 - 1  # the spec's integer has no format: an int64


def assert_400(reply: httpx.Response, fragment: str) -> None:
    """``reply`` is the emulator's 400 envelope and its message contains ``fragment``."""
    assert reply.status_code == 400, reply.text
    body = reply.json()
    assert "pagination" not in body["meta"]
    [err] = body["errors"]
    assert err["code"] == 400
    assert fragment in err["message"], err["message"]


# JSON bodies ---------------------------------------------------------------------------------
@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
async def test_non_standard_json_constants_are_400(http: httpx.AsyncClient, token: str) -> None:
    body = (
        '[{"name": "r", "type": "range", "field": "created_time", '
        f'"ranges": [{{"From": 0, "To": {token}}}]}}]'
    )
    reply = await http.post(AGG, content=body.encode(), headers=JSON)
    assert_400(reply, "invalid JSON body")
    assert token in reply.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"ids":' + b"[" * 100_000,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"body":' + b'{"a":' * 50_000 + b"1" + b"}" * 50_001,
    ],
    ids=["unterminated", "arrays", "objects"],
)
async def test_deeply_nested_json_is_400_not_500(
    http: httpx.AsyncClient, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="falcon_mc.emulator"):
        reply = await http.post(GET_CASES, content=body, headers=JSON)
    assert_400(reply, "invalid JSON body")
    assert not caplog.records


async def test_integer_literal_too_long_to_convert_is_400(http: httpx.AsyncClient) -> None:
    body = b'{"ids": ' + b"1" * 5000 + b"}"
    assert_400(await http.post(GET_CASES, content=body, headers=JSON), "invalid JSON body")


# limit / offset ------------------------------------------------------------------------------
_MALFORMED = ["1_0", " 5 ", "5 ", "\u0663", "\uff15", "+5", "5.0", "0x5", "1e2", "-", "--1"]


@pytest.mark.parametrize("name", ["limit", "offset"])
@pytest.mark.parametrize("raw", _MALFORMED, ids=repr)
async def test_malformed_paging_integers_are_400(
    http: httpx.AsyncClient, name: str, raw: str
) -> None:
    reply = await http.get(QUERY, params={name: raw})
    assert_400(reply, f"invalid {name} {raw!r}: an integer is required")


@pytest.mark.parametrize("name", ["limit", "offset"])
@pytest.mark.parametrize(
    "raw", [str(INT64_MAX + 1), "99999999999999999999", "9" * 5000, str(-(2**63) - 1)],
    ids=lambda raw: raw[:24],
)
async def test_paging_integers_beyond_int64_are_400(
    http: httpx.AsyncClient, name: str, raw: str
) -> None:
    reply = await http.get(QUERY, params={name: raw})
    assert_400(reply, "out of range")


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"offset": "-1"}, "invalid offset -1: must be >= 0"),
        ({"limit": "-1"}, "invalid limit -1: must be within [1-500]"),
        ({"limit": "0"}, "invalid limit 0: must be within [1-500]"),
    ],
)
async def test_negative_paging_integers_are_400(
    http: httpx.AsyncClient, params: dict[str, str], fragment: str
) -> None:
    assert_400(await http.get(QUERY, params=params), fragment)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"offset": str(INT64_MAX)}, {"offset": INT64_MAX, "limit": 100, "total": 6}),
        ({"offset": "3000000000"}, {"offset": 3_000_000_000, "limit": 100, "total": 6}),
        ({"offset": "007", "limit": "002"}, {"offset": 7, "limit": 2, "total": 6}),
        ({"offset": "-0"}, {"offset": 0, "limit": 100, "total": 6}),
        ({"offset": "", "limit": ""}, {"offset": 0, "limit": 100, "total": 6}),
    ],
    ids=str,
)
async def test_well_formed_paging_integers(
    http: httpx.AsyncClient, params: dict[str, str], expected: dict[str, int]
) -> None:
    reply = await http.get(QUERY, params=params)
    assert reply.status_code == 200, reply.text
    assert reply.json()["meta"]["pagination"] == expected


# AggregateCases ------------------------------------------------------------------------------
TERMS = {"name": "n", "type": "terms", "field": "status"}


@pytest.mark.parametrize("offset", [-1, -3, -(2**31)])
async def test_terms_negative_from_is_400(http: httpx.AsyncClient, offset: int) -> None:
    reply = await http.post(AGG, json=[{**TERMS, "from": offset}])
    assert_400(reply, "'from' must be >= 0")


@pytest.mark.parametrize("key", ["include", "exclude"])
@pytest.mark.parametrize("value", [5, True, ["open"], {"regex": "open"}], ids=repr)
async def test_terms_include_exclude_must_be_strings(
    http: httpx.AsyncClient, key: str, value: Any
) -> None:
    reply = await http.post(AGG, json=[{**TERMS, key: value}])
    assert_400(reply, f"{key!r} must be a string")


async def test_terms_spec_defaults_are_accepted(http: httpx.AsyncClient) -> None:
    """A generated client sends every field: ``from`` 0 and empty ``include``/``exclude``."""
    query = {**TERMS, "from": 0, "include": "", "exclude": "", "sort": "_term|asc"}
    reply = await http.post(AGG, json=[query, {**query, "name": "m", "include": "open|closed"}])
    assert reply.status_code == 200, reply.text
    all_terms, some = reply.json()["resources"]
    assert [b["label"] for b in all_terms["buckets"]] == [
        "closed", "in_progress", "open", "waiting_for_customer",
    ]
    assert [b["label"] for b in some["buckets"]] == ["closed", "open"]
