"""How an order's line figures, status, step and deadline follow from its saga records.

Status rule: an order is as far as its least-advanced open unit, except that any unit waiting
for stock makes it BACKORDERED ("some or all units wait for stock"). A unit's stage is:
being allocated (PLACED) < backordered < reserved, not released (ALLOCATED) < released to the
warehouse (RELEASED) < picked < shipped < delivered < invoiced (COMPLETED once every unit is
both delivered and invoiced). Later facts imply earlier ones (a delivery or an invoice implies
shipping, a manifest implies a pick), so events of different streams arriving out of order never
make the status go backwards. An invoice does not imply delivery: partners billed on ship are
invoiced at the manifest, and any invoice can overtake its delivery on the way to order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import NamedTuple

from services.order.domain import states
from services.order.domain.messages import Context, OrderCompleted, OrderEvent, SagaCommand
from services.order.domain.model import (
    ExceptionState,
    FulfillmentStep,
    HeldLine,
    HoldStatus,
    LineQuantity,
    Order,
    OrderLine,
    OrderStatus,
    ShipmentRecord,
    TimelineEntry,
    TimelineEntryKind,
)

STEP_OF_STATUS = {
    OrderStatus.PLACED: FulfillmentStep.RESERVE,
    OrderStatus.BACKORDERED: FulfillmentStep.RESERVE,
    OrderStatus.ALLOCATED: FulfillmentStep.RELEASE_TO_WAREHOUSE,
    OrderStatus.RELEASED: FulfillmentStep.AWAIT_PICK,
    OrderStatus.PICKED: FulfillmentStep.AWAIT_SHIPMENT,
    OrderStatus.SHIPPED: FulfillmentStep.AWAIT_DELIVERY,
    OrderStatus.DELIVERED: FulfillmentStep.AWAIT_INVOICE,
    OrderStatus.COMPLETED: FulfillmentStep.COMPLETE,
}

# What a RESERVE-step order waiting only for stock to arrive is waiting for.
BACKORDER_WAIT = "BACKORDER"


@dataclass(frozen=True)
class StepTimeouts:
    """How long an order may wait in each step before it goes to EXCEPTION; None = forever.

    `backorder` is the wait for stock to arrive, which is usually unbounded; `reserve` covers
    the availability check and the reservation calls.
    """

    reserve: timedelta | None = timedelta(minutes=5)
    backorder: timedelta | None = None
    release_to_warehouse: timedelta | None = timedelta(minutes=5)
    pick: timedelta | None = timedelta(hours=4)
    shipment: timedelta | None = timedelta(hours=24)
    delivery: timedelta | None = timedelta(days=14)
    invoice: timedelta | None = timedelta(days=2)

    def for_wait(self, wait: str) -> timedelta | None:
        """The timeout for a waiting key from `waiting_for`."""
        name = _TIMEOUT_OF_WAIT.get(wait)
        return None if name is None else getattr(self, name)


# Which StepTimeouts field bounds each waiting key (`waiting_for`).
_TIMEOUT_OF_WAIT = {
    FulfillmentStep.RESERVE.name: "reserve",
    BACKORDER_WAIT: "backorder",
    FulfillmentStep.RELEASE_TO_WAREHOUSE.name: "release_to_warehouse",
    FulfillmentStep.AWAIT_PICK.name: "pick",
    FulfillmentStep.AWAIT_SHIPMENT.name: "shipment",
    FulfillmentStep.AWAIT_DELIVERY.name: "delivery",
    FulfillmentStep.AWAIT_INVOICE.name: "invoice",
}


class LineFigures(NamedTuple):
    """Where the units of one line are; `open_demand` units have no reservation or pick yet.

    A named tuple rather than a frozen dataclass: a saga step computes the figures of every
    line two or three times, and a frozen dataclass of eleven fields costs ~4x more to build.
    """

    ordered: int
    cancelled: int
    pending: int
    open_demand: int
    backordered: int
    held: int
    released: int
    picked: int
    shipped: int
    delivered: int
    invoiced: int

    @property
    def allocated(self) -> int:
        return self.held + self.released


@dataclass
class Effects:
    """What one saga call produced: events, commands, and whether the order changed."""

    ctx: Context
    timeouts: StepTimeouts
    events: list[OrderEvent] = field(default_factory=list)
    commands: list[SagaCommand] = field(default_factory=list)
    changed: bool = False
    # Index of the first timeline entry this call wrote; their step is fixed up at the end.
    first_entry: int | None = None
    # The order's exception when the call began, and whether the call is an operator's retry:
    # what it raised or cleared is published from them at its end (exception_episodes.py).
    exception_at_start: ExceptionState | None = None
    retried: bool = False

    def note(
        self,
        order: Order,
        kind: TimelineEntryKind,
        detail: str,
        *,
        event_type: str = "",
        event_id: str = "",
    ) -> None:
        """Append a timeline entry (and mark the order changed)."""
        if self.first_entry is None:
            self.first_entry = len(order.timeline)
        order.timeline.append(
            TimelineEntry(
                occurred_at=self.ctx.now,
                kind=kind,
                step=order.step,
                detail=detail,
                event_type=event_type,
                event_id=event_id,
                correlation_id=self.ctx.correlation_id,
            )
        )
        self.changed = True

    def emit(self, order: Order, event: OrderEvent) -> None:
        """Publish an order event (through the outbox) and record it on the timeline."""
        self.events.append(event)
        self.note(order, TimelineEntryKind.EVENT, "published", event_type=type(event).__name__)

    def command(self, command: SagaCommand) -> None:
        self.commands.append(command)
        self.changed = True


def figures(order: Order) -> dict[int, LineFigures]:
    """The figures of every line, computed from the saga records."""
    # One pass over each kind of record (this runs a few times per saga step).
    pending: dict[int, int] = {}
    for request in order.pending.values():
        _add_quantities(pending, request.lines)
    held: dict[int, int] = {}
    released: dict[int, int] = {}
    for r in order.reservations.values():
        if r.status is HoldStatus.ACTIVE:
            _add_quantities(released if r.released_to_warehouse else held, r.lines)
    picked: dict[int, int] = {}
    for pick in order.picks.values():
        for p in pick.lines:
            picked[p.line_number] = picked.get(p.line_number, 0) + p.quantity_picked
    # Units back from the carrier that an operator decided on are no longer the order's picked
    # units: reshipped ones are open demand again, cancelled ones are cancelled.
    decided: dict[int, int] = {}
    shipped: dict[int, int] = {}
    delivered: dict[int, int] = {}
    # A returned shipment's invoice (billed on ship) is credited once an operator decides, so
    # its units never count as invoiced.
    returned_ids: set[str] = set()
    for s in order.shipments.values():
        if s.returned or s.cancelled:
            returned_ids.add(s.shipment_id)
            if s.returned and s.resolution is not None:
                _add_quantities(decided, s.lines)
            continue
        if s.manifested:
            _add_quantities(shipped, s.lines)
        if s.delivered:
            _add_quantities(delivered, s.lines)
    invoiced: dict[int, int] = {}
    for i in order.invoices.values():
        if i.shipment_id not in returned_ids:
            _add_quantities(invoiced, i.lines)
    result = {}
    cancelled_order = order.status is OrderStatus.CANCELLED
    for line in order.lines:
        n = line.line_number
        allocated = held.get(n, 0) + released.get(n, 0)
        # A decision waits for the returned units' picks (returned_to_sender.resolve), so this
        # never goes below zero; the floor only guards hand-made records.
        kept_picked = max(0, picked.get(n, 0) - decided.get(n, 0))
        open_demand = 0
        if not cancelled_order:
            open_demand = max(
                0, line.quantity_ordered - line.quantity_cancelled - allocated - kept_picked
            )
        result[n] = LineFigures(
            ordered=line.quantity_ordered,
            cancelled=line.quantity_cancelled,
            pending=pending.get(n, 0),
            open_demand=open_demand,
            backordered=min(order.backordered.get(n, 0), open_demand),
            held=held.get(n, 0),
            released=released.get(n, 0),
            picked=kept_picked,
            shipped=shipped.get(n, 0),
            delivered=delivered.get(n, 0),
            invoiced=invoiced.get(n, 0),
        )
    return result


def sync_lines(order: Order) -> dict[int, LineFigures]:
    """Rewrite the proto-facing line figures from the records; returns the figures."""
    figs = figures(order)
    order.lines = [_synced_line(line, figs[line.line_number]) for line in order.lines]
    return figs


def _synced_line(line: OrderLine, figs: LineFigures) -> OrderLine:
    """The line with `figs`' quantities; the same object when they did not change (the store
    then re-encodes nothing for it)."""
    if (
        line.quantity_allocated == figs.allocated
        and line.quantity_backordered == figs.backordered
        and line.quantity_picked == figs.picked
        and line.quantity_shipped == figs.shipped
        and line.quantity_delivered == figs.delivered
        and line.quantity_invoiced == figs.invoiced
    ):
        return line
    return OrderLine(
        line_number=line.line_number,
        sku=line.sku,
        unit_price=line.unit_price,
        quantity_ordered=line.quantity_ordered,
        quantity_allocated=figs.allocated,
        quantity_backordered=figs.backordered,
        quantity_picked=figs.picked,
        quantity_shipped=figs.shipped,
        quantity_delivered=figs.delivered,
        quantity_invoiced=figs.invoiced,
        quantity_cancelled=line.quantity_cancelled,
        quantity_returned=line.quantity_returned,
    )


def derive_status(order: Order, line_figures: dict[int, LineFigures] | None = None) -> OrderStatus:
    """The status the records imply, ignoring exception and cancellation (module docstring).

    `line_figures` is `figures(order)` when the caller has it already."""
    figs = (line_figures if line_figures is not None else figures(order)).values()
    if any(f.backordered for f in figs):
        return OrderStatus.BACKORDERED
    # One pass: the least-advanced stage any line has units in (runs at every saga step).
    earliest = len(_STAGES)
    for f in figs:
        stage = _earliest_stage(f)
        if stage < earliest:
            earliest = stage
            if stage == 0:
                break
    if earliest < len(_STAGES):
        return _STAGES[earliest]
    if (
        order.availability_request is None
        and not order.pending
        and all(
            f.invoiced >= f.ordered - f.cancelled and f.delivered >= f.ordered - f.cancelled
            for f in figs
        )
    ):
        return OrderStatus.COMPLETED
    return OrderStatus.PLACED


# The stages a unit goes through before COMPLETED, least advanced first.
_STAGES = (
    OrderStatus.PLACED,
    OrderStatus.ALLOCATED,
    OrderStatus.RELEASED,
    OrderStatus.PICKED,
    OrderStatus.SHIPPED,
    OrderStatus.DELIVERED,
)


def _earliest_stage(f: LineFigures) -> int:
    """The index in `_STAGES` of the least-advanced stage the line has units in;
    len(_STAGES) when it has none (every unit delivered and invoiced, or none wanted)."""
    shipped = _eff_shipped(f)
    if f.open_demand > f.backordered:
        return 0
    if f.held > 0:
        return 1
    if f.released > 0:
        return 2
    if _eff_picked(f) > shipped:
        return 3
    if shipped > f.delivered:
        return 4
    if f.delivered > f.invoiced:
        return 5
    return len(_STAGES)


def waiting_for(order: Order) -> str:
    """What the order waits for now: a step name, BACKORDER_WAIT, or "" when it waits for nothing
    that can time out (terminal, or in EXCEPTION)."""
    if order.is_terminal or order.exception is not None:
        return ""
    return _waiting_in(order, derive_status(order))


def _waiting_in(order: Order, derived: OrderStatus) -> str:
    """`waiting_for` of an open order not in EXCEPTION whose records imply `derived`."""
    step = STEP_OF_STATUS[derived]
    if step is FulfillmentStep.RESERVE and not order.pending and order.availability_request is None:
        return BACKORDER_WAIT
    return step.name


def refresh(order: Order, fx: Effects) -> dict[int, LineFigures]:
    """Bring lines, status, step, exception and deadline in line with the records; returns the
    line figures, which still hold afterwards (the saga hands them on to the store)."""
    # Nothing below changes the records the figures (and so the derived status) come from, so
    # they are computed once.
    line_figures = sync_lines(order)
    if order.is_terminal:
        stamp_steps(order, fx)
        return line_figures
    derived = derive_status(order, line_figures)
    if derived is OrderStatus.COMPLETED:
        order.exception = None
        _move(
            order,
            fx,
            OrderStatus.COMPLETED,
            FulfillmentStep.COMPLETE,
            "every unit delivered and invoiced",
        )
        fx.emit(
            order,
            OrderCompleted(order.order_id, order.partner_id, billed_invoices(order), fx.ctx.now),
        )
        _set_deadline(order, fx, "")
        stamp_steps(order, fx)
        return line_figures
    if order.exception is not None and _exception_resolved(order, derived):
        fx.note(order, TimelineEntryKind.EXCEPTION, f"resolved: {order.exception.reason}")
        order.exception = None
    if order.exception is None:
        _await_decision(order, fx)
    if order.exception is not None:
        _move(order, fx, OrderStatus.EXCEPTION, order.exception.step, order.exception.reason)
    else:
        _move(order, fx, derived, STEP_OF_STATUS[derived], "")
    in_exception = order.exception is not None
    _set_deadline(order, fx, "" if in_exception else _waiting_in(order, derived))
    if fx.changed:
        order.updated_at = fx.ctx.now
    stamp_steps(order, fx)
    return line_figures


def stamp_steps(order: Order, fx: Effects) -> None:
    """Give the entries this call wrote the step the order ended in ("the step after it")."""
    if fx.first_entry is None:
        return
    for index in range(fx.first_entry, len(order.timeline)):
        entry = order.timeline[index]
        if entry.kind is not TimelineEntryKind.STATUS_CHANGE and entry.step is not order.step:
            order.timeline[index] = replace(entry, step=order.step)


def _exception_resolved(order: Order, derived: OrderStatus) -> bool:
    """A shipment failure clears when that shipment moves on; any other exception when the
    order has left the step it was stuck in."""
    exc = order.exception
    assert exc is not None
    if exc.shipment_id:
        shipment = order.shipments.get(exc.shipment_id)
        if shipment is None:
            return False
        if shipment.returned:
            return shipment.resolution is not None
        if exc.step is FulfillmentStep.AWAIT_DELIVERY:
            return shipment.delivered
        return shipment.manifested
    return STEP_OF_STATUS[derived] is not exc.step


def undecided_returns(order: Order) -> list[ShipmentRecord]:
    """Shipments returned to sender that wait for an operator's decision, by shipment id."""
    return sorted(
        (s for s in order.shipments.values() if s.returned and s.resolution is None),
        key=lambda s: s.shipment_id,
    )


