"""FQL filtering on the two queries, against the hand-built dataset (c1..c6)."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from falcon_mc.emulator import Emulator, FQLError
from falcon_mc.emulator._fql import And, Cmp, Not, Or, evaluate, parse

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
    ("case.title:*'*fire*'", {"c1"}),
    ("case.title:*\"*FIRE\"", {"c1"}),
    ("case.title:*['*fire*','sensor*']", {"c1", "c2"}),
    ("case.title:*'printer on fire'", {"c1"}),
    ("case.hosts:*'ws-*'+case.status:'open'", {"c1", "c3"}),
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
    assert parse("a:*'x*'", fields) == Cmp("a", "=", ("x*",))  # the wildcard operator
    assert parse("a:*x", fields) == Cmp("a", "=", ("*x",))  # a bare pattern keeps its star
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
    titles = {"star": "a*b", "plain": "axxb", "empty": ""}
    assert await _titles_matching(titles, fql) == expected


async def _titles_matching(titles: dict[str, str], fql: str) -> set[str]:
    """The ids (keys of ``titles``) of the cases a fresh emulator returns for ``fql``."""
    emu = Emulator()
    for key, title in titles.items():
        emu.add_case(id=key, title=title)
    headers = {"Authorization": f"Bearer {emu.issue_token()}"}
    async with httpx.AsyncClient(
        transport=emu.transport(), base_url="https://e", headers=headers
    ) as client:
        reply = await client.get(QUERY, params={"filter": fql})
    assert reply.status_code == 200, reply.text
    return set(reply.json()["resources"])


@pytest.mark.parametrize(
    ("fql", "expected"),
    [
        ("case.title:'STRASSE'", {"street"}),
        ("case.title:'STRASSE*'", {"street"}),
        ("case.title:'*ss*'", {"street", "class"}),
        ("case.title:~'ss'", {"street", "class"}),
        ("case.title:~'S*E'", {"street"}),
        ("case.title:*'stra*'", {"street"}),
        ("case.title:!'*SS*'", {"other"}),
    ],
)
async def test_wildcards_fold_case_like_equality(fql: str, expected: set[str]) -> None:
    """Wildcard and contains matching casefold both sides, as equality does (ß is ss)."""
    titles = {"street": "Straße", "class": "Glass", "other": "Road"}
    assert await _titles_matching(titles, fql) == expected


# Pattern tokens: letters (ß casefolds to "ss"), a wildcard, and an escaped literal star.
_TOKENS = st.sampled_from(["a", "b", "S", "s", "ß", "*", "\\*"])


def _reference_glob(title: str, tokens: list[str], *, contains: bool) -> bool:
    """Glob semantics on casefolded text, by tracking every reachable position (no regex)."""
    pattern: list[str | None] = [None] if contains else []  # None: a wildcard
    for token in tokens:
        if token == "*":
            pattern.append(None)
        else:
            pattern.extend(("*" if token == "\\*" else token).casefold())
    if contains:
        pattern.append(None)
    text = title.casefold()
    reach = {0}
    for item in pattern:
        if item is None:
            reach = set(range(min(reach), len(text) + 1)) if reach else set()
        else:
            reach = {i + 1 for i in reach if i < len(text) and text[i] == item}
    return len(text) in reach


@settings(max_examples=400, deadline=None)
@given(
    tokens=st.lists(_TOKENS, max_size=8),
    title=st.text("abSsß*", max_size=10),
    contains=st.booleans(),
)
@example(tokens=["S", "S", "*"], title="ß", contains=False)
@example(tokens=["s", "s"], title="Straße", contains=True)
def test_wildcards_match_like_a_glob(tokens: list[str], title: str, contains: bool) -> None:
    """``=`` and ``~`` with wildcards agree with a plain glob on casefolded text."""
    op = "~" if contains else ""
    node = parse(f"case.title:{op}'{''.join(tokens)}'", {"case.title"})
    expected = _reference_glob(title, tokens, contains=contains)
    assert evaluate(node, lambda _: [title]) is expected


async def test_many_wildcards_over_long_titles_complete() -> None:
    """A pattern with many stars against long titles that almost match gets its answer
    (a backtracking matcher would not finish in any reasonable time)."""
    node = parse("case.title:'" + "*a" * 30 + "*b'", {"case.title"})
    assert evaluate(node, lambda _: ["a" * 20_000]) is False
    assert evaluate(node, lambda _: ["a" * 20_000 + "b"]) is True
    assert evaluate(node, lambda _: ["A" * 29 + "b"]) is False  # too few a's
    titles = {"near": "a" * 2_000, "hit": "a" * 2_000 + "B"}
    assert await _titles_matching(titles, "case.title:'" + "*a" * 12 + "*b'") == {"hit"}


_FAR = "9000-01-01T00:00:00.000001Z"
_FAR_LATER = "9000-01-01T00:00:00.000002Z"


@pytest.mark.parametrize(
    ("fql", "stored", "expected"),
    [
        (f"case.created_time:>'{_FAR}'", _FAR_LATER, True),
        (f"case.created_time:<'{_FAR_LATER}'", _FAR, True),
        (f"case.created_time:>='{_FAR_LATER}'", _FAR, False),
        (f"case.created_time:<='{_FAR}'", _FAR_LATER, False),
        (f"case.created_time:'{_FAR}'", _FAR_LATER, False),
        (f"case.created_time:'{_FAR}'", "9000-01-01T01:00:00.000001+01:00", True),
    ],
)
def test_times_compare_to_the_microsecond_in_any_year(
    fql: str, stored: str, expected: bool
) -> None:
    """Instants 1 µs apart stay apart, even where float seconds cannot tell them apart."""
    node = parse(fql, {"case.created_time"})
    assert evaluate(node, lambda _: [stored]) is expected
