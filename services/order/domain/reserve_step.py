"""The RESERVE step: availability -> plan -> reservation requests -> settle.

A planning round asks inventory for availability, plans reservations (allocation_planner.py),
sends one ReserveStock per location (policy PARTIAL, so a race for the last unit yields what is
left instead of nothing) and, once every answer is in, settles: release what may ship and
backorder the rest. Idempotency keys are "<order id>/a<round>/<location>", derived from persisted
state, so a runner that crashes and replays the same round sends the same keys.
"""

from __future__ import annotations

from dataclasses import replace

from services.order.domain.allocation_planner import plan_allocation, release_now
from services.order.domain.errors import InconsistentInput
from services.order.domain.messages import (
    AvailabilityObserved,
    OrderAllocated,
    OrderBackordered,
    OrderReleased,
    ReleaseReservation,
    RequestAvailability,
    ReservationFailed,
    ReservationMade,
    ReservationObserved,
    ReservationReleasedObserved,
    ReserveStock,
)
from services.order.domain.model import (
    ExceptionState,
    FulfillmentStep,
    HeldLine,
    HoldStatus,
    Order,
    OrderReservation,
    PendingReservation,
    TimelineEntryKind,
)
from services.order.domain.progress import (
    Effects,
    LineFigures,
    figures,
    refresh,
    sync_lines,
)


def free_demand(order: Order) -> list[HeldLine]:
    """Units with no reservation, no pick and no reservation request in flight."""
    figs = figures(order)
    return [
        HeldLine(line.line_number, line.sku, figs[line.line_number].open_demand - pending)
        for line in order.lines
        if (pending := figs[line.line_number].pending) < figs[line.line_number].open_demand
    ]


def start_planning(order: Order, fx: Effects) -> None:
    """Ask for availability of the units that need stock.

    With a request already out, the new demand waits for that round, whose snapshot may predate
    stock the order never heard of (it did not want the SKU when the stock arrived), so the
    order plans once more when the round settles.
    """
    if order.is_terminal:
        return
    demand = free_demand(order)
    if not demand:
        return
    if order.availability_request is not None:
        order.replan_requested = True
        return
    order.availability_requests += 1
    order.availability_request = order.availability_requests
    fx.command(
        RequestAvailability(
            order.order_id, order.availability_request, tuple(sorted({d.sku for d in demand}))
        )
    )


def on_availability(order: Order, observed: AvailabilityObserved, fx: Effects) -> None:
    """Plan the free demand against the observed availability and request the reservations."""
    if order.is_terminal or observed.request_id != order.availability_request:
        return  # a stale or repeated answer
    order.availability_request = None
    plan = plan_allocation(free_demand(order), observed.availability)
    if plan.reservations:
        order.allocation_round += 1
    for planned in plan.reservations:
        key = f"{order.order_id}/a{order.allocation_round}/{planned.location_id}"
        order.pending[key] = PendingReservation(key, planned.location_id, planned.lines)
        fx.command(ReserveStock(order.order_id, planned.location_id, planned.lines, key))
    short = sum(s.quantity for s in plan.shortfalls)
    where = ", ".join(p.location_id for p in plan.reservations) or "nowhere"
    fx.note(
        order,
        TimelineEntryKind.EVENT,
        f"allocation round {order.allocation_round}: reserve at {where}; {short} units short",
        event_type=fx.ctx.event_type or "AvailabilityObserved",
        event_id=fx.ctx.event_id,
    )
    settle_if_answered(order, fx)


def on_reservation_made(order: Order, made: ReservationMade, fx: Effects) -> None:
    """Record a reservation answer; an answer nobody waits for is given back."""
    answered = f"reserve:{made.idempotency_key}"
    if answered in order.applied or (
        made.reservation_id is not None and made.reservation_id in order.reservations
    ):
        return
    pending = order.pending.get(made.idempotency_key)
    if pending is None:
        order.applied.add(answered)
        if made.reservation_id is not None:
            _give_back(order, made.reservation_id, "", made.lines, fx)
        else:
            fx.note(order, TimelineEntryKind.EVENT, "late reservation answer: nothing was held")
        return
    _check_answer(order, pending, made)
    del order.pending[made.idempotency_key]
    order.applied.add(answered)
    if made.reservation_id is not None:
        order.reservations[made.reservation_id] = OrderReservation(
            made.reservation_id,
            pending.location_id,
            made.lines,
            idempotency_key=pending.idempotency_key,
        )
        for held in made.lines:
            # Backordered units are the first to be filled by a new reservation.
            left = order.backordered.get(held.line_number, 0) - held.quantity
            order.backordered[held.line_number] = max(0, left)
    held_units = sum(h.quantity for h in made.lines)
    asked = sum(h.quantity for h in pending.lines)
    fx.note(
        order,
        TimelineEntryKind.EVENT,
        f"reserved {held_units} of {asked} units at {pending.location_id}"
        + (f" ({made.reservation_id})" if made.reservation_id else ""),
        event_type=fx.ctx.event_type or "ReservationMade",
        event_id=fx.ctx.event_id,
    )
    settle_if_answered(order, fx)


def on_reservation_failed(order: Order, failed: ReservationFailed, fx: Effects) -> None:
    """A reservation request failed for good: its units wait, and the order goes to EXCEPTION."""
    answered = f"reserve:{failed.idempotency_key}"
    pending = order.pending.get(failed.idempotency_key)
    if answered in order.applied or pending is None:
        return
    del order.pending[failed.idempotency_key]
    order.applied.add(answered)
    reason = f"reserving at {pending.location_id} failed: {failed.reason}"
    order.exception = ExceptionState(FulfillmentStep.RESERVE, reason, fx.ctx.now)
    fx.note(order, TimelineEntryKind.EXCEPTION, reason, event_id=fx.ctx.event_id)
    settle_if_answered(order, fx)


