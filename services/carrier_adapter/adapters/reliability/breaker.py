"""A circuit breaker per carrier: stop calling a carrier that keeps failing, probe, recover.

States and thresholds:
- CLOSED: calls pass. `failure_threshold` consecutive failures open the circuit.
- OPEN: calls fail fast with CircuitOpen for `open_seconds`.
- HALF_OPEN: after `open_seconds`, up to `half_open_max_calls` probe calls pass at once;
  `success_threshold` consecutive successes close the circuit, any failure re-opens it.
Only failures that say the carrier is sick count (timeouts, 5xx, connection errors): the caller
decides through `record_failure`, so a rejected address never trips the breaker.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass

from services.carrier_adapter.adapters.reliability.clock import Clock

__all__ = ["BreakerPolicy", "CircuitBreaker", "CircuitState"]


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerPolicy:
    failure_threshold: int = 5
    open_seconds: float = 30.0
    half_open_max_calls: int = 1
    success_threshold: int = 2

    def __post_init__(self) -> None:
        if min(self.failure_threshold, self.half_open_max_calls, self.success_threshold) < 1:
            raise ValueError("breaker thresholds must be at least 1")
        if self.open_seconds <= 0:
            raise ValueError("open_seconds must be positive")


StateListener = Callable[[str, CircuitState], None]


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        policy: BreakerPolicy,
        clock: Clock,
        on_state_change: StateListener | None = None,
    ) -> None:
        self.name = name
        self.policy = policy
        self._clock = clock
        self._on_state_change = on_state_change
        # Karrio calls finish on worker threads, and several coroutines share one breaker.
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._successes = 0
        self._opened_at = 0.0
        self._probes_in_flight = 0

    @property
    def state(self) -> CircuitState:
        with self._lock:
            self._advance()
            return self._state

    def retry_after(self) -> float:
        """Seconds until an open circuit lets a probe through (0 when not open)."""
        with self._lock:
            self._advance()
            if self._state is not CircuitState.OPEN:
                return 0.0
            return max(0.0, self._opened_at + self.policy.open_seconds - self._clock.monotonic())

    def try_acquire(self) -> bool:
        """Ask to make one call; every True must be followed by record_success/failure/release."""
        with self._lock:
            self._advance()
            if self._state is CircuitState.CLOSED:
                return True
            if (
                self._state is CircuitState.HALF_OPEN
                and self._probes_in_flight < self.policy.half_open_max_calls
            ):
                self._probes_in_flight += 1
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            if self._state is CircuitState.HALF_OPEN:
                self._probes_in_flight = max(0, self._probes_in_flight - 1)
                self._successes += 1
                if self._successes >= self.policy.success_threshold:
                    self._move(CircuitState.CLOSED)
            else:
                self._failures = 0

    def record_failure(self) -> None:
        with self._lock:
            if self._state is CircuitState.HALF_OPEN:
                self._probes_in_flight = max(0, self._probes_in_flight - 1)
                self._move(CircuitState.OPEN)
            elif self._state is CircuitState.CLOSED:
                self._failures += 1
                if self._failures >= self.policy.failure_threshold:
                    self._move(CircuitState.OPEN)

    def release(self) -> None:
        """The call ended with an outcome that says nothing about carrier health."""
        with self._lock:
            if self._state is CircuitState.HALF_OPEN:
                self._probes_in_flight = max(0, self._probes_in_flight - 1)
            else:
                # A healthy answer (even a refusal) breaks a run of consecutive failures.
                self._failures = 0

    def _advance(self) -> None:
        if (
            self._state is CircuitState.OPEN
            and self._clock.monotonic() - self._opened_at >= self.policy.open_seconds
        ):
            self._move(CircuitState.HALF_OPEN)

    def _move(self, state: CircuitState) -> None:
        self._state = state
        self._failures = 0
        self._successes = 0
        self._probes_in_flight = 0
        if state is CircuitState.OPEN:
            self._opened_at = self._clock.monotonic()
        if self._on_state_change is not None:
            self._on_state_change(self.name, state)
