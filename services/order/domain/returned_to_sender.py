"""Shipments the carrier returned to sender, and the operator's two ways on.

- `on_shipment_returned`: the carrier brought a parcel back (inventory receives its units at the
  warehouse it left from). The order records the shipment as returned: its units count as neither
  shipped nor delivered and stay picked, so nothing re-plans them on its own, and the order shows
  EXCEPTION naming the shipment (progress.py) until an operator decides.
- `resolve`: RESHIP makes the units open demand again, re-planned like a short pick (reserve →
  release → pick → a new shipment and label); CANCEL_AND_CREDIT cancels them (quantity_cancelled),
  and the order completes when the rest is delivered and invoiced, or is CANCELLED when nothing
  else remains. Deciding the same again changes nothing; the other way is refused.
- Money: a returned parcel was not delivered, so it is only invoiced when billed on ship. Such an
  invoice is credited whichever way the operator decides (a reshipment is invoiced on its own):
  `request_credits` publishes ReturnedShipmentCreditRequested (crossdock.return.received.v1, the
  event billing credits on) once per invoice, when both the decision and the invoice are known,
  in whichever order they arrive. Billing's credit note comes back as `on_credit_note`.

Every handler is keyed (the shipment's flags, invoice and credit note ids), so duplicates and
any arrival order end in the same state.
"""

from __future__ import annotations

from dataclasses import replace

from services.kit.errors import Conflict
from services.order.domain import cancellation
from services.order.domain.credits import request_credits
from services.order.domain.errors import (
    InconsistentInput,
    NotFound,
    PreconditionViolation,
    ReturnedShipmentAlreadyResolved,
    ShipmentNotReturnedToSender,
)
from services.order.domain.messages import (
    CreditNoteObserved,
    ReturnedShipmentResolved,
    ShipmentReturnedToSender,
)
from services.order.domain.model import (
    HeldLine,
    LineQuantity,
    Order,
    ReturnedShipmentResolution,
    ShipmentRecord,
    TimelineEntryKind,
)
from services.order.domain.progress import Effects, figures
from services.order.domain.reserve_step import start_planning

_DONE = {
    ReturnedShipmentResolution.RESHIP: "reshipped",
    ReturnedShipmentResolution.CANCEL_AND_CREDIT: "cancelled and credited",
}


def on_shipment_returned(order: Order, event: ShipmentReturnedToSender, fx: Effects) -> None:
    """Record the shipment as returned to sender (once); its units came back."""
    known = order.shipments.get(event.shipment_id)
    if known is not None and known.returned:
        return
    if known is not None and (known.delivered or known.cancelled):
        what = "was delivered" if known.delivered else "was cancelled"
        raise _inconsistent(order, f"shipment {event.shipment_id} {what}; it cannot come back")
    lines = known.lines if known is not None and known.lines else event.lines
    _check_lines(order, event.shipment_id, lines)
    base = known or ShipmentRecord(event.shipment_id, event.location_id, lines)
    order.shipments[event.shipment_id] = replace(
        base,
        location_id=base.location_id or event.location_id,
        lines=lines,
        manifested=True,  # it left with the carrier: a late manifest changes nothing
        returned=True,
    )
    exception = order.exception
    if exception is not None and exception.shipment_id == event.shipment_id:
        # A delivery exception of this parcel is over: the decision it now needs replaces it.
        order.exception = None
    units = sum(q.quantity for q in lines)
    why = f" ({event.reason})" if event.reason else ""
    where = event.location_id or base.location_id
    fx.note(
        order,
        TimelineEntryKind.EVENT,
        f"shipment {event.shipment_id} returned to sender{why}; {units} units back at {where}",
        event_type=fx.ctx.event_type or "ShipmentReturnedToSender",
        event_id=fx.ctx.event_id,
    )
    if order.is_terminal:
        fx.note(
            order,
            TimelineEntryKind.EXCEPTION,
            f"shipment {event.shipment_id} returned to sender after the order was "
            f"{order.status.name.lower()}; nothing to decide",
        )


