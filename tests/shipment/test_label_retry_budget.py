"""shipment's label retries against carrier-adapter's booking lease: a carrier-adapter replica
killed mid-booking leaves its claim in flight until the lease ends, and only then may another
replica take the booking over. Had shipment's transient retries ended sooner, the order would go
to EXCEPTION (LABEL_FAILED) over a crash the mesh recovers from by itself."""

from __future__ import annotations

import pytest

from services.carrier_adapter.config import CarrierAdapterConfig
from services.shipment.app.booking import BookingSettings
from services.shipment.config import ShipmentConfig

pytestmark = pytest.mark.unit


def default(config: type[ShipmentConfig] | type[CarrierAdapterConfig], name: str) -> float:
    (found,) = [s.default for s in config.declared_settings() if s.field_name == name]
    assert isinstance(found, int | float), (name, found)
    return float(found)


def shortest_retry_span(settings: BookingSettings) -> float:
    """Every retry delay at its shortest (retry_delay jitters in the upper half of its cap)."""
    return sum(
        min(settings.retry_base_delay_seconds * 2**attempts, settings.retry_max_delay_seconds) / 2
        for attempts in range(1, settings.label_max_attempts)
    )


def test_the_default_label_retries_outlast_carrier_adapters_booking_lease() -> None:
    settings = BookingSettings(
        label_max_attempts=int(default(ShipmentConfig, "label_max_attempts")),
        retry_base_delay_seconds=default(ShipmentConfig, "retry_base_delay_seconds"),
        retry_max_delay_seconds=default(ShipmentConfig, "retry_max_delay_seconds"),
    )
    lease = default(CarrierAdapterConfig, "booking_lease_seconds")
    assert shortest_retry_span(settings) > lease
    # The settings' own defaults agree with the configuration's.
    assert BookingSettings().label_max_attempts == settings.label_max_attempts


def test_the_shortest_span_is_what_retry_delay_can_draw() -> None:
    settings = BookingSettings(label_max_attempts=4)
    draws = [settings.retry_delay(attempts) for attempts in range(1, 4) for _ in range(200)]
    assert min(draws) >= 0.5  # attempt 1: cap 1 s, half of it at least
    assert shortest_retry_span(settings) == 0.5 + 1 + 2
