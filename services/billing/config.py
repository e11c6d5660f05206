"""BillingConfig: billing's settings, read once at start (prefix CROSSDOCK_BILLING_)."""

from __future__ import annotations

import dataclasses

from services.billing.adapters.store import SERVICE
from services.billing.app import BillingSettings
from services.kit.config import setting
from services.kit.consumer import ConsumerSettings
from services.kit.runtime import ConsumingServiceConfig


def _ids(csv: str) -> frozenset[str]:
    return frozenset(part.strip() for part in csv.split(",") if part.strip())


class BillingConfig(ConsumingServiceConfig, service=SERVICE):
    invoice_series: str = setting(
        default="INV", description="prefix of invoice numbers, e.g. INV → INV-2026-000001"
    )
    credit_note_series: str = setting(
        default="CRN", description="prefix of credit note numbers, e.g. CRN → CRN-2026-000001"
    )
    on_ship_partners: str = setting(
        default="",
        description="comma-separated partner ids invoiced at manifest instead of at delivery",
    )
    on_ship_customers: str = setting(
        default="",
        description="comma-separated customer party ids (the order's customer) invoiced at "
        "manifest instead of at delivery, whatever their partner's policy",
    )
    consumer_ack_wait_seconds: float = setting(
        default=30.0, minimum=1, description="redelivery delay of an event a crashed worker held"
    )
    consumer_max_deliver: int = setting(
        default=10,
        minimum=2,
        description="deliveries before dead-lettering; events wait here for an order placed later",
    )

    def consumer_settings(self) -> ConsumerSettings:
        return dataclasses.replace(
            super().consumer_settings(),
            ack_wait=self.consumer_ack_wait_seconds,
            max_deliver=self.consumer_max_deliver,
        )

    def billing_settings(self) -> BillingSettings:
        return BillingSettings(
            self.invoice_series,
            self.credit_note_series,
            _ids(self.on_ship_partners),
            _ids(self.on_ship_customers),
        )