def awaiting_decision_reason(shipment: ShipmentRecord) -> str:
    """The exception reason of a shipment returned to sender: what came back, and the way on."""
    units = sum(q.quantity for q in shipment.lines)
    return (
        f"shipment {shipment.shipment_id} returned to sender ({units} units back at "
        f"{shipment.location_id or 'the warehouse'}): reship it or cancel and credit it"
    )


def billed_invoices(order: Order) -> tuple[str, ...]:
    """The invoices that bill the order: not those of shipments returned to sender (credited)."""
    gone = {s.shipment_id for s in order.shipments.values() if s.returned or s.cancelled}
    return tuple(sorted(i for i, inv in order.invoices.items() if inv.shipment_id not in gone))


def _await_decision(order: Order, fx: Effects) -> None:
    """A shipment returned to sender makes an order with no other exception show EXCEPTION,
    naming the shipment (the oldest id first, one at a time) and the two operator actions."""
    undecided = undecided_returns(order)
    if not undecided:
        return
    reason = awaiting_decision_reason(undecided[0])
    order.exception = ExceptionState(
        FulfillmentStep.AWAIT_DELIVERY, reason, fx.ctx.now, shipment_id=undecided[0].shipment_id
    )
    fx.note(order, TimelineEntryKind.EXCEPTION, reason)


