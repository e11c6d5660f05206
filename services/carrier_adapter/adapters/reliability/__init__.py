"""Small reusable reliability parts: clock, deadlines, retries with backoff, circuit breaker.

Pure asyncio with an injected `Clock`, so tests drive time by hand and never wait on real time.
"""

from services.carrier_adapter.adapters.reliability.breaker import (
    BreakerPolicy,
    CircuitBreaker,
    CircuitState,
)
from services.carrier_adapter.adapters.reliability.clock import Clock, SystemClock
from services.carrier_adapter.adapters.reliability.deadline import with_deadline
from services.carrier_adapter.adapters.reliability.retry import RetryPolicy, retry

__all__ = [
    "BreakerPolicy",
    "CircuitBreaker",
    "CircuitState",
    "Clock",
    "RetryPolicy",
    "SystemClock",
    "retry",
    "with_deadline",
]
