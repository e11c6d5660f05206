"""Shipment's settings (environment prefix CROSSDOCK_SHIPMENT_)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from services.kit.config import setting
from services.kit.consumer import ConsumerSettings
from services.kit.runtime import ConsumingServiceConfig
from services.shipment.adapters.store import SERVICE
from services.shipment.app.booking import BookingSettings
from services.shipment.domain.model import ServiceLevel
from services.shipment.entrypoints.workers import WorkerSettings

ReturnServiceLevel = Literal["economy", "standard", "expedited", "overnight"]


class ShipmentConfig(ConsumingServiceConfig, service=SERVICE):
    inventory_target: str = setting(description="host:port of inventory (item master, locations)")
    carrier_adapter_target: str = setting(
        description="host:port of carrier-adapter (rates and labels)"
    )
    max_package_weight_kg: float = setting(
        default=30.0, minimum=0.1, description="heaviest box the packer fills before starting one"
    )
    carrier_preference: str = setting(
        default="",
        description="comma-separated carrier codes preferred, in order, among equally cheap rates",
    )
    return_service_level: ReturnServiceLevel = setting(
        default="standard",
        description="service level return labels (return parcels, customer to warehouse) are "
        "booked at: the cheapest rate that meets it wins",
    )
    label_timeout_seconds: float = setting(
        default=10.0, minimum=0.05, description="deadline of one rate or label call"
    )
    label_max_attempts: int = setting(
        default=20,
        minimum=1,
        description="label attempts before the shipment is LABEL_FAILED; the default's retries "
        "span 7-14 min, much longer than carrier-adapter's BOOKING_LEASE_SECONDS (30 s), so a "
        "booking a crashed carrier-adapter replica held is taken over, and a carrier-adapter "
        "outage of minutes is waited out, before the shipment fails",
    )
    retry_base_delay_seconds: float = setting(
        default=0.5, minimum=0.01, description="first retry delay of packing or booking"
    )
    retry_max_delay_seconds: float = setting(
        default=60.0, minimum=0.01, description="longest retry delay of packing or booking"
    )
    worker_poll_interval_seconds: float = setting(
        default=0.5, minimum=0.01, description="worker fallback poll interval"
    )
    worker_lease_seconds: float = setting(
        default=120.0,
        minimum=0.5,
        description="how long a worker holds a pick or a label booking before another replica "
        "may take it over (after a crash); keep it above LABEL_TIMEOUT_SECONDS",
    )
    worker_concurrency: int = setting(
        default=16, minimum=1, maximum=256, description="rate and label calls in flight at once"
    )
    consumer_max_deliver: int = setting(
        default=20,
        minimum=2,
        description="deliveries before dead-lettering; scans wait here for their label's commit",
    )

    def consumer_settings(self) -> ConsumerSettings:
        return dataclasses.replace(
            super().consumer_settings(),
            max_deliver=self.consumer_max_deliver,
        )

    def booking_settings(self) -> BookingSettings:
        preference = tuple(c.strip() for c in self.carrier_preference.split(",") if c.strip())
        return BookingSettings(
            max_box_weight_kg=self.max_package_weight_kg,
            carrier_preference=preference,
            label_timeout_seconds=self.label_timeout_seconds,
            label_max_attempts=self.label_max_attempts,
            retry_base_delay_seconds=self.retry_base_delay_seconds,
            retry_max_delay_seconds=self.retry_max_delay_seconds,
            return_service_level=ServiceLevel[self.return_service_level.upper()],
        )

    def worker_settings(self) -> WorkerSettings:
        return WorkerSettings(
            poll_interval_seconds=self.worker_poll_interval_seconds,
            concurrency=self.worker_concurrency,
            lease_seconds=self.worker_lease_seconds,
        )