def on_reservation_observed(order: Order, seen: ReservationObserved, fx: Effects) -> None:
    """Inventory holds a reservation for us. Unknown and not awaited means it leaked: release it.

    A request in flight at that location is awaited: its own answer will carry this id.
    """
    if seen.reservation_id in order.reservations:
        return
    awaited = any(p.location_id == seen.location_id for p in order.pending.values())
    if awaited and not order.is_terminal:
        return
    _give_back(order, seen.reservation_id, seen.location_id, (), fx)


def on_reservation_released(
    order: Order, released: ReservationReleasedObserved, fx: Effects
) -> None:
    """Inventory released one of our active reservations: re-allocate its units."""
    reservation = order.reservations.get(released.reservation_id)
    if reservation is None or reservation.status is not HoldStatus.ACTIVE:
        return
    order.reservations[released.reservation_id] = replace(reservation, status=HoldStatus.RELEASED)
    fx.note(
        order,
        TimelineEntryKind.EXCEPTION,
        f"inventory released {released.reservation_id} ({released.reason}); re-allocating",
        event_id=fx.ctx.event_id,
    )
    start_planning(order, fx)


def settle_if_answered(order: Order, fx: Effects) -> None:
    """Once a round has every answer: release what may ship now, backorder the rest."""
    if order.pending or order.availability_request is not None or order.is_terminal:
        return
    before = dict(order.backordered)
    figs = figures(order)
    order.backordered = {n: f.open_demand for n, f in figs.items() if f.open_demand}
    still_open = sum(f.open_demand for f in figs.values())
    unreleased = [
        r
        for r in order.reservations.values()
        if r.status is HoldStatus.ACTIVE and not r.released_to_warehouse
    ]
    replan = order.replan_requested and still_open > 0
    order.replan_requested = False
    if unreleased and release_now(order.backorder_policy, still_open):
        refresh(order, fx)  # shows ALLOCATED on the timeline before RELEASED
        ids = tuple(r.reservation_id for r in unreleased)
        fx.emit(
            order,
            OrderAllocated(order.order_id, order.partner_id, ids, tuple(order.lines), fx.ctx.now),
        )
        for r in unreleased:
            order.reservations[r.reservation_id] = replace(r, released_to_warehouse=True)
        sync_lines(order)
        fx.emit(order, OrderReleased(order.order_id, order.partner_id, ids, fx.ctx.now))
    if still_open and order.backordered != before:
        sync_lines(order)
        fx.emit(
            order,
            OrderBackordered(
                order.order_id,
                order.partner_id,
                tuple(order.lines),
                order.backorder_policy,
                fx.ctx.now,
            ),
        )
    elif order.backordered != before:
        fx.changed = True
    if replan:
        start_planning(order, fx)


def wants_stock(order: Order, sku: str) -> bool:
    """Whether arriving stock of `sku` could help the order: it has units of that SKU with no
    reservation yet (backordered, or in a planning round). Consumers of inventory.received and
    inventory.adjusted send StockAvailable to exactly these orders."""
    if order.is_terminal:
        return False
    figs = figures(order)
    return any(line.sku == sku and figs[line.line_number].open_demand for line in order.lines)


def wanted_skus(order: Order, line_figures: dict[int, LineFigures] | None = None) -> list[str]:
    """The SKUs `wants_stock` is true for, sorted (the store's prefilter column); the figures
    are computed once for all of them, or are `line_figures` when the caller has them."""
    if order.is_terminal:
        return []
    figs = figures(order) if line_figures is None else line_figures
    return sorted({line.sku for line in order.lines if figs[line.line_number].open_demand})


def _check_answer(order: Order, pending: PendingReservation, made: ReservationMade) -> None:
    asked = {h.line_number: h for h in pending.lines}
    seen: set[int] = set()
    problems = []
    if (made.reservation_id is None) != (not made.lines):
        problems.append("a reservation id comes with held lines and only then")
    for held in made.lines:
        request = asked.get(held.line_number)
        if request is None or held.line_number in seen:
            problems.append(f"line {held.line_number} was not asked for or repeats")
        elif held.sku != request.sku or not 0 < held.quantity <= request.quantity:
            problems.append(f"line {held.line_number} holds more or other than asked")
        seen.add(held.line_number)
    if problems:
        raise InconsistentInput(
            f"reservation answer {made.idempotency_key!r} for order {order.order_id} does not "
            f"match the request: {'; '.join(problems)}",
            metadata={"order_id": order.order_id, "idempotency_key": made.idempotency_key},
        )


def _give_back(
    order: Order, reservation_id: str, location_id: str, lines: tuple[HeldLine, ...], fx: Effects
) -> None:
    order.reservations[reservation_id] = OrderReservation(
        reservation_id, location_id, lines, status=HoldStatus.RELEASED
    )
    why = "the order is closed" if order.is_terminal else "the order did not ask for it"
    fx.command(ReleaseReservation(order.order_id, reservation_id, f"not needed: {why}"))
    fx.note(
        order,
        TimelineEntryKind.EXCEPTION,
        f"compensation: releasing {reservation_id} because {why}",
        event_id=fx.ctx.event_id,
    )
