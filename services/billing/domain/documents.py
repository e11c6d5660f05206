"""The posted documents and the cached inputs billing keeps, as plain values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.billing.domain.invoicing import Line, OrderLinePrice


@dataclass(frozen=True)
class OrderPrices:
    """What billing remembers of an OrderPlaced: who pays and each line's unit price."""

    order_id: str
    partner_id: str
    customer: dict[str, str]
    currency: str
    lines: dict[int, OrderLinePrice]


@dataclass(frozen=True)
class Freight:
    freight_charge_id: str
    shipment_id: str
    order_id: str
    partner_id: str
    carrier: str
    currency: str
    quoted: Decimal | None
    final: Decimal | None
    finalized_at: datetime | None


@dataclass(frozen=True)
class Invoice:
    invoice_id: str
    invoice_number: str
    series: str
    order_id: str
    shipment_id: str
    partner_id: str
    customer: dict[str, str]
    currency: str
    lines: tuple[Line, ...]
    total: Decimal
    posted_at: datetime
    credited: bool = False


@dataclass(frozen=True)
class CreditNote:
    credit_note_id: str
    credit_note_number: str
    invoice_id: str
    order_id: str
    return_id: str
    partner_id: str
    currency: str
    lines: tuple[Line, ...]
    total: Decimal
    reason: str
    posted_at: datetime