def _move(
    order: Order, fx: Effects, status: OrderStatus, step: FulfillmentStep, detail: str
) -> None:
    if (status, step) == (order.status, order.step):
        return
    previous = order.status
    # The status table (states.py) must allow the move; the timeline records its name. A step
    # change within EXCEPTION is no status transition.
    name = states.ORDER.transition(previous, status) if status is not previous else ""
    order.status, order.step = status, step
    order.timeline.append(
        TimelineEntry(
            occurred_at=fx.ctx.now,
            kind=TimelineEntryKind.STATUS_CHANGE,
            step=step,
            detail=detail or f"{previous.name} -> {status.name}",
            from_status=previous,
            to_status=status,
            correlation_id=fx.ctx.correlation_id,
            transition=name,
        )
    )
    fx.changed = True


def _set_deadline(order: Order, fx: Effects, wait: str) -> None:
    if wait == order.deadline_key:
        return
    order.deadline_key = wait
    order.step_entered_at = fx.ctx.now
    timeout = fx.timeouts.for_wait(wait) if wait else None
    order.step_deadline = fx.ctx.now + timeout if timeout is not None else None
    fx.changed = True


def _eff_shipped(f: LineFigures) -> int:
    # Billing invoices a shipment at its manifest or its delivery: either way it shipped.
    return max(f.shipped, f.delivered, f.invoiced)


def _eff_picked(f: LineFigures) -> int:
    return max(f.picked, _eff_shipped(f))


def _add_quantities(totals: dict[int, int], lines: Iterable[HeldLine | LineQuantity]) -> None:
    """Add each line's quantity to `totals`, by line number."""
    for line in lines:
        totals[line.line_number] = totals.get(line.line_number, 0) + line.quantity
