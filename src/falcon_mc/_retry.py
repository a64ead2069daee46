"""Retry policy: which failures are retried for which operations, and how long to wait; and
the per-call options that carry it with the timeouts.

Pure functions only; the request pipeline and the token manager apply them. Tests build a policy
with zero delays.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

import httpx

__all__ = ["Failure", "Options", "RetryPolicy", "should_retry"]


class Failure(Enum):
    """What went wrong on one attempt, as far as retrying is concerned."""

    NOT_SENT = "not_sent"
    """The request provably never reached the server (connect error, pool timeout)."""
    AMBIGUOUS = "ambiguous"
    """The server may have processed it (reset, read timeout, truncated reply)."""
    RATE_LIMITED = "rate_limited"
    """429: the server refused it without processing it."""
    SERVER_ERROR = "server_error"
    """5xx: the server failed; a write may or may not have been applied."""


def should_retry(failure: Failure, *, idempotent: bool) -> bool:
    """Whether a failure may be retried: writes only when the request was provably not processed.

    >>> should_retry(Failure.SERVER_ERROR, idempotent=False)
    False
    >>> should_retry(Failure.RATE_LIMITED, idempotent=False)
    True
    """
    if failure in (Failure.NOT_SENT, Failure.RATE_LIMITED):
        return True
    return idempotent


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait between attempts.

    ``base_delay`` doubles on every attempt up to ``max_delay``, with jitter;
    a server-supplied wait (``X-RateLimit-RetryAfter``) wins over the computed one but is
    capped at ``max_retry_after``. A server wait of zero or less is no hint (it comes from a
    time already past, see :func:`~falcon_mc.models.parse_retry_after`): the back-off applies,
    so retries do not all go out at once.
    """

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 120.0

    def delay(self, attempt: int, *, retry_after: float | None = None, rng: random.Random) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 0)."""
        if retry_after is not None and retry_after > 0:
            return min(retry_after, self.max_retry_after)
        ceiling = min(self.max_delay, self.base_delay * (2**attempt))
        return rng.uniform(ceiling / 2, ceiling) if ceiling > 0 else 0.0


@dataclass(frozen=True)
class Options:
    """Per-call settings: timeouts and retry policy (see ``AsyncMessageCenter.with_options``)."""

    timeout: httpx.Timeout
    policy: RetryPolicy
