"""Client-wide rate-limit state: the last ``X-RateLimit-*`` snapshot and a shared gate.

Every request waits on the gate before it is sent. The gate does two things:

* after a 429 it holds a "not before" deadline that every task honours (one wait shared by all
  tasks, not one per task: no thundering herd when it lifts, since tasks then pass one slot at a
  time while pacing is on);
* when the server says the minute's budget is nearly spent (``X-RateLimit-Remaining`` at or below
  a low-water mark), it spaces requests at the sustained rate ``60 / X-RateLimit-Limit`` seconds
  apart, so that few requests are in flight when the budget runs out. It does not prevent that:
  the server's sliding minute refills only as its requests age out, so a client that keeps
  calling still meets a 429 (one, whose wait every task shares).

The budget is a sliding minute, so a snapshot older than :data:`WINDOW` says nothing any more:
it no longer turns pacing on. Turns booked by tasks that were then cancelled are not kept
waiting for: when no task is waiting, the next turn is at most one interval away.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from .models import RateLimit

__all__ = ["WINDOW", "RateLimitGate"]

#: Seconds of the server's sliding rate-limit window (``X-RateLimit-Limit`` is per minute).
WINDOW = 60.0


class RateLimitGate:
    """Shared by every task of one client (and of its ``with_options`` copies)."""

    def __init__(
        self, *, low_water: int = 16, clock: Callable[[], float] = anyio.current_time
    ) -> None:
        self._clock = clock
        self._low_water = low_water
        self._not_before = 0.0
        self._next_slot = 0.0
        self._recorded_at = 0.0
        self._sleepers = 0
        self.snapshot: RateLimit | None = None

    @property
    def pacing(self) -> bool:
        """Whether requests are currently spaced out because the budget is nearly spent."""
        return self._pacing(0)

    def _pacing(self, in_flight: int) -> bool:
        snap = self.snapshot
        return (
            snap is not None
            and snap.limit is not None
            and snap.limit > 0
            and snap.remaining is not None
            and snap.remaining - in_flight <= self._low_water
            and self._clock() - self._recorded_at < WINDOW
        )

    def record(self, snapshot: RateLimit | None) -> None:
        """Remember the newest snapshot of the rate-limit headers."""
        if snapshot is not None:
            self.snapshot = snapshot
            self._recorded_at = self._clock()

    def block_for(self, seconds: float) -> None:
        """Hold every task back for ``seconds`` from now (a 429 was seen)."""
        deadline = self._clock() + max(seconds, 0.0)
        self._not_before = max(self._not_before, deadline)

    def delay(self, in_flight: int = 0) -> float:
        """Reserve this task's turn and return how long it must wait for it.

        ``in_flight`` requests already sent count against the remaining budget: the last reply's
        ``X-RateLimit-Remaining`` does not know about them yet.
        """
        now = self._clock()
        start = max(now, self._not_before)
        snap = self.snapshot
        if snap is not None and snap.limit and self._pacing(in_flight):
            start = max(start, self._next_slot)
            self._next_slot = start + WINDOW / snap.limit
        return start - now

    async def wait(self, in_flight: int = 0) -> None:
        """Wait until this task may send (no-op when there is no back-off or pacing).

        If a 429 moves the shared deadline while this task sleeps, it takes a new turn after the
        deadline (spaced like the others) instead of waking with everyone at once.
        """
        snap = self.snapshot
        if self._sleepers == 0 and snap is not None and snap.limit:
            # nobody waits for a turn: turns booked further ahead belonged to cancelled tasks
            self._next_slot = min(self._next_slot, self._clock() + WINDOW / snap.limit)
        while (delay := self.delay(in_flight)) > 0:
            deadline = self._not_before
            self._sleepers += 1
            try:
                await anyio.sleep(delay)
            finally:
                self._sleepers -= 1
            if self._not_before <= deadline:
                return