def resolve(
    order: Order,
    shipment_id: str,
    resolution: ReturnedShipmentResolution,
    reason: str,
    fx: Effects,
) -> None:
    """The operator's decision for a returned shipment (module docstring). Checks everything
    before changing anything, so a refusal leaves the order as it was."""
    shipment = _returned_shipment(order, shipment_id)
    if shipment.resolution is resolution:
        return  # asked again: already done
    if shipment.resolution is not None:
        done = _DONE[shipment.resolution]
        raise ReturnedShipmentAlreadyResolved(
            f"shipment {shipment_id} of order {order.order_id} was already {done}; it cannot "
            f"also be {_DONE[resolution]}",
            violations=[PreconditionViolation("SHIPMENT_RESOLUTION", shipment_id, done)],
            metadata={"order_id": order.order_id, "shipment_id": shipment_id},
        )
    _ensure_picks_recorded(order, shipment)
    order.shipments[shipment_id] = replace(shipment, resolution=resolution)
    skus = {line.line_number: line.sku for line in order.lines}
    lines = tuple(HeldLine(q.line_number, skus[q.line_number], q.quantity) for q in shipment.lines)
    units = sum(q.quantity for q in shipment.lines)
    note = f": {reason}" if reason else ""
    if resolution is ReturnedShipmentResolution.CANCEL_AND_CREDIT:
        cancelled = {q.line_number: q.quantity for q in shipment.lines}
        order.lines = [
            replace(line, quantity_cancelled=line.quantity_cancelled + cancelled[line.line_number])
            if line.line_number in cancelled
            else line
            for line in order.lines
        ]
    fx.note(
        order,
        TimelineEntryKind.EVENT,
        f"shipment {shipment_id} (returned to sender) {_DONE[resolution]}: {units} units "
        + ("planned again" if resolution is ReturnedShipmentResolution.RESHIP else "cancelled")
        + note,
        event_type="ReturnedShipmentResolved",
    )
    fx.emit(
        order,
        ReturnedShipmentResolved(
            order.order_id,
            order.partner_id,
            shipment_id,
            resolution,
            lines,
            reason,
            fx.ctx.now,
            order,
        ),
    )
    request_credits(order, fx)
    if resolution is ReturnedShipmentResolution.RESHIP:
        start_planning(order, fx)  # exactly as for a short pick
    elif all(line.quantity_cancelled >= line.quantity_ordered for line in order.lines):
        cancellation.cancel_whole(
            order,
            reason or f"shipment {shipment_id} returned to sender; cancelled and credited",
            fx,
        )


def on_credit_note(order: Order, posted: CreditNoteObserved, fx: Effects) -> None:
    """Billing credited a returned shipment's invoice: noted once. Credit notes for returns
    (RMA) are the returns' business (app/returns.py) and change nothing here."""
    shipment = order.shipments.get(posted.return_id)
    key = f"rts-credit-note:{posted.credit_note_id}"
    if shipment is None or not (shipment.returned or shipment.cancelled) or key in order.applied:
        return
    order.applied.add(key)
    fx.note(
        order,
        TimelineEntryKind.EVENT,
        f"credit note {posted.credit_note_id} credits invoice {posted.invoice_id} of shipment "
        f"{shipment.shipment_id} ({'cancelled' if shipment.cancelled else 'returned to sender'})",
        event_type=fx.ctx.event_type or "CreditNotePosted",
        event_id=fx.ctx.event_id,
    )


def _returned_shipment(order: Order, shipment_id: str) -> ShipmentRecord:
    shipment = order.shipments.get(shipment_id)
    if shipment is None:
        # Another order's shipment answers like a missing one: ids must not leak across orders.
        raise NotFound(
            f"order {order.order_id} has no shipment {shipment_id!r}",
            resource_type="shipment",
            resource_name=shipment_id,
            reason="SHIPMENT_NOT_FOUND",
        )
    if shipment.returned and order.is_terminal and shipment.resolution is None:
        status = order.status.name.lower()
        raise ReturnedShipmentAlreadyResolved(
            f"order {order.order_id} is {status}; shipment {shipment_id} came back after it "
            "closed: there is nothing to decide",
            violations=[PreconditionViolation("ORDER_STATUS", order.order_id, status)],
            metadata={"order_id": order.order_id, "shipment_id": shipment_id},
        )
    if not shipment.returned:
        state = (
            "delivered"
            if shipment.delivered
            else "cancelled"
            if shipment.cancelled
            else "on its way"
            if shipment.manifested
            else "not yet handed to the carrier"
        )
        raise ShipmentNotReturnedToSender(
            f"shipment {shipment_id} of order {order.order_id} was not returned to sender (it is "
            f"{state}); only a returned shipment can be reshipped or cancelled and credited",
            violations=[PreconditionViolation("SHIPMENT_STATUS", shipment_id, state)],
            metadata={"order_id": order.order_id, "shipment_id": shipment_id},
        )
    return shipment


def _ensure_picks_recorded(order: Order, shipment: ShipmentRecord) -> None:
    """The decision takes the returned units off the order's picks, so every shipped unit's pick
    must be on record first (the pick event may still be on its way, from another stream)."""
    picked: dict[int, int] = {}
    for pick in order.picks.values():
        for p in pick.lines:
            picked[p.line_number] = picked.get(p.line_number, 0) + p.quantity_picked
    shipped: dict[int, int] = {}
    for s in order.shipments.values():
        if not s.cancelled:
            for q in s.lines:
                shipped[q.line_number] = shipped.get(q.line_number, 0) + q.quantity
    if any(units > picked.get(n, 0) for n, units in shipped.items()):
        raise Conflict(
            f"order {order.order_id} has not recorded the pick of every unit of shipment "
            f"{shipment.shipment_id} yet; try again shortly"
        )


def _check_lines(order: Order, shipment_id: str, lines: tuple[LineQuantity, ...]) -> None:
    figs = figures(order)
    if not lines:
        raise _inconsistent(order, f"returned shipment {shipment_id} names no units")
    for q in lines:
        fig = figs.get(q.line_number)
        if fig is None or q.quantity <= 0 or q.quantity > fig.ordered - fig.cancelled:
            raise _inconsistent(
                order, f"returned shipment {shipment_id} carries line {q.line_number} beyond it"
            )


def _inconsistent(order: Order, detail: str) -> InconsistentInput:
    return InconsistentInput(
        f"order {order.order_id}: {detail}", metadata={"order_id": order.order_id}
    )
