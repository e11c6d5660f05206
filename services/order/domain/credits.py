"""Credits for invoices of shipments that will not be delivered after all.

Billing invoices a shipment on delivery, or on ship for partners billed that way, so a shipment
cancelled after its label, or returned to sender, may carry an invoice. Such an invoice never
counts as invoiced on the order (progress.figures) and is credited: the order asks billing once
per invoice, when both the invoice and the shipment's fate are known, in whichever order they
arrive. Billing credits on crossdock.return.received.v1, so that is the event the request uses
(ReturnedShipmentCreditRequested, with the shipment id as the return id).
"""

from __future__ import annotations

from services.order.domain.messages import ReturnedShipmentCreditRequested
from services.order.domain.model import HeldLine, Order, TimelineEntryKind
from services.order.domain.progress import Effects


def request_credits(order: Order, fx: Effects) -> None:
    """Ask billing to credit, once per invoice, every invoice of a shipment that will not be
    delivered after all: one returned to sender once an operator decided, or one cancelled
    after it was invoiced (billed on ship)."""
    skus = {line.line_number: line.sku for line in order.lines}
    for invoice in sorted(order.invoices.values(), key=lambda i: i.invoice_id):
        shipment = order.shipments.get(invoice.shipment_id)
        key = f"rts-credit:{invoice.invoice_id}"
        settled = shipment is not None and (shipment.cancelled or shipment.resolution is not None)
        if shipment is None or not settled or key in order.applied:
            continue
        order.applied.add(key)
        lines = tuple(
            HeldLine(q.line_number, skus[q.line_number], q.quantity)
            for q in invoice.lines
            if q.quantity > 0 and q.line_number in skus
        )
        fx.note(
            order,
            TimelineEntryKind.EVENT,
            f"credit of invoice {invoice.invoice_id} asked of billing: shipment "
            f"{shipment.shipment_id} was "
            f"{'cancelled' if shipment.cancelled else 'returned to sender'}",
        )
        fx.emit(
            order,
            ReturnedShipmentCreditRequested(
                order.order_id,
                order.partner_id,
                shipment.shipment_id,
                shipment.location_id,
                invoice.invoice_id,
                lines,
                fx.ctx.now,
            ),
        )
