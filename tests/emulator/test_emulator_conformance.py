"""Every operation of the spec, called with the spec's method and path, answers a reply that
matches the spec's response schema (recursively), with the spec's headers."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from falcon_mc.emulator import Emulator

from .helpers import check_schema, load_spec

SPEC = load_spec()
OPERATIONS = [
    (path, method.upper(), op)
    for path, methods in SPEC["paths"].items()
    for method, op in methods.items()
]

Call = Callable[[httpx.AsyncClient, Emulator, str, str], Awaitable[httpx.Response]]


async def _json(client: httpx.AsyncClient, method: str, path: str, body: Any) -> httpx.Response:
    return await client.request(
        method, path, content=json.dumps(body), headers={"Content-Type": "application/json"}
    )


async def aggregate(c: httpx.AsyncClient, emu: Emulator, m: str, p: str) -> httpx.Response:
    body = [
        {"name": "by_status", "type": "terms", "field": "case.status",
         "sub_aggregates": [{"name": "by_type", "type": "terms", "field": "type"}]},
        {"name": "weekly", "type": "date_histogram", "field": "created_time", "interval": "week"},
        {"name": "keys", "type": "range", "field": "key", "ranges": [{"From": 0, "To": 35}]},
        {"name": "dates", "type": "date_range", "field": "created_time",
         "date_ranges": [{"from": "2024-01-01T00:00:00Z", "to": "2024-02-01T00:00:00Z"}]},
        {"name": "first", "type": "min", "field": "created_time"},
    ]
    return await _json(c, m, p, body)


async def get_activities(c: httpx.AsyncClient, emu: Emulator, m: str, p: str) -> httpx.Response:
    return await _json(c, m, p, {"ids": emu.activity_ids("c1")})


async def add_activity(c: httpx.AsyncClient, emu: Emulator, m: str, p: str) -> httpx.Response:
    body = {"case_id": "c1", "body": "hello", "type": "comment", "user_uuid": "u-ada"}
    return await _json(c, m, p, body)


async def download(c: httpx.AsyncClient, emu: Emulator, m: str, p: str) -> httpx.Response:
    att = emu.add_attachment("c1", "notes.txt", b"hello")
    return await c.request(m, p, params={"id": att})


async def upload(c: httpx.AsyncClient, emu: Emulator, m: str, p: str) -> httpx.Response:
    return await c.request(
        m, p, data={"case_id": "c1", "user_uuid": "u-ada"},
        files={"file": ("shot.png", b"\x89PNG...", "image/png")},
    )


async def create_v1(c: httpx.AsyncClient, emu: Emulator, m: str, p: str) -> httpx.Response:
    body = {"title": "t", "type": "fc:detection-support", "body": "b", "user_uuid": "u-ada",
            "detections": [{"id": "ldt:" + "1" * 32 + ":1", "url": "u"}], "incidents": []}
    return await _json(c, m, p, body)


async def update(c: httpx.AsyncClient, emu: Emulator, m: str, p: str) -> httpx.Response:
    return await _json(c, m, p, {"id": "c1", "body": "new", "detections": [], "incidents": []})


async def create_v2(c: httpx.AsyncClient, emu: Emulator, m: str, p: str) -> httpx.Response:
    body = {"title": "t", "type": "fc:incident-support", "body": "b",
            "incidents": [{"id": "inc:" + "1" * 32 + ":" + "2" * 32, "url": "u"}],
            "detections": [{"id": "ldt:x:1", "product": "epp", "url": "u"}]}
    return await _json(c, m, p, body)


async def get_cases(c: httpx.AsyncClient, emu: Emulator, m: str, p: str) -> httpx.Response:
    emu.add_attachment("c1", "notes.txt", b"hello")
    return await _json(c, m, p, {"ids": ["c1", "c3", "c4"]})


async def query_activities(
    c: httpx.AsyncClient, emu: Emulator, m: str, p: str
) -> httpx.Response:
    return await c.request(m, p, params={"case_id": "c1", "limit": 10, "offset": 0,
                                         "sort": "activity.created_time.asc",
                                         "filter": "activity.type:'comment'"})


async def query_cases(c: httpx.AsyncClient, emu: Emulator, m: str, p: str) -> httpx.Response:
    return await c.request(m, p, params={"filter": "case.status:'open'", "limit": 2,
                                         "sort": "case.id.asc", "offset": "0"})


CALLS: dict[str, Call] = {
    "AggregateCases": aggregate,
    "GetCaseActivityByIds": get_activities,
    "CaseAddActivity": add_activity,
    "CaseDownloadAttachment": download,
    "CaseAddAttachment": upload,
    "CreateCase": create_v1,
    "UpdateCase": update,
    "CreateCaseV2": create_v2,
    "GetCaseEntitiesByIDs": get_cases,
    "QueryActivityByCaseID": query_activities,
    "QueryCasesIdsByFilter": query_cases,
}


def test_every_operation_is_covered() -> None:
    assert {op["operationId"] for _, _, op in OPERATIONS} == set(CALLS)
    assert len(OPERATIONS) == 11


def check_headers(reply: httpx.Response, declared: dict[str, Any]) -> None:
    for name, header in declared.items():
        assert name in reply.headers, f"header {name} missing"
        if header.get("type") == "integer":
            int(reply.headers[name])


@pytest.mark.parametrize(
    ("path", "method", "op"), OPERATIONS, ids=[op["operationId"] for _, _, op in OPERATIONS]
)
async def test_operation_reply_matches_spec(
    http: httpx.AsyncClient, emu: Emulator, path: str, method: str, op: dict[str, Any]
) -> None:
    reply = await CALLS[op["operationId"]](http, emu, method, path)
    assert reply.status_code == 200, reply.text
    declared = op["responses"]["200"]
    check_headers(reply, declared.get("headers", {}))
    schema = declared["schema"]
    if schema == {"type": "string"}:  # the download: raw bytes in one of the produces types
        assert reply.headers["Content-Type"] in op["produces"]
        assert reply.content == b"hello"
        return
    assert reply.headers["Content-Type"] == "application/json"
    body = reply.json()
    check_schema(body, schema, SPEC, op["operationId"])
    assert body["meta"]["trace_id"] == reply.headers["X-CS-TRACEID"]
    if method == "GET":
        assert set(body["meta"]["pagination"]) == {"offset", "limit", "total"}
    elif op["operationId"] not in ("GetCaseEntitiesByIDs", "GetCaseActivityByIds",
                                   "AggregateCases"):
        assert body["meta"]["writes"] == {"resources_affected": 1}


BAD: dict[str, tuple[str, dict[str, Any]]] = {
    "GetCaseActivityByIds": ("json", {"ids": []}),
    "CaseAddActivity": ("json", {"case_id": "c1", "body": "x", "type": "note", "user_uuid": "u"}),
    "CaseDownloadAttachment": ("params", {}),
    "CaseAddAttachment": ("files", {"case_id": "c1", "user_uuid": "u", "name": "bad.exe"}),
    "CreateCase": ("json", {"title": "t", "type": "fc:contact", "body": "b"}),
    "UpdateCase": ("json", {"body": "b"}),
    "CreateCaseV2": ("json", {"type": "fc:contact", "body": "b"}),
    "GetCaseEntitiesByIDs": ("json", {"ids": "c1"}),
    "QueryActivityByCaseID": ("params", {"limit": 10}),
    "QueryCasesIdsByFilter": ("params", {"filter": "case.status:'open"}),
}


@pytest.mark.parametrize(
    ("path", "method", "op"),
    [o for o in OPERATIONS if o[2]["operationId"] in BAD],
    ids=[o[2]["operationId"] for o in OPERATIONS if o[2]["operationId"] in BAD],
)
async def test_400_reply_matches_spec(
    http: httpx.AsyncClient, path: str, method: str, op: dict[str, Any]
) -> None:
    how, payload = BAD[op["operationId"]]
    if how == "json":
        reply = await _json(http, method, path, payload)
    elif how == "params":
        reply = await http.request(method, path, params=payload)
    else:
        name = payload.pop("name")
        reply = await http.request(method, path, data=payload, files={"file": (name, b"x")})
    assert reply.status_code == 400, reply.text
    declared = op["responses"]["400"]
    check_headers(reply, declared["headers"])
    body = reply.json()
    check_schema(body, declared["schema"], SPEC, op["operationId"])
    assert body["errors"][0]["code"] == 400
    assert body["errors"][0]["message"]


async def test_429_reply_matches_spec(http: httpx.AsyncClient, emu: Emulator) -> None:
    emu.faults.add(kind="rate_limit")
    op = SPEC["paths"]["/message-center/queries/cases/v1"]["get"]
    reply = await http.get("/message-center/queries/cases/v1")
    assert reply.status_code == 429
    check_headers(reply, op["responses"]["429"]["headers"])
    check_schema(reply.json(), op["responses"]["429"]["schema"], SPEC, "429")
