"""A parser and evaluator for the FQL subset the Message Center filters accept.

Grammar (whitespace is allowed between tokens)::

    filter     := or
    or         := and ( "," and )*
    and        := unary ( "+" unary | <whitespace> unary )*      # "+" binds tighter than ","
    unary      := "!" "(" or ")" | "(" or ")" | comparison
    comparison := FIELD ":" [ "!" | "~" | "!~" | ">" | ">=" | "<" | "<=" | "*" ] value
    value      := "'" chars "'" | '"' chars '"' | "[" value ( "," value )* "]" | bare
    bare       := one or more characters other than whitespace and + , ( ) [ ] ' "

Semantics: string equality is case-insensitive (both sides ``str.casefold``-ed, wildcards
included: ``ß`` matches ``ss``); ``*`` in a value is a wildcard, matched in linear time; the
``*`` operator (``field:*'*text*'``, FalconPy's wildcard spelling) is plain equality, allowed
only before a quote or ``[``; ``~`` is a case-insensitive "contains"; ``!`` negates; a list
matches any of its values; multi-valued fields (``case.hosts``...) match when any of their
values matches (``!`` when none does). ``>``/``<``... compare timestamps as instants (to the
microsecond) on time fields, numbers numerically, other strings lexicographically. ``_all``
is full text: it matches when any text field *contains* the value. Inside quotes, a
backslash escapes the next character (``\\'``, ``\\\\``; ``\\*`` is a literal star, not a
wildcard). A literal ``+`` decoded as a space in a URL works too (whitespace
between terms means "and").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ._util import parse_instant, parse_instant_or_none

__all__ = ["And", "Cmp", "FQLError", "Node", "Not", "Or", "evaluate", "parse"]


class FQLError(ValueError):
    """A malformed filter or a field that may not be filtered on."""


@dataclass(frozen=True)
class Cmp:
    """``field:<op><values>``."""

    field: str
    op: str  # "=", "!=", "~", "!~", ">", ">=", "<", "<=" (the "*" operator is "=")
    values: tuple[str, ...]


@dataclass(frozen=True)
class And:
    """All of ``items``."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """Any of ``items``."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    """Not ``item``."""

    item: Node


Node = Cmp | And | Or | Not

#: Stands for an escaped ``\\*`` (a literal star, not a wildcard) inside parsed values: a lone
#: surrogate, which no UTF-8 text (a query string, a title) can hold. Only a JSON ``\\udfff``
#: escape can make one; :func:`plain_text` turns it into U+FFFD first, as Go's JSON decoder does.
LITERAL_STAR = "\udfff"


def plain_text(text: str) -> str:
    """``text`` with any ``LITERAL_STAR`` read as U+FFFD, so that it cannot pass for a literal
    star: for text that did not come through a UTF-8 decoder (JSON bodies)."""
    return text.replace(LITERAL_STAR, "\ufffd")

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_BARE_STOP = set(" \t\r\n+,()[]'\"")
_OPS = ("!~", ">=", "<=", "!", "~", ">", "<")
#: The wildcard operator ``*`` is only read as one right before a quoted value or a list, so
#: that a bare ``field:*abc`` keeps meaning the pattern ``*abc``.
_WILDCARD_OPS = ("*'", '*"', "*[")


class _Parser:
    def __init__(self, text: str, fields: Iterable[str]) -> None:
        self.text = text
        self.pos = 0
        self.fields = frozenset(fields)

    def fail(self, message: str) -> FQLError:
        return FQLError(f"invalid filter at position {self.pos}: {message}")

    def ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse(self) -> Node:
        node = self.or_()
        self.ws()
        if self.pos != len(self.text):
            raise self.fail(f"unexpected {self.peek()!r}")
        return node

    def or_(self) -> Node:
        items = [self.and_()]
        while True:
            self.ws()
            if self.peek() != ",":
                break
            self.pos += 1
            items.append(self.and_())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_(self) -> Node:
        items = [self.unary()]
        while True:
            start = self.pos
            self.ws()
            ch = self.peek()
            if ch == "+":
                self.pos += 1
                items.append(self.unary())
            elif self.pos > start and ch and (ch == "(" or ch == "!" or _FIELD.match(ch)):
                items.append(self.unary())
            else:
                self.pos = start
                break
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self) -> Node:
        self.ws()
        ch = self.peek()
        if ch == "!" and self.text.startswith("(", self.pos + 1):
            self.pos += 1
            return Not(self.group())
        if ch == "(":
            return self.group()
        return self.comparison()

    def group(self) -> Node:
        self.pos += 1  # "("
        node = self.or_()
        self.ws()
        if self.peek() != ")":
            raise self.fail("expected ')'")
        self.pos += 1
        return node

    def comparison(self) -> Cmp:
        match = _FIELD.match(self.text, self.pos)
        if not match:
            if not self.peek():
                raise self.fail("expected a field name, found the end of the filter")
            raise self.fail(f"expected a field name, found {self.peek()!r}")
        name = match.group(0)
        if name not in self.fields:
            raise FQLError(
                f"invalid filter field {name!r}; allowed fields: {', '.join(sorted(self.fields))}"
            )
        self.pos = match.end()
        self.ws()
        if self.peek() != ":":
            raise self.fail(f"expected ':' after field {name!r}")
        self.pos += 1
        self.ws()
        op = "="
        if self.text.startswith(_WILDCARD_OPS, self.pos):
            self.pos += 1  # "field:*'pattern'": the "*" operator means "=" with wildcards
        else:
            for candidate in _OPS:
                if self.text.startswith(candidate, self.pos):
                    op = {"!": "!=", "~": "~", "!~": "!~"}.get(candidate, candidate)
                    self.pos += len(candidate)
                    break
        self.ws()
        values = self.values()
        if op in (">", ">=", "<", "<=") and len(values) != 1:
            raise self.fail(f"operator {op!r} takes a single value")
        return Cmp(name, op, values)

    def values(self) -> tuple[str, ...]:
        if self.peek() == "[":
            self.pos += 1
            items = [self.scalar()]
            while True:
                self.ws()
                ch = self.peek()
                if ch == ",":
                    self.pos += 1
                    items.append(self.scalar())
                elif ch == "]":
                    self.pos += 1
                    return tuple(items)
                else:
                    raise self.fail("expected ',' or ']' in a value list")
        return (self.scalar(),)

    def scalar(self) -> str:
        self.ws()
        ch = self.peek()
        if ch in ("'", '"'):
            quote = ch
            self.pos += 1
            out: list[str] = []
            while True:
                if self.pos >= len(self.text):
                    raise self.fail("unterminated quoted value")
                c = self.text[self.pos]
                if c == "\\" and self.pos + 1 < len(self.text):
                    escaped = self.text[self.pos + 1]
                    out.append(LITERAL_STAR if escaped == "*" else escaped)
                    self.pos += 2
                    continue
                self.pos += 1
                if c == quote:
                    return "".join(out)
                out.append(c)
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in _BARE_STOP:
            self.pos += 1
        if self.pos == start:
            found = repr(ch) if ch else "the end of the filter"
            raise self.fail(f"expected a value, found {found}")
        return self.text[start : self.pos]


def parse(text: str, fields: Iterable[str]) -> Node | None:
    """Parse ``text`` (``None`` for an empty filter); raise :class:`FQLError` if malformed.

    Example::

        parse("case.status:'open'+case.type:!'fc:contact'", {"case.status", "case.type"})
    """
    if not text or not text.strip():
        return None
    return _Parser(plain_text(text), fields).parse()


Resolver = Callable[[str], Sequence[str]]


def _glob(value: str, pattern: str) -> bool:
    """Whether ``value`` matches ``pattern``, whose every ``*`` is a wildcard (a
    ``LITERAL_STAR`` is a plain star), comparing casefolded text.

    Linear, with no backtracking: the first piece must be a prefix, the last a suffix, and
    the pieces between are found in order, each at its leftmost place (which is never worse).
    """
    text = value.casefold()
    first, *middle, last = (_literal(part).casefold() for part in pattern.split("*"))
    end = len(text) - len(last)
    if end < len(first) or not text.startswith(first) or not text.endswith(last):
        return False
    pos = len(first)
    for piece in middle:
        found = text.find(piece, pos, end)
        if found < 0:
            return False
        pos = found + len(piece)
    return True


def _is_time_field(field: str) -> bool:
    return field.endswith(("created_time", "last_modified_time"))


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _literal(pattern: str) -> str:
    return pattern.replace(LITERAL_STAR, "*")


def _eq(field: str, value: str, pattern: str) -> bool:
    if "*" in pattern:
        return _glob(value, pattern)
    pattern = _literal(pattern)
    if value.casefold() == pattern.casefold():
        return True
    if _is_time_field(field):
        a, b = parse_instant_or_none(value), parse_instant_or_none(pattern)
        return a is not None and a == b
    return False


def _contains(value: str, pattern: str) -> bool:
    if "*" in pattern:
        return _glob(value, f"*{pattern}*")
    return _literal(pattern).casefold() in value.casefold()


def _order(field: str, op: str, value: str, bound: str) -> bool:
    bound = _literal(bound)
    left: float | str | None
    right: float | str | None
    if _is_time_field(field):
        left, right = parse_instant_or_none(value), parse_instant(bound)
    else:
        num = _as_number(bound)
        if num is not None:
            left, right = _as_number(value), num
        else:
            left, right = value.casefold(), bound.casefold()
    if left is None:
        return False
    if op == ">":
        return left > right  # type: ignore[operator]
    if op == ">=":
        return left >= right  # type: ignore[operator]
    if op == "<":
        return left < right  # type: ignore[operator]
    return left <= right  # type: ignore[operator]


def check_times(node: Node | None) -> None:
    """Raise :class:`FQLError` if a range comparison on a time field has an unparseable bound."""
    if node is None:
        return
    if isinstance(node, Cmp):
        if node.op in (">", ">=", "<", "<=") and _is_time_field(node.field):
            try:
                parse_instant(node.values[0])
            except (ValueError, OverflowError):
                raise FQLError(
                    f"invalid timestamp {node.values[0]!r} for field {node.field!r}"
                ) from None
        return
    if isinstance(node, Not):
        check_times(node.item)
        return
    for item in node.items:
        check_times(item)


def _match_cmp(node: Cmp, resolve: Resolver) -> bool:
    values = resolve(node.field)
    op = node.op
    if node.field == "_all" and op in ("=", "!="):
        op = "~" if op == "=" else "!~"
    if op in ("=", "!="):
        hit = any(_eq(node.field, v, p) for v in values for p in node.values)
        return hit if op == "=" else not hit
    if op in ("~", "!~"):
        hit = any(_contains(v, p) for v in values for p in node.values)
        return hit if op == "~" else not hit
    return any(_order(node.field, op, v, node.values[0]) for v in values)


def evaluate(node: Node | None, resolve: Resolver) -> bool:
    """Whether the document behind ``resolve`` (field name -> its values) matches ``node``."""
    if node is None:
        return True
    if isinstance(node, Cmp):
        return _match_cmp(node, resolve)
    if isinstance(node, And):
        return all(evaluate(item, resolve) for item in node.items)
    if isinstance(node, Or):
        return any(evaluate(item, resolve) for item in node.items)
    return not evaluate(node.item, resolve)
