"""Rate-limit gate and retry policy: pure functions with an injected clock, no sleeping; the
pipeline's 429 handling on trio's mock clock (time jumps ahead whenever every task waits)."""

from __future__ import annotations

import email.utils
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator

import anyio
import anyio.lowlevel
import httpx
import pytest
import respx
from trio.testing import MockClock

from falcon_mc import AsyncMessageCenter, RateLimit, RateLimitError
from falcon_mc._ratelimit import RateLimitGate
from falcon_mc._retry import Failure, RetryPolicy, should_retry
from falcon_mc.models import parse_retry_after

from .conftest import SECRET, envelope


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


def test_a_snapshot_older_than_the_window_no_longer_paces() -> None:
    # a busy minute ended with 2 of 600 left; after a minute idle the budget is whole again
    clock = Clock()
    gate = RateLimitGate(low_water=10, clock=clock)
    gate.record(snapshot(600, 2))
    seen = [gate.pacing]
    clock.now += 59.9
    seen.append(gate.pacing)
    clock.now += 0.2
    seen.append(gate.pacing)
    assert seen == [True, True, False]
    assert [gate.delay() for _ in range(3)] == [0.0] * 3


async def test_turns_of_cancelled_tasks_are_not_waited_for() -> None:
    gate = RateLimitGate(low_water=4)
    gate.record(snapshot(60, 0))  # pacing: one turn a second
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(gate.wait)  # turns now, +1 s ... +4 s
            await anyio.wait_all_tasks_blocked()
            scope.cancel()  # the four sleeping callers time out
    delays: list[float] = []
    original = gate.delay

    def spy(in_flight: int = 0) -> float:
        delays.append(original(in_flight))
        return delays[-1]

    gate.delay = spy  # type: ignore[method-assign]
    with anyio.move_on_after(0):
        await gate.wait()
    # nobody waits for the booked turns any more: one interval at most, not 5 s
    assert 0.5 < delays[0] <= 1.0


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


# --------------------------------------------------------------------------- X-RateLimit-RetryAfter

SERVER = 1_700_000_000.0  # the server's clock; Date headers carry it in whole seconds
QUERY = "/message-center/queries/cases/v1"


def http_date(epoch: float) -> str:
    return email.utils.formatdate(epoch, usegmt=True)


@pytest.mark.parametrize("skew", [10.0, -600.0], ids=["local-ahead", "local-behind"])
@pytest.mark.parametrize(
    "hint",
    [
        {"X-RateLimit-RetryAfter": str(int((SERVER + 2) * 1000))},  # ms epoch (spec)
        {"X-RateLimit-RetryAfter": str(int(SERVER + 2))},  # s epoch (other clients)
        {"Retry-After": http_date(SERVER + 2)},
    ],
    ids=["ms-epoch", "s-epoch", "retry-after-date"],
)
def test_an_absolute_retry_after_is_read_on_the_server_clock(
    hint: dict[str, str], skew: float
) -> None:
    headers = {"Date": http_date(SERVER), **hint}
    assert parse_retry_after(headers, now_epoch=SERVER + skew) == pytest.approx(2.0)


def test_the_local_clock_is_used_within_the_date_second_or_without_a_date() -> None:
    sub_second = {"Date": http_date(SERVER),
                  "X-RateLimit-RetryAfter": str(int((SERVER + 0.6) * 1000))}
    assert parse_retry_after(sub_second, now_epoch=SERVER + 0.4) == pytest.approx(0.2)
    for date in ({}, {"Date": "not a date"}):
        headers = {**date, "X-RateLimit-RetryAfter": str(int((SERVER + 3) * 1000))}
        assert parse_retry_after(headers, now_epoch=SERVER) == pytest.approx(3.0)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-RateLimit-RetryAfter": str(int((SERVER - 10) * 1000))},  # local clock ahead
        {"X-RateLimit-RetryAfter": str(int(SERVER - 10))},
        {"X-RateLimit-RetryAfter": str(int(SERVER)), "Date": http_date(SERVER)},  # rounded
        {"X-RateLimit-RetryAfter": "0"},
        {"X-RateLimit-RetryAfter": "-4"},
        {"Retry-After": http_date(SERVER - 5)},
    ],
    ids=["ms-past", "s-past", "rounded-to-now", "zero", "negative", "retry-after-past"],
)
def test_a_retry_after_already_past_is_no_hint(headers: dict[str, str]) -> None:
    assert parse_retry_after(headers, now_epoch=SERVER) is None


def test_a_zero_server_wait_gets_the_jittered_backoff() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    rng = random.Random(3)
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0)]:
        for hint in (0.0, -1.0):
            assert ceiling / 2 <= policy.delay(attempt, retry_after=hint, rng=rng) <= ceiling


