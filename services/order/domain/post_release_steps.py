"""Steps after release: picks, shipments, delivery, invoices, and backorder fills.

Each handler is idempotent on a natural key (pick id, shipment id + milestone, invoice id,
receipt/adjustment id), so a redelivered event changes nothing. Facts that contradict the order
raise InconsistentInput (the consumer dead-letters them); facts arriving after a cancellation
are recorded on the timeline and compensated, never allowed to reopen the order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from services.order.domain.credits import request_credits
from services.order.domain.errors import InconsistentInput
from services.order.domain.messages import (
    InvoicePosted,
    PickCompleted,
    ShipmentCreated,
    ShipmentDelivered,
    ShipmentFailed,
    ShipmentManifested,
    StockAvailable,
)
from services.order.domain.model import (
    ExceptionState,
    FulfillmentStep,
    HoldStatus,
    InvoiceRecord,
    LineQuantity,
    Order,
    OrderStatus,
    PickRecord,
    ShipmentRecord,
    TimelineEntryKind,
)
from services.order.domain.progress import Effects, figures
from services.order.domain.reserve_step import start_planning, wants_stock


def on_pick_completed(order: Order, pick: PickCompleted, fx: Effects) -> None:
    """Consume the reservation; re-allocate the shorts (another location, or backorder)."""
    if pick.pick_id in order.picks:
        return
    reservation = order.reservations.get(pick.reservation_id)
    if reservation is None or reservation.status is HoldStatus.CONSUMED:
        raise _inconsistent(order, f"pick {pick.pick_id} is for {pick.reservation_id}, not held")
    held = {h.line_number: h for h in reservation.lines}
    confirmed = {p.line_number: p for p in pick.lines}
    if reservation.lines and (
        set(confirmed) != set(held)
        or len(confirmed) != len(pick.lines)
        or any(
            p.sku != held[n].sku
            or min(p.quantity_picked, p.quantity_short) < 0
            or p.quantity_picked + p.quantity_short != held[n].quantity
            for n, p in confirmed.items()
        )
    ):
        raise _inconsistent(order, f"pick {pick.pick_id} does not match {pick.reservation_id}")
    cancelled = order.status is OrderStatus.CANCELLED
    if reservation.status is HoldStatus.RELEASED and not cancelled:
        raise _inconsistent(order, f"pick {pick.pick_id} is for released {pick.reservation_id}")

    order.picks[pick.pick_id] = PickRecord(
        pick.pick_id, pick.reservation_id, reservation.location_id, pick.lines
    )
    order.reservations[pick.reservation_id] = replace(reservation, status=HoldStatus.CONSUMED)
    picked = sum(p.quantity_picked for p in pick.lines)
    short = sum(p.quantity_short for p in pick.lines)
    if cancelled:
        # The warehouse picked before it heard of the cancellation. Shipment knows the order is
        # cancelled (the cancel asked it first), so the pick becomes a CANCELLED shipment whose
        # units inventory puts back: the one restock path, so units come back exactly once.
        fx.note(
            order,
            TimelineEntryKind.EXCEPTION,
            f"pick {pick.pick_id} confirmed after cancellation; its {picked} units go back "
            "to stock with its cancelled shipment",
            event_id=fx.ctx.event_id,
        )
        return
    fx.note(
        order,
        TimelineEntryKind.EVENT,
        f"pick {pick.pick_id} at {reservation.location_id}: {picked} picked, {short} short",
        event_type=fx.ctx.event_type or "PickCompleted",
        event_id=fx.ctx.event_id,
    )
    if short:
        start_planning(order, fx)


def on_shipment_created(order: Order, created: ShipmentCreated, fx: Effects) -> None:
    """Remember the shipment; its units count as shipped once it is manifested."""
    if order.is_terminal or created.shipment_id in order.shipments:
        return
    _check_lines(order, created.lines, created.shipment_id)
    order.shipments[created.shipment_id] = ShipmentRecord(
        created.shipment_id, created.location_id, created.lines
    )
    _note_event(order, fx, f"shipment {created.shipment_id} created", "ShipmentCreated")


def on_shipment_manifested(order: Order, manifested: ShipmentManifested, fx: Effects) -> None:
    """The shipment's units shipped."""
    shipment = order.shipments.get(manifested.shipment_id)
    if shipment is not None and shipment.manifested:
        return
    if _closed_after_the_fact(order, fx, f"shipment {manifested.shipment_id} manifested"):
        return
    _check_lines(order, manifested.lines, manifested.shipment_id, also_shipped=True)
    order.shipments[manifested.shipment_id] = ShipmentRecord(
        manifested.shipment_id, manifested.location_id, manifested.lines, manifested=True
    )
    _note_event(order, fx, f"shipment {manifested.shipment_id} manifested", "ShipmentManifested")


