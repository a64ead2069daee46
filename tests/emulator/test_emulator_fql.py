"""FQL filtering on the two queries, against the hand-built dataset (c1..c6)."""

from __future__ import annotations

import httpx
import pytest

from falcon_mc.emulator import Emulator, FQLError
from falcon_mc.emulator._fql import And, Cmp, Not, Or, parse

QUERY = "/message-center/queries/cases/v1"
ALL = {"c1", "c2", "c3", "c4", "c5", "c6"}

CASES: list[tuple[str, set[str]]] = [
    ("", ALL),
    ("case.status:'open'", {"c1", "c3"}),
    ("case.status:'OPEN'", {"c1", "c3"}),
    ('case.status:"closed"', {"c2", "c5"}),
    ("case.status:open", {"c1", "c3"}),
    ("case.status:['open','closed']", {"c1", "c2", "c3", "c5"}),
    ("case.status:!'open'", ALL - {"c1", "c3"}),
    ("case.status:!['open','closed']", {"c4", "c6"}),
    ("case.title:'*fire*'", {"c1"}),
    ("case.title:'printer*'", {"c1"}),
    ("case.title:'*on*'", {"c1", "c3", "c5"}),
    ("case.title:~'SENSOR'", {"c2"}),
    ("case.title:!~'e'", {"c5"}),
    ("case.created_time:>'2024-01-10T08:00:00Z'", {"c4", "c5", "c6"}),
    ("case.created_time:>='2024-01-10T08:00:00Z'", {"c3", "c4", "c5", "c6"}),
    ("case.created_time:<'2024-01-03T12:00:00Z'", {"c1"}),
    ("case.created_time:<='2024-01-03T12:00:00Z'", {"c1", "c2"}),
    ("case.created_time:>='2024-02-01'", {"c5", "c6"}),
    ("case.created_time:>'2024-01-03T13:00:00+02:00'", ALL - {"c1"}),
    ("case.created_time:'2024-01-01T10:00:00.000Z'", {"c1"}),
    ("case.status:'open'+case.type:'fc:contact'", {"c1"}),
    ("case.status:'open' + case.type:'fc:contact'", {"c1"}),
    ("case.status:'open' case.type:'fc:contact'", {"c1"}),
    ("case.status:'open',case.status:'closed'+case.type:'fc:contact'", {"c1", "c3", "c5"}),
    ("(case.status:'open',case.status:'closed')+case.type:'fc:contact'", {"c1", "c5"}),
    ("!(case.status:'open')", ALL - {"c1", "c3"}),
    ("case.hosts:'WS-1'", {"c1", "c6"}),
    ("case.hosts:'ws-*'", {"c1", "c2", "c3", "c6"}),
    ("case.hosts:!'WS-1'", ALL - {"c1", "c6"}),
    ("case.ip_addresses:'10.0.0.2'", {"c2"}),
    ("case.assigner.display_name:'Ada Lovelace'", {"c1", "c3", "c6"}),
    ("case.assigner.first_name:'grace'", {"c2", "c5"}),
    ("case.assigner.last_name:'Turing'", {"c4"}),
    ("case.assigner.uid:'ada@example.com'", {"c1", "c3", "c6"}),
    ("case.assigner.uuid:'u-grace'", {"c2", "c5"}),
    ("case.detections.id:'ldt:*'", {"c3"}),
    ("case.incidents.id:'inc:*'", {"c4"}),
    ("case.key:'00000030'", {"c3"}),
    ("case.key:>40", {"c5", "c6"}),
    ("case.key:<=20", {"c1", "c2"}),
    ("case.id:'c2'", {"c2"}),
    ("case.type:'fc:falcon-product-support'", {"c2", "c6"}),
    ("case.body:'It\\'s a \\'quoted\\' thing'", {"c3"}),
    ("case.title:'back\\\\slash*'", {"c6"}),
    ("case.title:\"Detection on WS-3\"", {"c3"}),
    ("activity.body:'*logs*'", {"c1", "c3"}),
    ("activity.body:'logs attached'", {"c3"}),
    ("_all:'fire'", {"c1"}),
    ("_all:'WS-3'", {"c3"}),
    ("_all:'logs'", {"c1", "c3"}),
    ("_all:'u-grace'", {"c2", "c5"}),
    ("case.aids:'none'", set()),
    ("case.last_modified_time:>='2024-01-03T00:00:00Z'", ALL),
    ("case.last_modified_time:<'2024-01-03T00:00:00Z'", set()),
]


