"""Wrap any connector with a per-call deadline, retries with backoff and a circuit breaker.

Order per attempt: breaker check → deadline → the carrier call; retries wrap whole attempts, so
an open circuit stops a retry loop at once. What may be retried depends on the operation:
quotes and tracking are reads and retry on any retryable error; booking and voiding change state
at the carrier, so after a maybe-committed failure (a timeout after the request went out) they
are retried only when the carrier dedupes by our idempotency key.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from services.carrier_adapter.adapters.metrics import CarrierMetrics
from services.carrier_adapter.adapters.reliability.breaker import BreakerPolicy, CircuitBreaker
from services.carrier_adapter.adapters.reliability.clock import Clock
from services.carrier_adapter.adapters.reliability.deadline import DeadlineExpired, with_deadline
from services.carrier_adapter.adapters.reliability.retry import RetryPolicy, retry
from services.carrier_adapter.domain.connector import Capabilities, CarrierConnector
from services.carrier_adapter.domain.errors import (
    CarrierError,
    CarrierRejected,
    CarrierTimeout,
    CircuitOpen,
    is_retryable,
    maybe_committed,
)
from services.carrier_adapter.domain.model import (
    BookedLabel,
    CancelRequest,
    InboundWebhook,
    LabelRequest,
    RateQuote,
    RateRequest,
    TrackingResult,
    WebhookBatch,
)

__all__ = ["CallPolicy", "GuardedConnector"]

T = TypeVar("T")

_DEFAULT_TIMEOUTS = {
    "rate": 10.0,
    "book_label": 30.0,
    "cancel_label": 15.0,
    "track": 10.0,
    "find_label": 10.0,
}


@dataclass(frozen=True)
class CallPolicy:
    timeouts: Mapping[str, float] = field(default_factory=lambda: dict(_DEFAULT_TIMEOUTS))
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)

    def timeout(self, operation: str) -> float:
        return self.timeouts.get(operation, _DEFAULT_TIMEOUTS[operation])


class GuardedConnector:
    def __init__(
        self,
        inner: CarrierConnector,
        policy: CallPolicy,
        clock: Clock,
        rng: random.Random,
        metrics: CarrierMetrics | None = None,
    ) -> None:
        self.inner = inner
        self.policy = policy
        self._clock = clock
        self._rng = rng
        self._metrics = metrics
        self.breaker = CircuitBreaker(
            f"{inner.carrier}/{inner.account_id}",
            policy.breaker,
            clock,
            on_state_change=metrics.set_circuit_state if metrics else None,
        )

    @property
    def carrier(self) -> str:
        return self.inner.carrier

    @property
    def account_id(self) -> str:
        return self.inner.account_id

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    async def rate(self, request: RateRequest) -> list[RateQuote]:
        return await self._call("rate", lambda: self.inner.rate(request), is_retryable)

    async def book_label(self, request: LabelRequest) -> BookedLabel:
        return await self._call(
            "book_label", lambda: self.inner.book_label(request), self._state_change_retryable
        )

    async def cancel_label(self, request: CancelRequest) -> None:
        await self._call(
            "cancel_label", lambda: self.inner.cancel_label(request), self._state_change_retryable
        )

    async def find_label(self, idempotency_key: str) -> BookedLabel | None:
        # A lookup changes nothing at the carrier: retried like a read.
        return await self._call(
            "find_label", lambda: self.inner.find_label(idempotency_key), is_retryable
        )

    async def track(self, tracking_number: str) -> TrackingResult:
        return await self._call("track", lambda: self.inner.track(tracking_number), is_retryable)

    def parse_webhook(self, webhook: InboundWebhook) -> WebhookBatch:
        # Local CPU work on a body we already hold: no carrier to protect, nothing to retry.
        return self.inner.parse_webhook(webhook)

    async def aclose(self) -> None:
        """Close the inner connector's transport, when it keeps one open (an HTTP session)."""
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()

    def _state_change_retryable(self, error: BaseException) -> bool:
        if not is_retryable(error):
            return False
        return self.capabilities.idempotent_booking or not maybe_committed(error)

    async def _call(
        self,
        operation: str,
        call: Callable[[], Awaitable[T]],
        should_retry: Callable[[BaseException], bool],
    ) -> T:
        def on_retry(_: int, __: BaseException, ___: float) -> None:
            if self._metrics is not None:
                self._metrics.retries.labels(self.carrier, operation).inc()

        try:
            result = await retry(
                lambda: self._attempt(operation, call),
                self.policy.retry,
                should_retry=should_retry,
                clock=self._clock,
                rng=self._rng,
                on_retry=on_retry,
            )
        except Exception as error:
            self._count(operation, _outcome(error))
            raise
        self._count(operation, "ok")
        return result

    async def _attempt(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        if not self.breaker.try_acquire():
            raise CircuitOpen(self.carrier, self.breaker.retry_after())
        timeout = self.policy.timeout(operation)
        try:
            result = await with_deadline(call, timeout, self._clock)
        except DeadlineExpired:
            self.breaker.record_failure()
            raise CarrierTimeout(self.carrier, operation, timeout) from None
        except CarrierError as error:
            if error.retryable:
                self.breaker.record_failure()
            else:
                self.breaker.release()
            raise
        except BaseException:
            # Our own bug or a cancellation: says nothing about the carrier's health.
            self.breaker.release()
            raise
        self.breaker.record_success()
        return result

    def _count(self, operation: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.calls.labels(self.carrier, operation, outcome).inc()


def _outcome(error: BaseException) -> str:
    if isinstance(error, CircuitOpen):
        return "circuit_open"
    if isinstance(error, CarrierTimeout):
        return "timeout"
    if isinstance(error, CarrierRejected):
        return "rejected"
    if isinstance(error, CarrierError) and error.retryable:
        return "unavailable"
    return "error"
