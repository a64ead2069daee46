"""Rate-limit gate and retry policy: pure functions with an injected clock, no sleeping."""

from __future__ import annotations

import random

import anyio
import anyio.lowlevel
import pytest

from falcon_mc import RateLimit
from falcon_mc._ratelimit import RateLimitGate
from falcon_mc._retry import Failure, RetryPolicy, should_retry


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def snapshot(limit: int, remaining: int) -> RateLimit:
    found = RateLimit.from_headers(
        {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining)}
    )
    assert found is not None
    return found


def test_no_delay_while_budget_is_plentiful() -> None:
    gate = RateLimitGate(low_water=10, clock=Clock())
    gate.record(snapshot(6000, 5000))
    assert not gate.pacing
    assert [gate.delay() for _ in range(5)] == [0.0] * 5


def test_pacing_spaces_requests_at_the_sustained_rate() -> None:
    clock = Clock()
    gate = RateLimitGate(low_water=10, clock=clock)
    gate.record(snapshot(600, 5))
    assert gate.pacing
    delays = [gate.delay() for _ in range(4)]
    assert delays == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_a_429_holds_every_task_back_once() -> None:
    clock = Clock()
    gate = RateLimitGate(low_water=10, clock=clock)
    gate.block_for(2.0)
    assert gate.delay() == pytest.approx(2.0)
    gate.block_for(1.0)  # a shorter wait never shortens the deadline
    assert gate.delay() == pytest.approx(2.0)
    clock.now += 2.0
    assert gate.delay() == 0.0


@pytest.mark.parametrize(
    ("failure", "idempotent", "expected"),
    [
        (Failure.NOT_SENT, False, True),
        (Failure.RATE_LIMITED, False, True),
        (Failure.SERVER_ERROR, False, False),
        (Failure.AMBIGUOUS, False, False),
        (Failure.SERVER_ERROR, True, True),
        (Failure.AMBIGUOUS, True, True),
    ],
)
def test_writes_retry_only_when_not_processed(
    failure: Failure, idempotent: bool, expected: bool
) -> None:
    assert should_retry(failure, idempotent=idempotent) is expected


def test_backoff_doubles_with_jitter_and_server_wait_wins() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=4.0, max_retry_after=30.0)
    rng = random.Random(1)
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (5, 4.0)]:
        delay = policy.delay(attempt, rng=rng)
        assert ceiling / 2 <= delay <= ceiling
    assert policy.delay(0, retry_after=7.5, rng=rng) == 7.5
    assert policy.delay(0, retry_after=1e6, rng=rng) == 30.0
    assert RetryPolicy(base_delay=0).delay(3, rng=rng) == 0.0


def test_requests_in_flight_count_against_the_remaining_budget() -> None:
    gate = RateLimitGate(low_water=4, clock=Clock())
    gate.record(snapshot(600, 10))
    assert gate.delay(in_flight=0) == 0.0  # 10 left, 0 in flight: no pacing yet
    assert gate.delay(in_flight=8) == 0.0  # first paced slot is now
    assert gate.delay(in_flight=8) == pytest.approx(0.1)


async def test_tasks_woken_by_a_moved_deadline_take_spaced_turns() -> None:
    gate = RateLimitGate(low_water=4)
    gate.record(snapshot(6000, 0))  # pacing: one turn every 10 ms
    turns: list[float] = []
    original = gate.delay

    def spy(in_flight: int = 0) -> float:
        delay = original(in_flight)
        turns.append(anyio.current_time() + delay)
        return delay

    gate.delay = spy  # type: ignore[method-assign]
    woke: list[float] = []

    async def task() -> None:
        await gate.wait()
        woke.append(anyio.current_time())

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(task)  # turns now, +10 ms, +20 ms
        await anyio.lowlevel.checkpoint()
        gate.block_for(0.05)  # a 429 moves the deadline while two of them sleep
        deadline = gate._not_before
    after = sorted(t for t in turns if t >= deadline)
    assert after == pytest.approx([deadline, deadline + 0.01])  # new turns, spaced, no herd
    late = sorted(woke)[1:]
    assert all(w >= t for w, t in zip(late, after, strict=True))  # no one went early