@pytest.mark.parametrize(("fql", "expected"), CASES, ids=[c[0] or "<empty>" for c in CASES])
async def test_filter(http: httpx.AsyncClient, fql: str, expected: set[str]) -> None:
    reply = await http.get(QUERY, params={"filter": fql})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body["resources"]) == expected
    assert body["meta"]["pagination"]["total"] == len(expected)


MALFORMED = [
    "case.status",
    "case.status:",
    "case.status:'open",
    "(case.status:'open'",
    "case.status:'open')",
    "case.nope:'x'",
    "status:'open'",
    "case.status:'open'+",
    "case.status:'open',",
    ",case.status:'open'",
    "case.created_time:>'not a date'",
    "case.status:['open'",
    "case.status:['open';'x']",
    "case.created_time:>['2024-01-01','2024-02-01']",
    "+case.status:'open'",
    "case.status:'a' ]",
    "'open'",
]


@pytest.mark.parametrize("fql", MALFORMED)
async def test_malformed_filter_is_400(http: httpx.AsyncClient, fql: str) -> None:
    reply = await http.get(QUERY, params={"filter": fql})
    assert reply.status_code == 400, fql
    error = reply.json()["errors"][0]
    assert error["code"] == 400
    assert "filter" in error["message"] or "timestamp" in error["message"]


async def test_unknown_field_message_names_it(http: httpx.AsyncClient) -> None:
    reply = await http.get(QUERY, params={"filter": "case.severity:'high'"})
    assert "case.severity" in reply.json()["errors"][0]["message"]


ACTIVITY_CASES: list[tuple[str, int]] = [
    ("", 2),
    ("activity.type:'comment'", 1),
    ("activity.type:'status_change'", 1),
    ("activity.created_time:>'2024-01-02T12:00:00Z'", 1),
    ("activity.created_time:>='2024-01-02T00:00:00Z'", 2),
]


@pytest.mark.parametrize(("fql", "count"), ACTIVITY_CASES)
async def test_activity_filter(http: httpx.AsyncClient, fql: str, count: int) -> None:
    reply = await http.get(
        "/message-center/queries/case-activities/v1", params={"case_id": "c1", "filter": fql}
    )
    assert reply.status_code == 200
    assert reply.json()["meta"]["pagination"]["total"] == count


async def test_activity_filter_fields_are_restricted(http: httpx.AsyncClient) -> None:
    reply = await http.get(
        "/message-center/queries/case-activities/v1",
        params={"case_id": "c1", "filter": "activity.body:'x'"},
    )
    assert reply.status_code == 400


def test_parse_tree() -> None:
    fields = {"a", "b", "c"}
    assert parse("a:'x'+b:!'y',c:>3", fields) == Or(
        (And((Cmp("a", "=", ("x",)), Cmp("b", "!=", ("y",)))), Cmp("c", ">", ("3",)))
    )
    assert parse("!(a:['x','y'])", fields) == Not(Cmp("a", "=", ("x", "y")))
    assert parse("  ", fields) is None
    with pytest.raises(FQLError, match="position"):
        parse("a:'x'+", fields)


def test_emulator_seeded_statuses_are_queryable() -> None:
    emu = Emulator.seeded(n_cases=40, seed=3)
    assert any(c["status"] == "open" for c in emu.cases.values())


@pytest.mark.parametrize(
    ("fql", "expected"),
    [
        ("case.title:'a*b'", {"star", "plain"}),
        ("case.title:'a\\*b'", {"star"}),
        ("case.title:'*\\**'", {"star"}),
        ("case.title:~'\\*'", {"star"}),
        ("case.title:''", {"empty"}),
    ],
)
async def test_escaped_star_is_literal(fql: str, expected: set[str]) -> None:
    emu = Emulator()
    for key, title in (("star", "a*b"), ("plain", "axxb"), ("empty", "")):
        emu.add_case(id=key, title=title)
    headers = {"Authorization": f"Bearer {emu.issue_token()}"}
    async with httpx.AsyncClient(
        transport=emu.transport(), base_url="https://e", headers=headers
    ) as client:
        reply = await client.get(QUERY, params={"filter": fql})
    assert set(reply.json()["resources"]) == expected
