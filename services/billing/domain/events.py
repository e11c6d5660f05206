"""What billing announces: one domain event per posted document or finalized freight charge.

adapters/contracts.py maps each to its crossdock.events.v1 message; app publishes them with
`uow.publish` in the transaction that stores the document.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.billing.domain.documents import CreditNote, Freight, Invoice


@dataclass(frozen=True)
class InvoicePosted:
    invoice: Invoice
    occurred_at: datetime


@dataclass(frozen=True)
class CreditNotePosted:
    credit_note: CreditNote
    occurred_at: datetime


@dataclass(frozen=True)
class FreightChargeFinalized:
    """The final freight charge is known and differs from the quote."""

    freight: Freight
    occurred_at: datetime
