"""Returns (RMA): the Return aggregate, its lifecycle and its events. Pure; no I/O.

A return is authorized against an order's delivered units (`return_rules.authorize`), received
when inventory records a receipt against it (`receive`) and credited when billing posts a credit
note for it (`credit`). Its status is derived from what it has seen, never set by a transition:
cancelled wins, then a receipt and a credit note make it CREDITED, a receipt alone RECEIVED, and
otherwise it is AUTHORIZED. So a credit note that overtakes its receipt, or any duplicate, ends in
the same state as the natural order, and ReturnReceived is raised once: by the first receipt.

Enum values mirror `crossdock/order/v1/order.proto` (ReturnStatus, ReturnDisposition).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from services.kit.states import StateMachine
from services.order.domain.model import Order, TimelineEntry, TimelineEntryKind


class ReturnStatus(enum.Enum):
    """Where a return is in its life."""

    AUTHORIZED = 1
    RECEIVED = 2
    CREDITED = 3
    CANCELLED = 4


# Allowed status moves (services.kit.states); `receive` and `credit` check theirs.
RETURN_TRANSITIONS = StateMachine(
    "return",
    [
        ("receive", {ReturnStatus.AUTHORIZED}, ReturnStatus.RECEIVED),
        ("credit", {ReturnStatus.RECEIVED}, ReturnStatus.CREDITED),
        # A credit note that overtook its receipt: the receipt completes both at once.
        ("receive and credit", {ReturnStatus.AUTHORIZED}, ReturnStatus.CREDITED),
        ("cancel", {ReturnStatus.AUTHORIZED}, ReturnStatus.CANCELLED),
    ],
)


class ReturnDisposition(enum.Enum):
    """What happens to returned units."""

    RESTOCK = 1
    REFURBISH = 2
    SCRAP = 3
    RETURN_TO_VENDOR = 4


class ReceivedCondition(enum.Enum):
    """The condition the warehouse recorded returned units in (inventory's StockCondition)."""

    SELLABLE = 1
    DAMAGED = 2
    SCRAP = 3
    QUARANTINE = 4


# Worse conditions first: they decide a line whose units arrived in equal parts.
_SEVERITY = (
    ReceivedCondition.SCRAP,
    ReceivedCondition.DAMAGED,
    ReceivedCondition.QUARANTINE,
    ReceivedCondition.SELLABLE,
)


@dataclass(frozen=True)
class ReturnLine:
    """One order line's units coming back (the proto's ReturnLine)."""

    order_line_number: int
    sku: str
    quantity_authorized: int
    disposition: ReturnDisposition
    reason: str
    quantity_received: int = 0


@dataclass(frozen=True)
class Return:
    """A return merchandise authorization against one order, stored as one document."""

    return_id: str
    order_id: str
    partner_id: str
    lines: tuple[ReturnLine, ...]
    return_location_id: str
    created_at: datetime
    updated_at: datetime
    idempotency_key: str = ""
    # What the partner asked for, to tell a replay from a different request under the same key.
    request_fingerprint: str = ""
    cancelled: bool = False
    receipt_id: str = ""
    received_at: datetime | None = None
    # Receipts after the first: recorded so a redelivery is recognised, never counted (below).
    later_receipt_ids: tuple[str, ...] = ()
    credit_note_ids: tuple[str, ...] = ()

    @property
    def status(self) -> ReturnStatus:
        if self.cancelled:
            return ReturnStatus.CANCELLED
        if self.receipt_id:
            return ReturnStatus.CREDITED if self.credit_note_ids else ReturnStatus.RECEIVED
        return ReturnStatus.AUTHORIZED

    @property
    def counts_against_order(self) -> bool:
        """Whether its authorized units use up the order's returnable units."""
        return not self.cancelled


@dataclass(frozen=True)
class ReceivedUnits:
    """Units of one SKU on a return receipt, in the condition they were recorded in."""

    sku: str
    quantity: int
    condition: ReceivedCondition = ReceivedCondition.SELLABLE


@dataclass(frozen=True)
class ReturnReceipt:
    """An inventory receipt recorded against a return (source RETURN, reference = return id)."""

    receipt_id: str
    return_id: str
    location_id: str
    units: tuple[ReceivedUnits, ...]


# -- domain events -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReturnAuthorized:
    """crossdock.return.authorized.v1: the customer may send the goods back."""

    order_return: Return
    occurred_at: datetime


@dataclass(frozen=True)
class ReturnReceived:
    """crossdock.return.received.v1: the goods arrived; billing credits them."""

    order_return: Return
    receipt_id: str
    occurred_at: datetime


ReturnEvent = ReturnAuthorized | ReturnReceived


@dataclass(frozen=True)
class ReturnChange:
    """What a lifecycle step did: the return after it, whether it changed, and its events."""

    order_return: Return
    changed: bool = False
    events: tuple[ReturnEvent, ...] = field(default=())


# -- lifecycle -----------------------------------------------------------------------------------


def receive(order_return: Return, receipt: ReturnReceipt, now: datetime) -> ReturnChange:
    """Record the goods of a receipt against the return.

    The first receipt receives the return: each line gets the units of its SKU on the receipt
    (at most the units authorized: a surplus is stock, not a credit) and a disposition from
    the condition they arrived in; ReturnReceived is raised. A redelivered receipt changes
    nothing; a second, different receipt is only recorded (its units are not credited again).
    """
    if order_return.cancelled:
        return ReturnChange(order_return)
    seen = {order_return.receipt_id, *order_return.later_receipt_ids}
    if receipt.receipt_id in seen:
        return ReturnChange(order_return)
    if order_return.receipt_id:
        later = (*order_return.later_receipt_ids, receipt.receipt_id)
        return ReturnChange(replace(order_return, later_receipt_ids=later, updated_at=now), True)
    lines = tuple(_receive_line(line, receipt.units) for line in order_return.lines)
    received = replace(
        order_return, lines=lines, receipt_id=receipt.receipt_id, received_at=now, updated_at=now
    )
    RETURN_TRANSITIONS.transition(order_return.status, received.status)
    return ReturnChange(received, True, (ReturnReceived(received, receipt.receipt_id, now),))


def credit(order_return: Return, credit_note_id: str, now: datetime) -> ReturnChange:
    """Record a credit note billing posted for the return (CREDITED once it is received too)."""
    if order_return.cancelled or credit_note_id in order_return.credit_note_ids:
        return ReturnChange(order_return)
    notes = (*order_return.credit_note_ids, credit_note_id)
    credited = replace(order_return, credit_note_ids=notes, updated_at=now)
    if credited.status is not order_return.status:
        RETURN_TRANSITIONS.transition(order_return.status, credited.status)
    return ReturnChange(credited, True)


def disposition_for(
    authorized: ReturnDisposition, units: Iterable[ReceivedUnits]
) -> ReturnDisposition:
    """What happens to a line's units, given the condition most of them arrived in.

    Sellable units went back into stock (RESTOCK), scrap is scrapped; damaged units cannot be
    restocked as they are (REFURBISH, unless the authorization already chose scrap or the
    vendor); quarantined units wait for inspection, so the authorized disposition stands.
    """
    totals: dict[ReceivedCondition, int] = {}
    for unit in units:
        totals[unit.condition] = totals.get(unit.condition, 0) + unit.quantity
    if not totals:
        return authorized
    condition = max(_SEVERITY, key=lambda c: (totals.get(c, 0), -_SEVERITY.index(c)))
    if condition is ReceivedCondition.SELLABLE:
        return ReturnDisposition.RESTOCK
    if condition is ReceivedCondition.SCRAP:
        return ReturnDisposition.SCRAP
    if condition is ReceivedCondition.DAMAGED and authorized is ReturnDisposition.RESTOCK:
        return ReturnDisposition.REFURBISH
    return authorized


def _receive_line(line: ReturnLine, units: tuple[ReceivedUnits, ...]) -> ReturnLine:
    mine = [u for u in units if u.sku == line.sku and u.quantity > 0]
    received = min(sum(u.quantity for u in mine), line.quantity_authorized)
    return replace(
        line,
        quantity_received=received,
        disposition=disposition_for(line.disposition, mine),
    )


# -- the order's side ------------------------------------------------------------------------------


def returned_units(returns: Iterable[Return]) -> dict[int, int]:
    """Units received back per order line, over the order's received (or credited) returns."""
    totals: dict[int, int] = {}
    for order_return in returns:
        if order_return.cancelled or not order_return.receipt_id:
            continue
        for line in order_return.lines:
            number = line.order_line_number
            totals[number] = totals.get(number, 0) + line.quantity_received
    return totals


def record_returned_units(order: Order, returned: dict[int, int], now: datetime) -> bool:
    """Set the order lines' quantity_returned from `returned_units`; True when one changed.

    Recomputed from every return each time (never incremented), so applying it again or in
    another order gives the same figures. The saga keeps quantity_returned as it finds it.
    """
    lines = [
        replace(line, quantity_returned=returned.get(line.line_number, 0)) for line in order.lines
    ]
    if lines == order.lines:
        return False
    order.lines = lines
    order.updated_at = now
    return True


def note_on_order(
    order: Order,
    now: datetime,
    detail: str,
    *,
    event_type: str = "",
    event_id: str = "",
    correlation_id: str = "",
) -> None:
    """Put a return's milestone on its order's timeline (GetOrderTimeline)."""
    order.timeline.append(
        TimelineEntry(
            occurred_at=now,
            kind=TimelineEntryKind.EVENT,
            step=order.step,
            detail=detail,
            event_type=event_type,
            event_id=event_id,
            correlation_id=correlation_id,
        )
    )
