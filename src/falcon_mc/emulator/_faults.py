"""Fault injection: rules per operation, fired at a rate, reproducible under a seed."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["FAULT_KINDS", "OPERATIONS", "EmulatorStats", "FaultKind", "FaultRule", "Faults"]

#: Operation ids a rule may name: the 11 Message Center operations and the two token endpoints.
OPERATIONS = frozenset(
    {
        "AggregateCases",
        "CaseAddActivity",
        "CaseAddAttachment",
        "CaseDownloadAttachment",
        "CreateCase",
        "CreateCaseV2",
        "GetCaseActivityByIds",
        "GetCaseEntitiesByIDs",
        "QueryActivityByCaseID",
        "QueryCasesIdsByFilter",
        "UpdateCase",
        "oauth2AccessToken",
        "oauth2RevokeToken",
    }
)

FaultKind = Literal[
    "status", "drop_before", "drop_after", "truncate", "slow_body", "rate_limit", "latency"
]

#: Every fault kind, in the order they are considered for one request.
FAULT_KINDS: tuple[FaultKind, ...] = (
    "latency",
    "drop_before",
    "rate_limit",
    "status",
    "drop_after",
    "truncate",
    "slow_body",
)


@dataclass
class FaultRule:
    """One fault-injection rule (made by :meth:`Faults.add`).

    * ``operation``: a spec operationId (``"GetCaseEntitiesByIDs"``...), ``"*"`` for the 11
      Message Center operations, ``"oauth2AccessToken"`` / ``"oauth2RevokeToken"`` for the
      token endpoints (which ``"*"`` leaves alone), or ``"oauth2"`` for both of them.
    * ``kind``: ``"status"`` (reply ``status`` with an error envelope, the request not processed),
      ``"drop_before"`` (close the connection before processing: no effect on state),
      ``"drop_after"`` (process, then close without replying), ``"truncate"`` (send the
      headers with the full ``Content-Length``, then ``fraction`` of the body, then close),
      ``"slow_body"`` (send the body in ``chunk_size`` pieces, ``delay`` seconds apart),
      ``"rate_limit"`` (a 429 with ``X-RateLimit-RetryAfter`` ``retry_after`` seconds ahead),
      ``"latency"`` (the reply leaves ``delay`` seconds later, on top of ``settings.latency``).
    * ``rate``: probability per matching request; ``count``: fire at most this many times.
    * ``fired``: how many times its fault was injected so far. A drawn fault that a reply of
      higher precedence pre-empts (a 401, a 429, a ``drop_before``...) is not counted, so a
      ``count=1`` rule still fires on the next matching request.

    Example::

        rule = emu.faults.add(operation="*", kind="status", status=503, rate=0.2)
        ...
        assert rule.fired > 0
    """

    operation: str = "*"
    kind: FaultKind = "status"
    rate: float = 1.0
    count: int | None = None
    status: int = 503
    delay: float = 0.05
    retry_after: float = 1.0
    fraction: float = 0.5
    chunk_size: int = 1024
    message: str | None = None
    fired: int = 0

    def matches(self, operation: str) -> bool:
        """Whether this rule applies to ``operation``."""
        if self.operation == "*":
            return not operation.startswith("oauth2")
        if self.operation == "oauth2":
            return operation.startswith("oauth2")
        return self.operation == operation

    @property
    def exhausted(self) -> bool:
        """Whether ``count`` is used up."""
        return self.count is not None and self.fired >= self.count


class Faults:
    """The fault rules of one emulator (``emu.faults``), with their own seeded random source.

    Example::

        emu.faults.seed(42)
        emu.faults.add(operation="QueryCasesIdsByFilter", kind="drop_before", count=1)
        emu.faults.add(kind="latency", delay=0.2, rate=0.5)
        emu.faults.clear()
    """

    def __init__(self, seed: int | None = None) -> None:
        self.rules: list[FaultRule] = []
        self._random = random.Random(seed)

    def seed(self, seed: int | None) -> None:
        """Reset the random source: the same requests then meet the same faults."""
        self._random = random.Random(seed)

    def add(
        self,
        operation: str = "*",
        kind: FaultKind = "status",
        *,
        status: int = 503,
        rate: float = 1.0,
        count: int | None = None,
        delay: float = 0.05,
        retry_after: float = 1.0,
        fraction: float = 0.5,
        chunk_size: int = 1024,
        message: str | None = None,
    ) -> FaultRule:
        """Add a rule and return it (see :class:`FaultRule` for the meaning of each argument)."""
        if operation not in OPERATIONS and operation not in ("*", "oauth2"):
            raise ValueError(
                f"unknown operation {operation!r}; expected '*', 'oauth2' or one of "
                + ", ".join(sorted(OPERATIONS))
            )
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within 0..1")
        if not 0.0 <= fraction < 1.0:
            raise ValueError("fraction must be within 0..1 (exclusive)")
        rule = FaultRule(
            operation=operation, kind=kind, rate=rate, count=count, status=status, delay=delay,
            retry_after=retry_after, fraction=fraction, chunk_size=max(1, chunk_size),
            message=message,
        )
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule."""
        self.rules.clear()

    def __len__(self) -> int:
        return len(self.rules)

    def draw(self, operation: str) -> dict[FaultKind, FaultRule]:
        """The rules drawn for one request of ``operation`` (at most one per kind).

        Every matching, not exhausted rule consumes one random number, drawn or not, so a run
        is reproducible for a given seed and request order. A drawn rule is not counted yet:
        :meth:`apply` counts it when its fault is actually injected (a 401 or a 429 may answer
        the request first).
        """
        drawn: dict[FaultKind, FaultRule] = {}
        for rule in list(self.rules):
            if not rule.matches(operation) or rule.exhausted:
                continue
            roll = self._random.random()
            if roll < rule.rate and rule.kind not in drawn:
                drawn[rule.kind] = rule
        return drawn

    @staticmethod
    def apply(rule: FaultRule | None) -> bool:
        """Count ``rule`` as fired if its ``count`` allows; whether its fault is to be injected.

        ``None`` (no rule drawn) is never applied. A rule drawn by concurrent requests is
        applied at most ``count`` times all the same.
        """
        if rule is None or rule.exhausted:
            return False
        rule.fired += 1
        return True


@dataclass
class EmulatorStats:
    """Counters an emulator keeps (``emu.stats``), for tests and benchmarks to observe.

    Example::

        assert emu.stats.requests["GetCaseEntitiesByIDs"] == 3
        assert emu.stats.faults["drop_after"] == 1
    """

    requests: Counter[str] = field(default_factory=Counter)
    """Requests per operation id (``"unknown"`` for unrouted ones)."""
    responses: Counter[int] = field(default_factory=Counter)
    """Replies per status code (dropped connections are not replies)."""
    faults: Counter[str] = field(default_factory=Counter)
    """Faults injected, per kind."""
    tokens_issued: int = 0
    tokens_revoked: int = 0
    rate_limited: int = 0
    """429 replies sent (budget exceeded or ``rate_limit`` faults)."""
    bytes_uploaded: int = 0
    bytes_downloaded: int = 0

    def reset(self) -> None:
        """Zero every counter."""
        self.requests.clear()
        self.responses.clear()
        self.faults.clear()
        self.tokens_issued = self.tokens_revoked = self.rate_limited = 0
        self.bytes_uploaded = self.bytes_downloaded = 0
