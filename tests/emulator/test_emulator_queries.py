"""Sorting, paging, get-by-ids and the writes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from falcon_mc.emulator import Emulator

QUERY = "/message-center/queries/cases/v1"
ACTIVITIES = "/message-center/queries/case-activities/v1"
GET_CASES = "/message-center/entities/cases/GET/v1"
GET_ACTIVITIES = "/message-center/entities/case-activities/GET/v1"


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        (None, ["c6", "c5", "c4", "c3", "c2", "c1"]),
        ("case.created_time.asc", ["c1", "c2", "c3", "c4", "c5", "c6"]),
        ("case.created_time|desc", ["c6", "c5", "c4", "c3", "c2", "c1"]),
        ("case.created_time.desc", ["c6", "c5", "c4", "c3", "c2", "c1"]),
        ("case.status.asc", ["c2", "c5", "c6", "c1", "c3", "c4"]),
        ("case.status.desc", ["c4", "c1", "c3", "c6", "c2", "c5"]),
        ("case.type.asc", ["c1", "c5", "c3", "c2", "c6", "c4"]),
        ("case.id.desc", ["c6", "c5", "c4", "c3", "c2", "c1"]),
        ("case.id|asc", ["c1", "c2", "c3", "c4", "c5", "c6"]),
        ("case.last_modified_time.asc", ["c1", "c2", "c3", "c4", "c5", "c6"]),
    ],
)
async def test_sort(http: httpx.AsyncClient, sort: str | None, expected: list[str]) -> None:
    params = {} if sort is None else {"sort": sort}
    reply = await http.get(QUERY, params=params)
    assert reply.status_code == 200
    assert reply.json()["resources"] == expected


@pytest.mark.parametrize("sort", ["case.title.asc", "case.created_time.up", "bogus", "|asc"])
async def test_unknown_sort_is_400(http: httpx.AsyncClient, sort: str) -> None:
    reply = await http.get(QUERY, params={"sort": sort})
    assert reply.status_code == 400
    assert "sort" in reply.json()["errors"][0]["message"]


async def test_paging(http: httpx.AsyncClient) -> None:
    seen: list[str] = []
    for offset in (0, 2, 4):
        reply = await http.get(
            QUERY, params={"limit": 2, "offset": str(offset), "sort": "case.id.asc"}
        )
        body = reply.json()
        assert body["meta"]["pagination"] == {"offset": offset, "limit": 2, "total": 6}
        seen += body["resources"]
    assert seen == ["c1", "c2", "c3", "c4", "c5", "c6"]
    beyond = (await http.get(QUERY, params={"offset": 10})).json()
    assert beyond["resources"] == []
    assert beyond["meta"]["pagination"] == {"offset": 10, "limit": 100, "total": 6}


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 501}, {"limit": "ten"}, {"offset": -1}, {"offset": "x"}],
    ids=str,
)
async def test_bad_paging_is_400(http: httpx.AsyncClient, params: dict[str, Any]) -> None:
    assert (await http.get(QUERY, params=params)).status_code == 400


async def test_page_limit_setting(http: httpx.AsyncClient, emu: Emulator) -> None:
    assert (await http.get(QUERY, params={"limit": 500})).status_code == 200
    emu.settings.page_limit_max = 3
    assert (await http.get(QUERY, params={"limit": 4})).status_code == 400


async def test_activities_query(http: httpx.AsyncClient, emu: Emulator) -> None:
    ids = emu.activity_ids("c1")
    reply = await http.get(ACTIVITIES, params={"case_id": "c1", "sort": "activity.created_time.asc"})
    assert reply.json()["resources"] == ids
    newest = await http.get(ACTIVITIES, params={"case_id": "c1"})
    assert newest.json()["resources"] == ids[::-1]
    by_type = await http.get(ACTIVITIES, params={"case_id": "c1", "sort": "activity.type|desc"})
    assert by_type.json()["resources"] == ["a2", ids[0]]
    none = await http.get(ACTIVITIES, params={"case_id": "unknown"})
    assert none.json()["meta"]["pagination"]["total"] == 0
    assert (await http.get(ACTIVITIES)).status_code == 400
    bad_sort = await http.get(ACTIVITIES, params={"case_id": "c1", "sort": "case.id.asc"})
    assert bad_sort.status_code == 400


async def test_get_cases_in_order_asked(http: httpx.AsyncClient) -> None:
    reply = await http.post(GET_CASES, json={"ids": ["c3", "c1", "c3"]})
    assert reply.status_code == 200
    assert [c["id"] for c in reply.json()["resources"]] == ["c3", "c1"]
    assert reply.json()["errors"] == []


async def test_get_cases_partial_and_none(http: httpx.AsyncClient) -> None:
    partial = await http.post(GET_CASES, json={"ids": ["c1", "zz"]})
    assert partial.status_code == 200
    assert [c["id"] for c in partial.json()["resources"]] == ["c1"]
    assert partial.json()["errors"] == [{"code": 404, "message": "case zz not found", "id": "zz"}]
    none = await http.post(GET_CASES, json={"ids": ["zz"]})
    assert none.status_code == 404
    assert none.json()["resources"] == []
    assert none.json()["errors"][0]["id"] == "zz"


@pytest.mark.parametrize(
    "body", [b"", b"{", b"[]", b'{"ids": []}', b'{"ids": "c1"}', b'{"ids": [1]}', b'{"x": 1}']
)
async def test_get_cases_bad_bodies(http: httpx.AsyncClient, body: bytes) -> None:
    reply = await http.post(GET_CASES, content=body, headers={"Content-Type": "application/json"})
    assert reply.status_code == 400


async def test_max_ids_per_request(http: httpx.AsyncClient, emu: Emulator) -> None:
    emu.settings.max_ids_per_request = 2
    assert (await http.post(GET_CASES, json={"ids": ["c1", "c2"]})).status_code == 200
    reply = await http.post(GET_CASES, json={"ids": ["c1", "c2", "c3"]})
    assert reply.status_code == 400
    assert "too many ids" in reply.json()["errors"][0]["message"]


async def test_get_activities(http: httpx.AsyncClient, emu: Emulator) -> None:
    ids = emu.activity_ids("c1")
    reply = await http.post(GET_ACTIVITIES, json={"ids": [*ids, "nope"]})
    assert reply.status_code == 200
    found = reply.json()["resources"]
    assert [a["id"] for a in found] == ids
    assert found[0]["created_by"]["display_name"] == "Grace Hopper"
    assert found[0]["case_id"] == "c1"
    assert reply.json()["errors"][0]["id"] == "nope"


async def test_create_v1(http: httpx.AsyncClient, emu: Emulator) -> None:
    body = {"title": "New", "type": "fc:contact", "body": "hello", "user_uuid": "u-1",
            "detections": [], "incidents": []}
    reply = await http.post("/message-center/entities/case/v1", json=body)
    assert reply.status_code == 200
    created = reply.json()["resources"][0]
    assert set(created) == {"id", "path"}
    case = emu.cases[created["id"]]
    assert case["status"] == "open"
    assert case["title"] == "New"
    assert case["assigner"]["uuid"] == "u-1"
    assert case["created_time"] == "2024-06-01T00:00:00Z"
    assert reply.json()["meta"]["writes"] == {"resources_affected": 1}
    listed = await http.get(QUERY, params={"filter": f"case.id:'{created['id']}'"})
    assert listed.json()["resources"] == [created["id"]]


@pytest.mark.parametrize(
    "body",
    [
        {"type": "fc:contact", "body": "b", "user_uuid": "u"},
        {"title": "t", "body": "b", "user_uuid": "u"},
        {"title": "t", "type": "fc:contact", "user_uuid": "u"},
        {"title": "t", "type": "fc:contact", "body": "b"},
        {"title": "t", "type": "fc:contact", "body": "b", "user_uuid": "u", "detections": "x"},
        {"title": "t", "type": "fc:contact", "body": "b", "user_uuid": "u",
         "incidents": [{"url": "no id"}]},
        {"title": 5, "type": "fc:contact", "body": "b", "user_uuid": "u"},
    ],
    ids=str,
)
async def test_create_v1_validation(http: httpx.AsyncClient, body: dict[str, Any]) -> None:
    reply = await http.post("/message-center/entities/case/v1", json=body)
    assert reply.status_code == 400
    assert reply.json()["errors"][0]["message"]


async def test_create_v2_user_optional(http: httpx.AsyncClient, emu: Emulator) -> None:
    body = {"title": "t", "type": "fc:detection-support", "body": "b",
            "detections": [{"id": "ldt:1:2", "product": "epp", "url": "https://x"}]}
    reply = await http.post("/message-center/entities/case/v2", json=body)
    assert reply.status_code == 200
    case = emu.cases[reply.json()["resources"][0]["id"]]
    assert case["detections"] == [{"id": "ldt:1:2", "url": "https://x"}]
    assert case["malware_submission_id"] == ""


async def test_update_case(http: httpx.AsyncClient, emu: Emulator) -> None:
    det = {"id": "ldt:9:9", "url": "u"}
    reply = await http.patch(
        "/message-center/entities/case/v1",
        json={"id": "c3", "body": "updated", "detections": [det], "incidents": []},
    )
    assert reply.status_code == 200
    assert reply.json()["resources"][0]["id"] == "c3"
    case = emu.cases["c3"]
    assert case["body"] == "updated"
    assert [d["id"] for d in case["detections"]] == ["ldt:" + "a" * 32 + ":123", "ldt:9:9"]
    assert case["last_modified_time"] == "2024-06-01T00:00:00Z"
    again = await http.patch("/message-center/entities/case/v1", json={"id": "c3", "detections": [det]})
    assert again.status_code == 200
    assert len(emu.cases["c3"]["detections"]) == 2
    assert emu.cases["c3"]["body"] == "updated"


async def test_update_unknown_case_is_404(http: httpx.AsyncClient) -> None:
    reply = await http.patch("/message-center/entities/case/v1", json={"id": "zz", "body": "x"})
    assert reply.status_code == 404
    assert reply.json()["errors"][0]["id"] == "zz"


async def test_add_activity(http: httpx.AsyncClient, emu: Emulator) -> None:
    body = {"case_id": "c2", "body": "a comment", "type": "comment", "user_uuid": "u-ada"}
    reply = await http.post("/message-center/entities/case-activity/v1", json=body)
    assert reply.status_code == 200
    payload = reply.json()
    assert "resources" not in payload
    assert payload["meta"]["writes"] == {"resources_affected": 1}
    (new,) = emu.activity_ids("c2")
    assert emu.activities[new]["body"] == "a comment"
    assert emu.activities[new]["type"] == "comment"
    assert emu.cases["c2"]["last_modified_time"] == "2024-06-01T00:00:00Z"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"case_id": "c2", "body": "x", "type": "note", "user_uuid": "u"}, 400),
        ({"case_id": "c2", "body": "x", "type": "comment"}, 400),
        ({"case_id": "c2", "type": "comment", "user_uuid": "u"}, 400),
        ({"body": "x", "type": "comment", "user_uuid": "u"}, 400),
        ({"case_id": "zz", "body": "x", "type": "comment", "user_uuid": "u"}, 404),
    ],
    ids=str,
)
async def test_add_activity_validation(
    http: httpx.AsyncClient, emu: Emulator, body: dict[str, Any], status: int
) -> None:
    reply = await http.post("/message-center/entities/case-activity/v1", json=body)
    assert reply.status_code == status
    assert emu.activity_ids("c2") == []
