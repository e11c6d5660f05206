"""Retry with backoff, the circuit breaker and deadlines, driven by a manual clock (and the
deadline on the system clock, which takes the event loop's timer)."""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest

from services.carrier_adapter.adapters.reliability.breaker import (
    BreakerPolicy,
    CircuitBreaker,
    CircuitState,
)
from services.carrier_adapter.adapters.reliability.clock import SystemClock
from services.carrier_adapter.adapters.reliability.deadline import DeadlineExpired, with_deadline
from services.carrier_adapter.adapters.reliability.retry import RetryPolicy, retry
from services.carrier_adapter.domain.errors import CarrierRejected, CarrierUnavailable, is_retryable
from tests.carrier_adapter.fakes import ManualClock


class Script:
    """An operation that fails with the given errors in turn, then returns "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def down(committed: bool = False) -> CarrierUnavailable:
    return CarrierUnavailable("ups", "HTTP 503", maybe_committed=committed)


# ---- retry -------------------------------------------------------------------------------


def test_backoff_ceiling_grows_exponentially_and_caps() -> None:
    policy = RetryPolicy(max_attempts=6, base_delay=0.5, multiplier=2.0, max_delay=3.0)
    assert [policy.ceiling(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_full_jitter_stays_within_the_ceiling_and_varies() -> None:
    policy = RetryPolicy(base_delay=1.0, multiplier=2.0, max_delay=10.0)
    rng = random.Random(5)
    delays = [policy.delay(3, rng) for _ in range(200)]
    assert all(0.0 <= d <= 4.0 for d in delays)
    assert len(set(delays)) > 100


async def test_retries_retryable_errors_with_backoff_then_succeeds() -> None:
    clock = ManualClock(autojump=True)
    operation = Script(down(), down())
    seen: list[int] = []

    result = await retry(
        operation,
        RetryPolicy(max_attempts=3, base_delay=1.0, multiplier=2.0, max_delay=10.0),
        should_retry=is_retryable,
        clock=clock,
        rng=random.Random(1),
        on_retry=lambda number, error, delay: seen.append(number),
    )

    assert result == "ok"
    assert operation.calls == 3
    assert seen == [1, 2]
    assert len(clock.sleeps) == 2
    assert 0 <= clock.sleeps[0] <= 1.0 and 0 <= clock.sleeps[1] <= 2.0


async def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    operation = Script(down(), down(), down(), down())
    with pytest.raises(CarrierUnavailable):
        await retry(
            operation,
            RetryPolicy(max_attempts=3),
            should_retry=is_retryable,
            clock=ManualClock(autojump=True),
            rng=random.Random(1),
        )
    assert operation.calls == 3


async def test_does_not_retry_a_rejection() -> None:
    clock = ManualClock(autojump=True)
    operation = Script(CarrierRejected("ups", ["bad address"]))
    with pytest.raises(CarrierRejected):
        await retry(
            operation,
            RetryPolicy(max_attempts=5),
            should_retry=is_retryable,
            clock=clock,
            rng=random.Random(1),
        )
    assert operation.calls == 1
    assert clock.sleeps == []


async def test_retry_waits_on_the_clock_not_on_real_time() -> None:
    clock = ManualClock()  # sleeps park until the test advances time
    operation = Script(down())
    task = asyncio.ensure_future(
        retry(
            operation,
            RetryPolicy(max_attempts=2, base_delay=5.0, max_delay=5.0),
            should_retry=is_retryable,
            clock=clock,
            rng=random.Random(1),
        )
    )
    await clock.sleepers(1)
    assert operation.calls == 1 and not task.done()

    clock.advance(5.0)

    assert await task == "ok"
    assert operation.calls == 2


async def test_waits_are_the_policys_delays_drawn_in_order_from_the_callers_rng() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=1.0, multiplier=2.0, max_delay=10.0)
    clock = ManualClock(autojump=True)
    hooked: list[tuple[int, float]] = []
    rng = random.Random(3)

    with pytest.raises(CarrierUnavailable):
        await retry(
            Script(down(), down(), down()),
            policy,
            should_retry=is_retryable,
            clock=clock,
            rng=rng,
            on_retry=lambda number, error, delay: hooked.append((number, delay)),
        )

    replay = random.Random(3)
    expected = [policy.delay(1, replay), policy.delay(2, replay)]
    assert clock.sleeps == expected
    assert hooked == [(1, expected[0]), (2, expected[1])]
    # The last failure draws a delay too before giving up (as the tenacity loop did), so the
    # shared rng goes on exactly where a seeded replay expects it.
    policy.delay(3, replay)
    assert rng.random() == replay.random()


async def test_a_cancellation_is_never_retried() -> None:
    calls = 0

    async def cancelled() -> str:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await retry(
            cancelled,
            RetryPolicy(max_attempts=3),
            should_retry=lambda _: True,
            clock=ManualClock(autojump=True),
            rng=random.Random(1),
        )
    assert calls == 1


# ---- circuit breaker -----------------------------------------------------------------------


def breaker(clock: ManualClock, **policy: int | float) -> tuple[CircuitBreaker, list[CircuitState]]:
    changes: list[CircuitState] = []
    made = CircuitBreaker(
        "ups/ups_east",
        BreakerPolicy(**policy),  # type: ignore[arg-type]
        clock,
        on_state_change=lambda name, state: changes.append(state),
    )
    return made, changes


def state_of(cb: CircuitBreaker) -> CircuitState:
    # A function, not the property inline: mypy would narrow the property across time moves.
    return cb.state


def fail(cb: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        assert cb.try_acquire()
        cb.record_failure()


def test_opens_after_consecutive_failures_and_fails_fast() -> None:
    clock = ManualClock()
    cb, changes = breaker(clock, failure_threshold=3, open_seconds=30)

    fail(cb, 2)
    assert state_of(cb) is CircuitState.CLOSED
    fail(cb, 1)

    assert state_of(cb) is CircuitState.OPEN
    assert not cb.try_acquire()
    assert cb.retry_after() == 30.0
    assert changes == [CircuitState.OPEN]


def test_a_success_or_a_healthy_refusal_resets_the_failure_run() -> None:
    clock = ManualClock()
    cb, _ = breaker(clock, failure_threshold=3)
    fail(cb, 2)
    assert cb.try_acquire()
    cb.record_success()
    fail(cb, 2)
    assert cb.try_acquire()
    cb.release()  # the carrier answered (a 400): it is healthy
    fail(cb, 2)
    assert state_of(cb) is CircuitState.CLOSED


def test_half_open_after_the_wait_then_closes_on_successful_probes() -> None:
    clock = ManualClock()
    cb, changes = breaker(
        clock, failure_threshold=1, open_seconds=30, half_open_max_calls=1, success_threshold=2
    )
    fail(cb, 1)
    clock.advance(29.9)
    assert state_of(cb) is CircuitState.OPEN
    clock.advance(0.1)
    assert state_of(cb) is CircuitState.HALF_OPEN

    assert cb.try_acquire()
    assert not cb.try_acquire()  # one probe at a time
    cb.record_success()
    assert state_of(cb) is CircuitState.HALF_OPEN  # needs two good probes
    assert cb.try_acquire()
    cb.record_success()

    assert state_of(cb) is CircuitState.CLOSED
    assert changes == [CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED]


def test_a_failed_probe_reopens_for_another_full_wait() -> None:
    clock = ManualClock()
    cb, changes = breaker(clock, failure_threshold=1, open_seconds=10)
    fail(cb, 1)
    clock.advance(10)
    assert cb.try_acquire()
    cb.record_failure()

    assert state_of(cb) is CircuitState.OPEN
    assert cb.retry_after() == 10.0
    assert changes == [CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.OPEN]


def test_a_released_probe_frees_its_slot() -> None:
    clock = ManualClock()
    cb, _ = breaker(clock, failure_threshold=1, open_seconds=1)
    fail(cb, 1)
    clock.advance(1)
    assert cb.try_acquire()
    cb.release()
    assert cb.try_acquire()


def test_breaker_policy_validation() -> None:
    with pytest.raises(ValueError):
        BreakerPolicy(failure_threshold=0)
    with pytest.raises(ValueError):
        BreakerPolicy(open_seconds=0)


# ---- deadline ------------------------------------------------------------------------------


async def test_call_finishing_first_returns_its_result() -> None:
    assert await with_deadline(Script(), 5.0, ManualClock()) == "ok"


async def test_call_errors_pass_through_unchanged() -> None:
    with pytest.raises(CarrierRejected):
        await with_deadline(Script(CarrierRejected("ups", ["no"])), 5.0, ManualClock())


async def test_deadline_expires_when_the_clock_passes_it_and_cancels_the_call() -> None:
    clock = ManualClock()
    never = asyncio.Event()
    cancelled = asyncio.Event()

    async def hangs() -> str:
        try:
            await never.wait()
        finally:
            cancelled.set()
        return "late"

    task = asyncio.ensure_future(with_deadline(hangs, 10.0, clock))
    await clock.sleepers(1)
    clock.advance(9.9)
    await asyncio.sleep(0)
    assert not task.done()

    clock.advance(0.1)

    with pytest.raises(DeadlineExpired):
        await task
    assert cancelled.is_set()


# ---- deadline on the system clock (the event loop's timer) ------------------------------------


async def test_system_clock_deadline_returns_the_result_and_passes_errors_through() -> None:
    assert await with_deadline(Script(), 5.0, SystemClock()) == "ok"
    with pytest.raises(CarrierRejected):
        await with_deadline(Script(CarrierRejected("ups", ["no"])), 5.0, SystemClock())

    async def own_timeout() -> str:
        raise TimeoutError("the call's own socket timeout")

    # A TimeoutError the call raises itself is the call's error, not our deadline.
    with pytest.raises(TimeoutError, match="own socket timeout"):
        await with_deadline(own_timeout, 5.0, SystemClock())


async def test_system_clock_deadline_expires_and_cancels_the_call() -> None:
    cancelled = asyncio.Event()

    async def hangs() -> str:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        return "late"

    with pytest.raises(DeadlineExpired) as raised:
        await with_deadline(hangs, 0.05, SystemClock())
    assert raised.value.timeout_seconds == 0.05
    assert cancelled.is_set()
    # The caller's task is not left with a pending cancellation.
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0


async def test_system_clock_deadline_wins_over_what_the_call_does_while_unwinding() -> None:
    async def fails_late() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise CarrierRejected("ups", ["late"]) from None
        return "never"

    async def swallows() -> str:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        return "late"

    with pytest.raises(DeadlineExpired):
        await with_deadline(fails_late, 0.05, SystemClock())
    with pytest.raises(DeadlineExpired):
        await with_deadline(swallows, 0.05, SystemClock())


async def test_system_clock_deadline_lets_an_outside_cancellation_through() -> None:
    started = asyncio.Event()

    async def hangs() -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    task = asyncio.ensure_future(with_deadline(hangs, 10.0, SystemClock()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