def on_shipment_failed(order: Order, failed: ShipmentFailed, fx: Effects) -> None:
    """A shipment failed (label booking past its retries, delivery exception): EXCEPTION."""
    if order.is_terminal:
        return
    shipment = order.shipments.get(failed.shipment_id) or ShipmentRecord(failed.shipment_id, "", ())
    # Keyed on the event that reported it (the reason when there is none): a redelivered old
    # failure must not reopen a recovered shipment, but a new failure after a retry must count
    # even when its reason reads the same.
    key = f"shipment-failed:{failed.shipment_id}:{fx.ctx.event_id or failed.reason}"
    if key in order.applied or shipment.delivered or shipment.returned:
        return
    order.applied.add(key)
    order.shipments[failed.shipment_id] = replace(shipment, failure_reason=failed.reason)
    step = FulfillmentStep.AWAIT_DELIVERY if shipment.manifested else FulfillmentStep.AWAIT_SHIPMENT
    reason = f"shipment {failed.shipment_id}: {failed.reason}"
    order.exception = ExceptionState(step, reason, fx.ctx.now, shipment_id=failed.shipment_id)
    fx.note(order, TimelineEntryKind.EXCEPTION, reason, event_id=fx.ctx.event_id)


def on_shipment_delivered(order: Order, delivered: ShipmentDelivered, fx: Effects) -> None:
    """Every package of the shipment arrived."""
    shipment = order.shipments.get(delivered.shipment_id)
    if shipment is not None and shipment.delivered:
        return
    if shipment is not None and shipment.returned:
        raise _inconsistent(order, f"shipment {delivered.shipment_id} was returned to sender")
    if _closed_after_the_fact(order, fx, f"shipment {delivered.shipment_id} delivered"):
        return
    not_counted_yet = shipment is None or not shipment.manifested
    _check_lines(order, delivered.lines, delivered.shipment_id, also_shipped=not_counted_yet)
    order.shipments[delivered.shipment_id] = ShipmentRecord(
        delivered.shipment_id,
        delivered.location_id,
        delivered.lines,
        manifested=True,
        delivered=True,
    )
    _note_event(order, fx, f"shipment {delivered.shipment_id} delivered", "ShipmentDelivered")


def on_invoice_posted(order: Order, invoice: InvoicePosted, fx: Effects) -> None:
    """Billing invoiced a shipment's units.

    The invoice of a shipment returned to sender (billed on ship) never counts as invoiced, and
    is credited once an operator decides, even if it arrives after the order closed.
    """
    if invoice.invoice_id in order.invoices:
        return
    shipment = order.shipments.get(invoice.shipment_id)
    # Returned to sender or cancelled: it will not count, it will be credited (credits.py).
    returned = shipment is not None and (shipment.returned or shipment.cancelled)
    if order.is_terminal and not returned:
        return
    figs = figures(order)
    for q in invoice.lines:
        fig = figs.get(q.line_number)
        limit = 0 if fig is None else fig.ordered if returned else fig.ordered - fig.cancelled
        already = 0 if fig is None or returned else fig.invoiced
        if fig is None or q.quantity <= 0 or already + q.quantity > limit:
            raise _inconsistent(
                order, f"invoice {invoice.invoice_id} bills line {q.line_number} beyond the order"
            )
    order.invoices[invoice.invoice_id] = InvoiceRecord(
        invoice.invoice_id, invoice.shipment_id, invoice.lines
    )
    what = f" (shipment {invoice.shipment_id}, not delivered: credited)" if returned else ""
    _note_event(order, fx, f"invoice {invoice.invoice_id} posted{what}", "InvoicePosted")
    request_credits(order, fx)


def on_stock_available(order: Order, available: StockAvailable, fx: Effects) -> None:
    """Stock of a SKU the order still needs arrived: try to fill the backorder.

    Mid-round, the round's availability snapshot may predate the stock, so the order plans once
    more when the round settles instead of backordering on stale figures.
    """
    key = f"stock:{available.source_id}:{available.sku}@{available.location_id}"
    if key in order.applied or not wants_stock(order, available.sku):
        return
    order.applied.add(key)
    if order.pending or order.availability_request is not None:
        order.replan_requested = True
    _note_event(
        order,
        fx,
        f"{available.sku} arrived at {available.location_id}; filling backorder",
        "StockAvailable",
    )
    start_planning(order, fx)


def _check_lines(
    order: Order, lines: Iterable[LineQuantity], shipment_id: str, *, also_shipped: bool = False
) -> None:
    figs = figures(order)
    for q in lines:
        fig = figs.get(q.line_number)
        already = fig.shipped if fig is not None and also_shipped else 0
        if fig is None or q.quantity <= 0 or already + q.quantity > fig.ordered - fig.cancelled:
            raise _inconsistent(
                order, f"shipment {shipment_id} ships line {q.line_number} beyond the order"
            )


def _closed_after_the_fact(order: Order, fx: Effects, what: str) -> bool:
    """True for a closed order; a cancelled one also gets a visible note (once)."""
    if not order.is_terminal:
        return False
    key = f"late:{what}"
    if order.status is OrderStatus.CANCELLED and key not in order.applied:
        order.applied.add(key)
        fx.note(order, TimelineEntryKind.EXCEPTION, f"{what} after the order was cancelled")
    return True


def _note_event(order: Order, fx: Effects, detail: str, default_type: str) -> None:
    fx.note(
        order,
        TimelineEntryKind.EVENT,
        detail,
        event_type=fx.ctx.event_type or default_type,
        event_id=fx.ctx.event_id,
    )


def _inconsistent(order: Order, detail: str) -> InconsistentInput:
    return InconsistentInput(
        f"order {order.order_id}: {detail}", metadata={"order_id": order.order_id}
    )
