"""Retries with capped exponential backoff and full jitter, for retryable errors only (on
tenacity's retry loop).

Full jitter (a uniform delay between 0 and the capped exponential step) spreads the retries of
many callers hit by the same carrier outage, so they do not return in lockstep. Whether an error
is retryable is the caller's decision (`should_retry`): a rejected address is not, a timeout on
an idempotent call is.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from services.carrier_adapter.adapters.reliability.clock import Clock

__all__ = ["RetryPolicy", "retry"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3  # including the first call
    base_delay: float = 0.2
    multiplier: float = 2.0
    max_delay: float = 5.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_delay < 0 or self.multiplier < 1:
            raise ValueError("invalid retry policy")

    def ceiling(self, retry_number: int) -> float:
        """Upper bound of the delay before retry `retry_number` (1 for the first retry)."""
        return min(self.max_delay, self.base_delay * self.multiplier ** (retry_number - 1))

    def delay(self, retry_number: int, rng: random.Random) -> float:
        return rng.uniform(0.0, self.ceiling(retry_number))


# Called before each retry sleep with (retry number, the error, the delay chosen).
RetryHook = Callable[[int, BaseException, float], None]


async def retry(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    should_retry: Callable[[BaseException], bool],
    clock: Clock,
    rng: random.Random,
    on_retry: RetryHook | None = None,
) -> T:
    """`call()` until it succeeds, fails with an error `should_retry` refuses, or has been tried
    `policy.max_attempts` times; then its last error is raised unchanged.

    The loop is tenacity's; the waits are ours (`policy.delay` on the caller's `rng`, so a seeded
    test replays them) and are slept on `clock`, so a manual clock decides when a retry happens.
    """

    def wait(state: RetryCallState) -> float:
        return policy.delay(state.attempt_number, rng)

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None and state.next_action is not None:
            error = state.outcome.exception()
            assert error is not None
            on_retry(state.attempt_number, error, state.next_action.sleep)

    retrying = AsyncRetrying(
        sleep=clock.sleep,
        stop=stop_after_attempt(policy.max_attempts),
        wait=wait,
        # Only errors (never a cancellation) are considered for a retry.
        retry=retry_if_exception(
            lambda error: isinstance(error, Exception) and should_retry(error)
        ),
        before_sleep=before_sleep,
        reraise=True,
    )

    async def attempt() -> T:
        # A coroutine function, so tenacity awaits it (`call` may be a lambda returning one).
        return await call()

    result: T = await retrying(attempt)
    return result
