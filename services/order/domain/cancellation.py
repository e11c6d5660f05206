"""Cancelling an order, whole or in part, and what the order hears back from shipment.

Whole cancel (saga.cancel): allowed until the carrier has the parcels. The order cannot see a
pickup itself, so the app asks shipment first (CancelOrderShipments, authoritative) whenever the
warehouse may have picked: `needs_shipment_cancel`. Picked units go back to stock through the
cancelled shipments (ShipmentCancelled → inventory), never from here, so they are restocked once.

Partial cancel: only units not yet picked. `plan_partial_cancel` says which quantities come out
of open demand and which out of which reservation (inventory releases those first, and refuses
if the warehouse picked meanwhile); `apply_partial_cancel` then records it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from services.order.domain import states
from services.order.domain.credits import request_credits
from services.order.domain.errors import OrderNotCancellable, PreconditionViolation
from services.order.domain.messages import (
    CancelPickTask,
    LabelVoided,
    LabelVoidFailed,
    OrderCancelled,
    OrderLinesCancelled,
    ReleaseReservation,
    ShipmentCancelledObserved,
)
from services.order.domain.model import (
    HeldLine,
    HoldStatus,
    Order,
    OrderStatus,
    ShipmentRecord,
    TimelineEntry,
    TimelineEntryKind,
)
from services.order.domain.progress import Effects, figures


@dataclass(frozen=True)
class LineCancel:
    """A partner's request to cancel `quantity` units of one line."""

    line_number: int
    quantity: int


@dataclass(frozen=True)
class PartialRelease:
    """Units of one reservation to give back (inventory's partial ReleaseReservation)."""

    reservation_id: str
    lines: tuple[HeldLine, ...]


@dataclass(frozen=True)
class PartialCancelPlan:
    lines: tuple[LineCancel, ...]
    releases: tuple[PartialRelease, ...]


def ensure_cancellable(order: Order) -> None:
    """Refuse (409) an order that is completed or has a delivered shipment."""
    delivered = sorted(s.shipment_id for s in order.shipments.values() if s.delivered)
    if order.status is OrderStatus.COMPLETED or delivered:
        what = "is completed" if order.status is OrderStatus.COMPLETED else "was delivered"
        refuse(order, f"order {order.order_id} {what}; create a return instead", what)


def refuse(order: Order, message: str, what: str, field: str = "ORDER_STATUS") -> None:
    raise OrderNotCancellable(
        message,
        violations=[PreconditionViolation(field, order.order_id, what)],
        metadata={"order_id": order.order_id, "status": f"ORDER_STATUS_{order.status.name}"},
    )


def cancel_whole(order: Order, reason: str, fx: Effects) -> None:
    """CANCELLED: active reservations released (their open pick tasks withdrawn), requests in
    flight forgotten (their answers are released when they arrive, reserve_step.py)."""
    released = []
    for r in list(order.reservations.values()):
        if r.status is not HoldStatus.ACTIVE:
            continue
        fx.command(ReleaseReservation(order.order_id, r.reservation_id, reason))
        if r.released_to_warehouse:
            fx.command(CancelPickTask(order.order_id, r.reservation_id))
        order.reservations[r.reservation_id] = replace(r, status=HoldStatus.RELEASED)
        released.append(r.reservation_id)
    order.pending.clear()
    order.availability_request = None
    order.replan_requested = False
    order.backordered.clear()
    order.exception = None
    order.cancel_reason = reason
    order.lines = [replace(line, quantity_cancelled=line.quantity_ordered) for line in order.lines]
    previous = order.status
    order.status = OrderStatus.CANCELLED
    order.deadline_key, order.step_deadline = "", None
    order.timeline.append(
        TimelineEntry(
            occurred_at=fx.ctx.now,
            kind=TimelineEntryKind.STATUS_CHANGE,
            step=order.step,
            detail=f"cancelled: {reason}",
            from_status=previous,
            to_status=OrderStatus.CANCELLED,
            correlation_id=fx.ctx.correlation_id,
            transition=states.ORDER.transition(previous, OrderStatus.CANCELLED),
        )
    )
    fx.emit(
        order, OrderCancelled(order.order_id, order.partner_id, reason, tuple(released), fx.ctx.now)
    )


def needs_shipment_cancel(order: Order) -> bool:
    """True once the warehouse may have picked: a reservation went to it, or a pick is known."""
    return bool(order.picks or order.shipments) or any(
        r.released_to_warehouse for r in order.reservations.values()
    )


