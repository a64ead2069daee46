"""The FQL builder: rendering, escaping, precedence, negation and the syntax check."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from falcon_mc import InvalidArgumentError, fql
from falcon_mc.fql import Filter

# --------------------------------------------------------------------------- a reference parser
#
# Independent of the module under test: reads FQL as the server would (AND "+" binds tighter
# than OR ","; a backslash inside quotes escapes the next character).


@dataclass(frozen=True)
class Literal:
    """A decoded quoted value: its characters, and which of them are unescaped ``*``."""

    text: str
    wildcards: tuple[int, ...]


@dataclass(frozen=True)
class Cmp:
    field: str
    op: str
    values: tuple[Literal, ...]
    source: str  # the value part as written (for identity)


@dataclass(frozen=True)
class Node:
    kind: str  # "and" | "or"
    items: tuple[Cmp | Node, ...]


class ParseError(Exception):
    pass


class RefParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse(self) -> Cmp | Node:
        node = self.or_()
        if self.pos != len(self.text):
            raise ParseError(f"trailing text at {self.pos}: {self.text[self.pos:]!r}")
        return node

    def or_(self) -> Cmp | Node:
        items = [self.and_()]
        while self.peek() == ",":
            self.pos += 1
            items.append(self.and_())
        return items[0] if len(items) == 1 else Node("or", tuple(items))

    def and_(self) -> Cmp | Node:
        items = [self.unary()]
        while self.peek() == "+":
            self.pos += 1
            items.append(self.unary())
        return items[0] if len(items) == 1 else Node("and", tuple(items))

    def unary(self) -> Cmp | Node:
        if self.peek() == "(":
            self.pos += 1
            node = self.or_()
            if self.peek() != ")":
                raise ParseError("expected ')'")
            self.pos += 1
            return node
        return self.comparison()

    def comparison(self) -> Cmp:
        start = self.pos
        while self.peek() and (self.peek().isalnum() or self.peek() in "_."):
            self.pos += 1
        field = self.text[start : self.pos]
        if not field or self.peek() != ":":
            raise ParseError(f"expected field: at {start}")
        self.pos += 1
        op = ""
        for candidate in (">=", "<=", "!", ">", "<"):
            if self.text.startswith(candidate, self.pos):
                op = candidate
                self.pos += len(candidate)
                break
        value_start = self.pos
        if self.peek() == "[":
            self.pos += 1
            values = [self.quoted()]
            while self.peek() == ",":
                self.pos += 1
                values.append(self.quoted())
            if self.peek() != "]":
                raise ParseError("expected ']'")
            self.pos += 1
        else:
            values = [self.quoted()]
        return Cmp(field, op, tuple(values), self.text[value_start : self.pos])

    def quoted(self) -> Literal:
        if self.peek() != "'":
            raise ParseError(f"expected a quote at {self.pos}")
        self.pos += 1
        out: list[str] = []
        wild: list[int] = []
        while True:
            if self.pos >= len(self.text):
                raise ParseError("unterminated quote")
            ch = self.text[self.pos]
            if ch == "\\":
                if self.pos + 1 >= len(self.text):
                    raise ParseError("dangling backslash")
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            self.pos += 1
            if ch == "'":
                return Literal("".join(out), tuple(wild))
            if ch == "*":
                wild.append(len(out))
            out.append(ch)


def ref_parse(text: str) -> Cmp | Node:
    return RefParser(text).parse()


# --------------------------------------------------------------------------- rendering tables

AWARE = datetime(2024, 1, 1, tzinfo=UTC)

RENDER_CASES: list[tuple[Filter, str]] = [
    (fql.eq("case.status", "open"), "case.status:'open'"),
    (fql.eq("case.title", "it's"), r"case.title:'it\'s'"),
    (fql.eq("case.title", "a\\b"), r"case.title:'a\\b'"),
    (fql.eq("case.title", "50*"), r"case.title:'50\*'"),
    (fql.eq("case.title", "a,b+c(d)[e]"), "case.title:'a,b+c(d)[e]'"),
    (fql.eq("case.title", ""), "case.title:''"),
    (fql.eq("case.key", 42), "case.key:'42'"),
    (fql.eq("case.key", 1.5), "case.key:'1.5'"),
    (fql.eq("case.key", True), "case.key:'true'"),
    (fql.ne("case.status", "closed"), "case.status:!'closed'"),
    (fql.ne("case.title", "x*'"), r"case.title:!'x\*\''"),
    (
        fql.any_of("case.type", ["fc:detection", "fc:incident"]),
        "case.type:['fc:detection','fc:incident']",
    ),
    (fql.any_of("case.id", ("a'", "b*")), r"case.id:['a\'','b\*']"),
    (fql.gt("case.created_time", AWARE), "case.created_time:>'2024-01-01T00:00:00Z'"),
    (fql.gte("case.created_time", AWARE), "case.created_time:>='2024-01-01T00:00:00Z'"),
    (fql.lt("case.created_time", AWARE), "case.created_time:<'2024-01-01T00:00:00Z'"),
    (fql.lte("case.created_time", AWARE), "case.created_time:<='2024-01-01T00:00:00Z'"),
    (
        fql.gt("case.created_time", datetime(2024, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))),
        "case.created_time:>'2024-01-01T00:00:00Z'",
    ),
    (
        fql.gt("case.created_time", datetime(2024, 1, 1, 0, 0, 0, 1500, tzinfo=UTC)),
        "case.created_time:>'2024-01-01T00:00:00.001500Z'",
    ),
    (fql.gt("case.key", 5), "case.key:>'5'"),
    (fql.lte("case.key", 2.25), "case.key:<='2.25'"),
    (fql.gte("case.created_time", "2024-06-01"), "case.created_time:>='2024-06-01'"),
    (fql.wildcard("case.title", "Phish*"), "case.title:'Phish*'"),
    (fql.wildcard("case.title", "*it's*"), r"case.title:'*it\'s*'"),
    (fql.contains("case.title", "power"), "case.title:'*power*'"),
    (fql.contains("case.title", "a*b'c\\"), r"case.title:'*a\*b\'c\\*'"),
    (fql.raw("  case.status:'open'  "), "case.status:'open'"),
]


@pytest.mark.parametrize(("built", "expected"), RENDER_CASES)
def test_render(built: Filter, expected: str) -> None:
    assert str(built) == expected
    fql.check_filter(str(built))


# --------------------------------------------------------------------------- precedence

A = fql.eq("f", "a")
B = fql.eq("f", "b")
C = fql.eq("f", "c")
D = fql.eq("f", "d")

PRECEDENCE_CASES: list[tuple[Filter, str]] = [
    (A & B, "f:'a'+f:'b'"),
    (A | B, "f:'a',f:'b'"),
    ((A | B) & C, "(f:'a',f:'b')+f:'c'"),
    (C & (A | B), "f:'c'+(f:'a',f:'b')"),
    ((A & B) | C, "f:'a'+f:'b',f:'c'"),
    (A & B | C & D, "f:'a'+f:'b',f:'c'+f:'d'"),
    ((A | B) & (C | D), "(f:'a',f:'b')+(f:'c',f:'d')"),
    (A & (B & C), "f:'a'+f:'b'+f:'c'"),
    (A | (B | C), "f:'a',f:'b',f:'c'"),
    (((A | B) & C) | D, "(f:'a',f:'b')+f:'c',f:'d'"),
    ((((A | B) & C) | D) & A, "((f:'a',f:'b')+f:'c',f:'d')+f:'a'"),
    (fql.and_(A), "f:'a'"),
    (fql.or_(A, B, C), "f:'a',f:'b',f:'c'"),
    (fql.and_(A, fql.or_(B, C), D), "f:'a'+(f:'b',f:'c')+f:'d'"),
    (fql.raw("f:'a',f:'b'") & C, "(f:'a',f:'b')+f:'c'"),
    (fql.raw("f:'a'+f:'b'") & C, "f:'a'+f:'b'+f:'c'"),
    (fql.raw("f:['a','b']") & C, "f:['a','b']+f:'c'"),
    (fql.raw("f:'a,b'") & C, "f:'a,b'+f:'c'"),
    (fql.raw("f:'a',f:'b'") | C, "f:'a',f:'b',f:'c'"),
    ("f:'a',f:'b'" & C, "(f:'a',f:'b')+f:'c'"),
    (C | "f:'x'", "f:'c',f:'x'"),
    (fql.and_("f:'a'", C), "f:'a'+f:'c'"),
]


@pytest.mark.parametrize(("built", "expected"), PRECEDENCE_CASES)
def test_precedence(built: Filter, expected: str) -> None:
    assert str(built) == expected
    fql.check_filter(expected)


# --------------------------------------------------------------------------- negation

NEGATION_CASES: list[tuple[Filter, str]] = [
    (~fql.eq("f", "a"), "f:!'a'"),
    (~fql.ne("f", "a"), "f:'a'"),
    (~fql.any_of("f", ["a", "b"]), "f:!['a','b']"),
    (~fql.contains("f", "x"), "f:!'*x*'"),
    (~fql.wildcard("f", "x*"), "f:!'x*'"),
    (~(A & B), "f:!'a',f:!'b'"),
    (~(A | B), "f:!'a'+f:!'b'"),
    (~((A | B) & C), "f:!'a'+f:!'b',f:!'c'"),
    (~((A & B) | C), "(f:!'a',f:!'b')+f:!'c'"),
]


@pytest.mark.parametrize(("built", "expected"), NEGATION_CASES)
def test_negation(built: Filter, expected: str) -> None:
    assert str(built) == expected


def test_double_negation_is_identity() -> None:
    for f in (A, fql.ne("f", "x"), (A | B) & C, fql.any_of("g", [1, 2])):
        assert ~~f == f


@pytest.mark.parametrize(
    "build",
    [
        lambda: ~fql.gt("case.key", 1),
        lambda: ~fql.gte("case.key", 1),
        lambda: ~fql.lt("case.key", 1),
        lambda: ~fql.lte("case.key", 1),
        lambda: ~fql.raw("f:'a'"),
        lambda: ~(A & fql.gt("case.key", 1)),
        lambda: ~(A | fql.raw("f:'b'")),
    ],
)
def test_negation_refused(build: Callable[[], Filter]) -> None:
    with pytest.raises(TypeError):
        build()


# --------------------------------------------------------------------------- object behaviour


def test_immutable_hashable_and_equal() -> None:
    f = fql.eq("case.status", "open")
    assert f == fql.eq("case.status", "open")
    assert f != fql.ne("case.status", "open")
    assert hash(f) == hash(fql.eq("case.status", "open"))
    assert len({f, fql.eq("case.status", "open"), A & B, A & B}) == 2
    with pytest.raises(AttributeError):
        f.field = "other"  # type: ignore[attr-defined]
    assert "case.status:'open'" in repr(f)


def test_operators_with_unsupported_types() -> None:
    with pytest.raises(TypeError):
        _ = A & 1  # type: ignore[operator]
    with pytest.raises(TypeError):
        _ = A | None  # type: ignore[operator]


def test_filter_is_abstract() -> None:
    with pytest.raises(TypeError):
        Filter()  # type: ignore[abstract]


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "field",
    ["", "1abc", "case status", "case.status:'x'", "a+b", "a,b", "case.title\n", "é", "-x"],
)
def test_invalid_field_names(field: str) -> None:
    builders: list[Callable[[], Filter]] = [
        lambda: fql.eq(field, "x"),
        lambda: fql.ne(field, "x"),
        lambda: fql.any_of(field, ["x"]),
        lambda: fql.gt(field, 1),
        lambda: fql.wildcard(field, "x*"),
        lambda: fql.contains(field, "x"),
    ]
    for build in builders:
        with pytest.raises(InvalidArgumentError) as info:
            build()
        assert info.value.argument == "field"


@pytest.mark.parametrize("field", ["_all", "case.assigner.uuid", "a", "A_1.b2", "_"])
def test_valid_field_names(field: str) -> None:
    assert str(fql.eq(field, "x")) == f"{field}:'x'"


def test_field_lists_and_sort_values() -> None:
    assert len(fql.CASE_FILTER_FIELDS) == 20
    assert {"activity.created_time", "activity.type"} == fql.ACTIVITY_FILTER_FIELDS
    assert len(fql.CASE_SORT_VALUES) == 10
    assert "case.last_modified_time.asc" in fql.CASE_SORT_VALUES
    assert {
        "activity.type.asc",
        "activity.type.desc",
        "activity.created_time.asc",
        "activity.created_time.desc",
    } == fql.ACTIVITY_SORT_VALUES
    for field in fql.CASE_FILTER_FIELDS | fql.ACTIVITY_FILTER_FIELDS:
        fql.eq(field, "x")  # every spec field is a valid field name


@pytest.mark.parametrize(
    ("build", "argument"),
    [
        (lambda: fql.any_of("f", []), "values"),
        (lambda: fql.any_of("f", "abc"), "values"),
        (lambda: fql.contains("f", ""), "text"),
        (lambda: fql.gt("case.created_time", datetime(2024, 1, 1)), "value"),  # naive
        # aware, but past datetime.max / before datetime.min once converted to UTC
        (lambda: fql.gte("case.created_time",
                         datetime.max.replace(tzinfo=timezone(timedelta(hours=-5)))), "value"),
        (lambda: fql.lt("case.created_time",
                        datetime.min.replace(tzinfo=timezone(timedelta(hours=1)))), "value"),
        (lambda: fql.eq("f", float("nan")), "value"),
        (lambda: fql.lt("f", float("inf")), "value"),
        (lambda: fql.eq("f", None), "value"),  # type: ignore[arg-type]
        (lambda: fql.eq("f", b"x"), "value"),  # type: ignore[arg-type]
        (lambda: fql.and_(), "filters"),
        (lambda: fql.or_(), "filters"),
        (lambda: fql.raw(""), "filter"),
        (lambda: fql.raw("f:'x"), "filter"),
        (lambda: A & "f:'x", "filter"),
    ],
)
def test_invalid_arguments(build: Callable[[], object], argument: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        build()
    assert info.value.argument == argument
    assert isinstance(info.value, ValueError)


# --------------------------------------------------------------------------- check_filter


@pytest.mark.parametrize(
    "text",
    [
        "case.status:'open'",
        r"case.title:'it\'s'",
        r"case.title:'a\\'",
        "(case.status:'1',case.status:'2')+case.type:'x'",
        "case.type:['a','b']",
        'case.title:"double"',
        "case.title:'(('",
        "case.title:'[)'",
        "case.title:\"it's\"",
        "case.status:open",
        "!(case.status:'1')",
    ],
)
def test_check_filter_accepts(text: str) -> None:
    fql.check_filter(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "\n",
        "case.title:'open",
        "case.title:'open\\'",
        'case.title:"open',
        "(case.status:'1'",
        "case.status:'1')",
        "case.type:['a','b'",
        "case.type:['a','b')",
        "(case.type:['a')]",
        "case.title:'a'\\'",  # a backslash outside quotes escapes nothing
    ],
)
def test_check_filter_rejects(text: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        fql.check_filter(text)
    assert info.value.argument == "filter"


def test_check_filter_rejects_non_strings() -> None:
    with pytest.raises(InvalidArgumentError):
        fql.check_filter(None)  # type: ignore[arg-type]


@given(st.text())
def test_check_filter_only_raises_invalid_argument(text: str) -> None:
    try:
        fql.check_filter(text)
    except InvalidArgumentError as exc:
        error = exc
    else:
        return
    assert error.argument == "filter"


# --------------------------------------------------------------------------- escaping properties


@given(st.text())
def test_eq_round_trips_any_text_as_one_literal(text: str) -> None:
    f = fql.eq("case.title", text)
    rendered = str(f)
    fql.check_filter(rendered)
    node = ref_parse(rendered)  # consumes everything: no extra clause
    assert isinstance(node, Cmp)
    assert node.field == "case.title"
    assert node.op == ""
    assert node.values == (Literal(text, ()),)  # exact text, no wildcard


@given(st.text())
def test_ne_round_trips_any_text(text: str) -> None:
    node = ref_parse(str(fql.ne("case.title", text)))
    assert isinstance(node, Cmp)
    assert node.op == "!"
    assert node.values == (Literal(text, ()),)


@given(st.text(min_size=1))
def test_contains_wildcards_only_at_the_ends(text: str) -> None:
    node = ref_parse(str(fql.contains("case.body", text)))
    assert isinstance(node, Cmp)
    assert node.values == (Literal(f"*{text}*", (0, len(text) + 1)),)


@given(st.text())
def test_wildcard_keeps_only_the_callers_stars(pattern: str) -> None:
    node = ref_parse(str(fql.wildcard("case.title", pattern)))
    assert isinstance(node, Cmp)
    stars = tuple(i for i, ch in enumerate(pattern) if ch == "*")
    assert node.values == (Literal(pattern, stars),)


@given(st.lists(st.text(), min_size=1, max_size=5))
def test_any_of_round_trips(values: list[str]) -> None:
    node = ref_parse(str(fql.any_of("case.hosts", values)))
    assert isinstance(node, Cmp)
    assert node.values == tuple(Literal(v, ()) for v in values)


@given(
    st.datetimes(
        min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones()
    )
)
def test_datetimes_are_rfc3339_utc(moment: datetime) -> None:
    node = ref_parse(str(fql.gte("case.created_time", moment)))
    assert isinstance(node, Cmp)
    assert node.op == ">="
    text = node.values[0].text
    assert text.endswith("Z")
    parsed = datetime.fromisoformat(text)
    assert parsed == moment.astimezone(UTC)  # (PEP 495: == across zones is False in a fold)


# --------------------------------------------------------------------------- structure property
#
# Build random expressions, render them, parse them back with the reference parser and check
# the two agree on every assignment of truth values to the comparisons.

@dataclass(frozen=True)
class Leaf:
    key: str  # the rendered positive comparison
    negated: bool


@dataclass(frozen=True)
class Not:
    item: Expected


@dataclass(frozen=True)
class Op:
    kind: str  # "and" | "or"
    items: tuple[Expected, ...]


Expected = Leaf | Not | Op

_FIELDS = st.sampled_from(["case.status", "case.title", "case.hosts"])
_VALUES = st.sampled_from(["a", "b", "x,y", "p+q", "(z)", "it's", "*", "\\", "]["])


@st.composite
def leaves(draw: st.DrawFn) -> tuple[Filter, Expected]:
    field = draw(_FIELDS)
    kind = draw(st.sampled_from(["eq", "ne", "any_of", "contains"]))
    if kind == "any_of":
        values = draw(st.lists(_VALUES, min_size=1, max_size=3))
        built = fql.any_of(field, values)
        return built, Leaf(str(built), negated=False)
    value = draw(_VALUES)
    if kind == "contains":
        built = fql.contains(field, value)
        return built, Leaf(str(built), negated=False)
    positive = fql.eq(field, value)
    if kind == "ne":
        return fql.ne(field, value), Leaf(str(positive), negated=True)
    return positive, Leaf(str(positive), negated=False)


Pair = tuple[Filter, Expected]


def _combine(children: st.SearchStrategy[Pair]) -> st.SearchStrategy[Pair]:
    def and_pair(pair: tuple[Pair, Pair]) -> Pair:
        return pair[0][0] & pair[1][0], Op("and", (pair[0][1], pair[1][1]))

    def or_pair(pair: tuple[Pair, Pair]) -> Pair:
        return pair[0][0] | pair[1][0], Op("or", (pair[0][1], pair[1][1]))

    def negate(item: Pair) -> Pair:
        return ~item[0], Not(item[1])

    return st.one_of(
        st.tuples(children, children).map(and_pair),
        st.tuples(children, children).map(or_pair),
        children.map(negate),
    )


expressions = st.recursive(leaves(), _combine, max_leaves=6)


def _eval_expected(expr: Expected, truth: dict[str, bool]) -> bool:
    if isinstance(expr, Leaf):
        return truth[expr.key] != expr.negated
    if isinstance(expr, Not):
        return not _eval_expected(expr.item, truth)
    results = [_eval_expected(item, truth) for item in expr.items]
    return all(results) if expr.kind == "and" else any(results)


def _eval_parsed(node: Cmp | Node, truth: dict[str, bool]) -> bool:
    if isinstance(node, Cmp):
        return truth[f"{node.field}:{node.source}"] != (node.op == "!")
    results = [_eval_parsed(item, truth) for item in node.items]
    return all(results) if node.kind == "and" else any(results)


def _keys(expr: Expected) -> set[str]:
    if isinstance(expr, Leaf):
        return {expr.key}
    if isinstance(expr, Not):
        return _keys(expr.item)
    return set().union(*(_keys(item) for item in expr.items))


@settings(max_examples=200)
@given(expressions)
def test_rendering_preserves_boolean_structure(pair: Pair) -> None:
    built, expected = pair
    rendered = str(built)
    fql.check_filter(rendered)
    parsed = ref_parse(rendered)
    keys = sorted(_keys(expected))
    for bits in itertools.product((False, True), repeat=len(keys)):
        truth = dict(zip(keys, bits, strict=True))
        assert _eval_parsed(parsed, truth) == _eval_expected(expected, truth), rendered


@given(expressions)
def test_raw_round_trip_keeps_meaning(pair: Pair) -> None:
    built, _ = pair
    wrapped = fql.raw(str(built)) & fql.eq("case.key", "k")
    parsed = ref_parse(str(wrapped))
    assert isinstance(parsed, Node)
    assert parsed.kind == "and"
    assert parsed.items[-1] == ref_parse("case.key:'k'")
