"""The store keeps its own copies: what a caller passes in never ties cases (or the caller) together."""

from __future__ import annotations

from typing import Any

import httpx

from falcon_mc.emulator import Emulator

CASE = "/message-center/entities/case/v1"
GET = "/message-center/entities/cases/GET/v1"
ATTACH = "/message-center/entities/case-attachment/v1"


async def detection_ids(http: httpx.AsyncClient, case_id: str) -> list[str]:
    reply = await http.post(GET, json={"ids": [case_id]})
    return [d["id"] for d in reply.json()["resources"][0]["detections"]]


async def test_update_changes_one_case_only(http: httpx.AsyncClient, emu: Emulator) -> None:
    template: dict[str, Any] = {"title": "t", "detections": [{"id": "ldt:a:1", "url": ""}]}
    one, two = emu.add_case(**template), emu.add_case(**template)
    reply = await http.patch(
        CASE, json={"id": one, "body": "more", "detections": [{"id": "ldt:b:2", "url": ""}]}
    )
    assert reply.status_code == 200
    assert await detection_ids(http, one) == ["ldt:a:1", "ldt:b:2"]
    assert await detection_ids(http, two) == ["ldt:a:1"]
    assert template["detections"] == [{"id": "ldt:a:1", "url": ""}]


async def test_upload_changes_one_case_only(http: httpx.AsyncClient, emu: Emulator) -> None:
    shared: list[dict[str, Any]] = []
    one = emu.add_case(title="one", attachments=shared)
    two = emu.add_case(title="two", attachments=shared)
    reply = await http.post(
        ATTACH, data={"case_id": one, "user_uuid": "u"}, files={"file": ("a.txt", b"x")}
    )
    assert reply.status_code == 200
    assert [a["name"] for a in emu.cases[one]["attachments"]] == ["a.txt"]
    assert emu.cases[two]["attachments"] == []
    assert shared == []


def test_caller_changes_after_adding_do_not_reach_the_store() -> None:
    emu = Emulator()
    hosts = ["WS-1"]
    author = {"uuid": "u-1", "display_name": "Ada"}
    case_id = emu.add_case(title="t", hosts=hosts, assigner=author)
    activity_id = emu.add_activity(case_id, "hi", created_by=author)
    hosts.append("WS-2")
    author["display_name"] = "Changed"
    assert emu.cases[case_id]["hosts"] == ["WS-1"]
    assert emu.cases[case_id]["assigner"]["display_name"] == "Ada"
    assert emu.activities[activity_id]["created_by"]["display_name"] == "Ada"