def plan_partial_cancel(order: Order, lines: tuple[LineCancel, ...]) -> PartialCancelPlan:
    """Where each cancelled unit comes from: open demand first, then reservations not yet
    released to the warehouse, then those the warehouse may be picking. Raises 409 naming the
    line and how many of its units can still be cancelled."""
    if order.is_terminal:
        refuse(order, f"order {order.order_id} is {order.status.name}", order.status.name)
    figs = figures(order)
    wanted: dict[int, int] = {}
    for index, cancel in enumerate(lines):
        fig = figs.get(cancel.line_number)
        field = f"lines[{index}]"
        if fig is None:
            refuse(order, f"{field}: order has no line {cancel.line_number}", "no such line", field)
            raise AssertionError  # refuse raises
        wanted[cancel.line_number] = wanted.get(cancel.line_number, 0) + cancel.quantity
        free = fig.open_demand - fig.pending
        cancellable = free + fig.held + fig.released
        if wanted[cancel.line_number] > cancellable + fig.pending:
            refuse(
                order,
                f"{field}: line {cancel.line_number} has {cancellable} units not yet picked; "
                f"{wanted[cancel.line_number]} asked to cancel",
                f"{cancellable} cancellable",
                field,
            )
        if wanted[cancel.line_number] > cancellable:
            refuse(
                order,
                f"{field}: line {cancel.line_number} is being allocated; try again shortly",
                "allocation in progress",
                field,
            )
    releases: list[PartialRelease] = []
    left = {n: q - max(0, figs[n].open_demand - figs[n].pending) for n, q in wanted.items()}
    # Reservations the warehouse has not been told about first: they cannot be mid-pick.
    active = sorted(
        (r for r in order.reservations.values() if r.status is HoldStatus.ACTIVE),
        key=lambda r: (r.released_to_warehouse, r.reservation_id),
    )
    for reservation in active:
        give_back = []
        for held in reservation.lines:
            take = min(left.get(held.line_number, 0), held.quantity)
            if take > 0:
                give_back.append(HeldLine(held.line_number, held.sku, take))
                left[held.line_number] -= take
        if give_back:
            releases.append(PartialRelease(reservation.reservation_id, tuple(give_back)))
    return PartialCancelPlan(
        tuple(LineCancel(n, q) for n, q in sorted(wanted.items())), tuple(releases)
    )


def apply_partial_cancel(order: Order, plan: PartialCancelPlan, reason: str, fx: Effects) -> None:
    """Record a partial cancel whose reservation releases inventory has made."""
    for release in plan.releases:
        reservation = order.reservations[release.reservation_id]
        less = {h.line_number: h.quantity for h in release.lines}
        kept = tuple(
            replace(h, quantity=h.quantity - less.get(h.line_number, 0))
            for h in reservation.lines
            if h.quantity - less.get(h.line_number, 0) > 0
        )
        status = HoldStatus.ACTIVE if kept else HoldStatus.RELEASED
        order.reservations[release.reservation_id] = replace(reservation, lines=kept, status=status)
    cancelled = {c.line_number: c.quantity for c in plan.lines}
    order.lines = [
        replace(line, quantity_cancelled=line.quantity_cancelled + cancelled[line.line_number])
        if line.line_number in cancelled
        else line
        for line in order.lines
    ]
    for number, quantity in cancelled.items():
        backordered = order.backordered.get(number, 0)
        if backordered:
            order.backordered[number] = max(0, backordered - quantity)
    summary = ", ".join(f"{c.quantity} of line {c.line_number}" for c in plan.lines)
    fx.note(order, TimelineEntryKind.STATUS_CHANGE, f"cancelled {summary}: {reason}")
    skus = {line.line_number: line.sku for line in order.lines}
    fx.emit(
        order,
        OrderLinesCancelled(
            order.order_id,
            order.partner_id,
            tuple(HeldLine(c.line_number, skus[c.line_number], c.quantity) for c in plan.lines),
            reason,
            fx.ctx.now,
            order,
        ),
    )


# -- what shipment says back ---------------------------------------------------------------


def on_shipment_cancelled(order: Order, event: ShipmentCancelledObserved, fx: Effects) -> None:
    """A shipment of the order was cancelled; its units are going back to stock."""
    key = f"shipment-cancelled:{event.shipment_id}"
    if key in order.applied:
        return
    order.applied.add(key)
    record = order.shipments.get(event.shipment_id) or ShipmentRecord(
        event.shipment_id, event.location_id, event.lines
    )
    order.shipments[event.shipment_id] = replace(record, cancelled=True)
    units = sum(q.quantity for q in event.lines)
    fx.note(
        order,
        TimelineEntryKind.EVENT,
        f"shipment {event.shipment_id} cancelled; {units} units back to stock at "
        f"{event.location_id}",
        event_type=fx.ctx.event_type or "ShipmentCancelled",
        event_id=fx.ctx.event_id,
    )
    request_credits(order, fx)  # an invoice billed on ship is credited
    if not order.is_terminal:
        # Only an order's own cancel cancels its shipments; the order's commit was lost after
        # shipment acted (a crash between the two), so finish the cancellation here.
        cancel_whole(order, event.reason or "order cancelled", fx)


def on_label_voided(order: Order, event: LabelVoided, fx: Effects) -> None:
    key = f"label-voided:{event.shipment_id}"
    if key in order.applied:
        return
    order.applied.add(key)
    fx.note(
        order,
        TimelineEntryKind.EVENT,
        f"label {event.tracking_number} of shipment {event.shipment_id} voided",
        event_type=fx.ctx.event_type or "ShipmentLabelVoided",
        event_id=fx.ctx.event_id,
    )


def on_label_void_failed(order: Order, event: LabelVoidFailed, fx: Effects) -> None:
    """Visible on the timeline as an exception: the carrier may still charge for the label."""
    key = f"label-void-failed:{event.shipment_id}:{fx.ctx.event_id or event.reason}"
    if key in order.applied:
        return
    order.applied.add(key)
    fx.note(
        order,
        TimelineEntryKind.EXCEPTION,
        f"voiding label {event.tracking_number} of shipment {event.shipment_id} failed: "
        f"{event.reason} (RetryLabelVoid on the shipment)",
        event_id=fx.ctx.event_id,
    )
