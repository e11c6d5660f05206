"""BillingConfig: billing's settings, read once at start (prefix CROSSDOCK_BILLING_)."""

from __future__ import annotations

import dataclasses
import re
from typing import Literal

from services.billing.adapters.store import SERVICE
from services.billing.app import BillingSettings
from services.billing.domain.freight_refund import FreightRefund
from services.kit.config import setting
from services.kit.consumer import ConsumerSettings
from services.kit.runtime import ConsumingServiceConfig

_PARTNER_ID = re.compile(r"^ptn_[0-9A-HJKMNP-TV-Z]{26}$")
_REFUNDS = {policy.value: policy for policy in FreightRefund}


def _ids(csv: str) -> frozenset[str]:
    return frozenset(part.strip() for part in csv.split(",") if part.strip())


def partner_freight_refunds(text: str) -> dict[str, FreightRefund]:
    """`ptn_A=full,ptn_B=none` → {partner id: policy}; ValueError("<the form expected>") else."""
    policies: dict[str, FreightRefund] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        partner_id, _, policy = (piece.strip() for piece in item.partition("="))
        if (
            not _PARTNER_ID.fullmatch(partner_id)
            or policy not in _REFUNDS
            or partner_id in policies
        ):
            raise ValueError(
                "comma-separated <partner id>=<none|proportional|full> pairs, each partner "
                "once, e.g. ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P=full"
            )
        policies[partner_id] = _REFUNDS[policy]
    return policies


def _check_partner_freight_refunds(text: str) -> None:
    partner_freight_refunds(text)


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
    return_freight_refund: Literal["none", "proportional", "full"] = setting(
        default="none",
        description="freight refunded on the credit notes of returned units: none; proportional "
        "(the invoice's freight in proportion to the goods units credited, rounded down to the "
        "currency's minor unit, the remainder on the note that credits the last unit); full (all "
        "of it, on the note that credits the invoice's last unit)",
    )
    return_freight_refund_by_partner: str = setting(
        default="",
        check=_check_partner_freight_refunds,
        description="per-partner policies overriding RETURN_FREIGHT_REFUND, as comma-separated "
        "PARTNER_ID=POLICY pairs (e.g. ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P=full)",
    )
    consumer_max_deliver: int = setting(
        default=10,
        minimum=2,
        description="deliveries before dead-lettering; events wait here for an order placed later",
    )

    def consumer_settings(self) -> ConsumerSettings:
        return dataclasses.replace(
            super().consumer_settings(),
            max_deliver=self.consumer_max_deliver,
        )

    def billing_settings(self) -> BillingSettings:
        return BillingSettings(
            self.invoice_series,
            self.credit_note_series,
            _ids(self.on_ship_partners),
            _ids(self.on_ship_customers),
            FreightRefund(self.return_freight_refund),
            partner_freight_refunds(self.return_freight_refund_by_partner),
        )