def client(router: respx.MockRouter, **kwargs: object) -> AsyncMessageCenter:
    kwargs.setdefault("retry_base_delay", 0)
    return AsyncMessageCenter(
        client_id="cid-123", client_secret=SECRET,
        transport=httpx.MockTransport(router.async_handler), **kwargs,  # type: ignore[arg-type]
    )


def on_mock_clock(main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main`` under trio with a clock that jumps ahead whenever every task waits."""
    anyio.run(main, backend="trio", backend_options={"clock": MockClock(autojump_threshold=0)})


def replies(
    sent: list[float], responses: Iterator[httpx.Response]
) -> Callable[[httpx.Request], httpx.Response]:
    """A respx side effect: note when each request came (mock clock), answer the next reply."""

    def reply(request: httpx.Request) -> httpx.Response:
        sent.append(anyio.current_time())
        return next(responses)

    return reply


def too_many(**headers: str) -> httpx.Response:
    errors = [{"code": 429, "message": "slow down"}]
    return httpx.Response(429, headers=headers, json=envelope(errors=errors))


def ok() -> httpx.Response:
    return httpx.Response(200, json=envelope(["c1"]))


@pytest.mark.parametrize("skew", [10.0, -600.0], ids=["local-ahead", "local-behind"])
def test_429_retries_wait_what_the_server_asked_despite_clock_skew(
    router: respx.MockRouter, skew: float
) -> None:
    sent: list[float] = []

    def refuse() -> Iterator[httpx.Response]:
        while True:
            server = float(int(time.time() - skew))  # the server's clock, a whole second
            yield too_many(Date=http_date(server),
                           **{"X-RateLimit-RetryAfter": str(int((server + 2) * 1000))})

    router.get(QUERY).mock(side_effect=replies(sent, refuse()))

    async def main() -> None:
        async with client(router, max_retries=2) as mc:
            with pytest.raises(RateLimitError) as info:
                await mc.query_cases()
        assert info.value.retry_after == pytest.approx(2.0)

    on_mock_clock(main)
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    assert gaps == pytest.approx([2.0, 2.0])


def test_a_past_retry_after_falls_back_to_the_backoff(router: respx.MockRouter) -> None:
    sent: list[float] = []
    past = str(int((time.time() - 30) * 1000))  # the local clock is ahead, and no Date
    router.get(QUERY).mock(side_effect=replies(
        sent, iter([too_many(**{"X-RateLimit-RetryAfter": past}) for _ in range(3)] + [ok()])
    ))

    async def main() -> None:
        async with client(router, retry_base_delay=1.0) as mc:
            assert (await mc.query_cases()).ids == ["c1"]

    on_mock_clock(main)
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    assert len(gaps) == 3
    for gap, ceiling in zip(gaps, [1.0, 2.0, 4.0], strict=True):
        assert ceiling / 2 <= gap <= ceiling


@pytest.mark.parametrize(
    ("max_retries", "hints"),
    [(0, [{"X-RateLimit-RetryAfter": "30"}]),
     (1, [{}, {"X-RateLimit-RetryAfter": "30"}])],
    ids=["no-retries", "retries-exhausted"],
)
def test_the_last_429_of_a_call_holds_every_task_of_the_client_back(
    router: respx.MockRouter, max_retries: int, hints: list[dict[str, str]]
) -> None:
    sent: list[float] = []
    refusals = [too_many(**hint) for hint in hints]
    router.get(QUERY).mock(side_effect=replies(sent, iter([*refusals, ok()])))

    async def main() -> None:
        async with client(router) as mc:
            with pytest.raises(RateLimitError):
                await mc.with_options(max_retries=max_retries).query_cases()
            refused = anyio.current_time()
            assert (await mc.query_cases()).ids == ["c1"]  # another call, right after
            assert sent[-1] - refused == pytest.approx(30.0)

    on_mock_clock(main)


def test_a_429_retry_logs_the_wait_it_takes(
    router: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    sent: list[float] = []
    router.get(QUERY).mock(side_effect=replies(
        sent, iter([too_many(**{"X-RateLimit-RetryAfter": "2.5"}), ok()])
    ))
    caplog.set_level(logging.DEBUG, logger="falcon_mc")

    async def main() -> None:
        async with client(router) as mc:
            await mc.query_cases()

    on_mock_clock(main)
    assert sent[1] - sent[0] == pytest.approx(2.5)
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert retries == ["QueryCasesIdsByFilter: attempt 1 failed (rate_limited), retrying in 2.50s"]
