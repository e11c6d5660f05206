"""Retries with capped exponential backoff and full jitter, for retryable errors only.

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

from services.carrier_adapter.reliability.clock import Clock

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
    attempt = 1
    while True:
        try:
            return await call()
        except Exception as error:
            if attempt >= policy.max_attempts or not should_retry(error):
                raise
            delay = policy.delay(attempt, rng)
            if on_retry is not None:
                on_retry(attempt, error, delay)
            await clock.sleep(delay)
            attempt += 1
