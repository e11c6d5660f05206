"""carrier-adapter's own metrics, registered on the service's registry (kit ServiceMetrics).

Same approach as services/kit/metrics.py: nothing touches the global registry, so several
services (or tests) can live in one process. Label sets stay bounded: carrier, operation,
outcome and kind, never a carrier code or tracking number (those travel in the
CarrierCodeUnmapped event), since a pushed webhook could otherwise mint label values at will.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.carrier_adapter.adapters.reliability.breaker import CircuitState
from services.carrier_adapter.domain.model import UnmappedCode

__all__ = ["CarrierMetrics"]

_STATE_VALUE = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}


class CarrierMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.unmapped_codes = Counter(
            "crossdock_carrier_unmapped_codes",
            "Carrier status or incident codes with no table mapping (scan stored as UNKNOWN).",
            ["carrier", "kind"],
            registry=registry,
        )
        self.calls = Counter(
            "crossdock_carrier_calls",
            "Carrier operations by outcome (ok, rejected, unavailable, timeout, circuit_open).",
            ["carrier", "operation", "outcome"],
            registry=registry,
        )
        self.retries = Counter(
            "crossdock_carrier_retries",
            "Carrier operation retries after a retryable failure.",
            ["carrier", "operation"],
            registry=registry,
        )
        self.polls = Counter(
            "crossdock_carrier_polls",
            "Tracking polls of carriers that do not push, by outcome (news, no_news, failed, "
            "skipped when the circuit is open).",
            ["carrier", "outcome"],
            registry=registry,
        )
        self.poll_sweeps = Counter(
            "crossdock_carrier_poll_sweeps",
            "Completed sweeps of the tracking poller (each polls whatever is due).",
            registry=registry,
        )
        self.circuit_state = Gauge(
            "crossdock_carrier_circuit_state",
            "Circuit breaker state per carrier account: 0 closed, 1 half-open, 2 open.",
            ["carrier_account"],
            registry=registry,
        )

    def count_unmapped(self, code: UnmappedCode) -> None:
        """An UnmappedSink: pass it to connectors as `on_unmapped`."""
        self.unmapped_codes.labels(carrier=code.carrier, kind=code.kind).inc()

    def set_circuit_state(self, carrier_account: str, state: CircuitState) -> None:
        self.circuit_state.labels(carrier_account=carrier_account).set(_STATE_VALUE[state])
