"""An order's timeline: its events from every service, the state each moved, in causal order.

Causal order is the producers' commit time (ce-time), ties broken by the event's step in the
order-to-cash flow (a cause's step comes before its effect's) and then by the event id (UUIDv7,
time-ordered per producer), so the same events always sort the same, whatever order they arrived
in. An effect is always committed after its cause was consumed, so with the mesh's clocks in
sync ce-time alone already puts causes first; the two tie-breakers make it total and stable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One consumed event as the tower keeps it: its CloudEvents attributes and context."""

    event_id: str
    subject: str
    producer: str
    aggregate_id: str
    occurred_at: float  # epoch seconds (ce-time)
    trace_id: str
    correlation_id: str
    stream_seq: int


# Event name (subject without its version) → the state it moved, as "<entity> → <STATE>".
# Events that move no state (a tracking update, a code with no mapping) are not listed.
_STATE_CHANGES: dict[str, str] = {
    "crossdock.order.placed": "order → PLACED",
    "crossdock.order.allocated": "order → ALLOCATED",
    "crossdock.order.backordered": "order → BACKORDERED",
    "crossdock.order.released": "order → RELEASED",
    "crossdock.order.cancelled": "order → CANCELLED",
    "crossdock.order.lines_cancelled": "order lines → CANCELLED",
    "crossdock.order.returned_shipment_resolved": "returned shipment → RESOLVED",
    "crossdock.order.completed": "order → COMPLETED",
    "crossdock.order.exception_raised": "order → EXCEPTION",
    "crossdock.order.exception_cleared": "order exception → CLEARED",
    "crossdock.inventory.reserved": "reservation → ACTIVE",
    "crossdock.inventory.reservation_released": "reservation → RELEASED",
    "crossdock.inventory.pick_completed": "pick → COMPLETED",
    "crossdock.inventory.adjusted": "stock position → ADJUSTED",
    "crossdock.inventory.received": "receipt → RECEIVED",
    "crossdock.shipment.created": "shipment → CREATED",
    "crossdock.shipment.manifested": "shipment → MANIFESTED",
    "crossdock.shipment.picked_up": "shipment → PICKED_UP",
    "crossdock.shipment.out_for_delivery": "shipment → OUT_FOR_DELIVERY",
    "crossdock.shipment.delivered": "shipment → DELIVERED",
    "crossdock.shipment.delivery_exception": "shipment → EXCEPTION",
    "crossdock.shipment.returned_to_sender": "shipment → RETURNED_TO_SENDER",
    "crossdock.shipment.cancelled": "shipment → CANCELLED",
    "crossdock.shipment.label_voided": "label → VOIDED",
    "crossdock.shipment.label_void_failed": "label → VOID_FAILED",
    "crossdock.shipment.return_parcel_manifested": "return parcel → MANIFESTED",
    "crossdock.shipment.return_parcel_picked_up": "return parcel → PICKED_UP",
    "crossdock.shipment.return_parcel_delivered": "return parcel → DELIVERED",
    "crossdock.shipment.return_parcel_exception": "return parcel → EXCEPTION",
    "crossdock.billing.invoice_posted": "invoice → POSTED",
    "crossdock.billing.credit_note_posted": "credit note → POSTED",
    "crossdock.billing.freight_charge_finalized": "freight charge → FINAL",
    "crossdock.return.authorized": "return → AUTHORIZED",
    "crossdock.return.received": "return → RECEIVED",
    "crossdock.carrier.code_mapped": "carrier code → MAPPED",
}

# Event name → its step in the order-to-cash flow (DESIGN.md "the spine"), for ties only.
_STEPS: dict[str, int] = {
    "crossdock.order.placed": 0,
    "crossdock.inventory.reserved": 1,
    "crossdock.order.backordered": 2,
    "crossdock.order.allocated": 2,
    "crossdock.order.released": 3,
    "crossdock.inventory.pick_completed": 4,
    "crossdock.shipment.created": 5,
    "crossdock.shipment.manifested": 6,
    "crossdock.carrier.tracking_updated": 7,
    "crossdock.carrier.code_unmapped": 7,
    "crossdock.shipment.picked_up": 8,
    "crossdock.shipment.out_for_delivery": 9,
    "crossdock.shipment.delivery_exception": 9,
    "crossdock.shipment.delivered": 10,
    "crossdock.billing.freight_charge_finalized": 11,
    "crossdock.billing.invoice_posted": 12,
    "crossdock.order.completed": 13,
    "crossdock.return.authorized": 14,
    "crossdock.return.received": 15,
    "crossdock.billing.credit_note_posted": 16,
}
# Events off the happy path (cancellations, voids, returned parcels) tie after every step.
_OFF_PATH_STEP = 50


def event_name(subject: str) -> str:
    """ "crossdock.order.placed.v1" → "crossdock.order.placed" (any version)."""
    return subject.rsplit(".", 1)[0]


def state_change(subject: str) -> str:
    """The state the event moved, e.g. "order → RELEASED"; "" when it moves none."""
    return _STATE_CHANGES.get(event_name(subject), "")


def causal_key(event: RecordedEvent) -> tuple[float, int, str]:
    """The sort key of causal order (see the module doc)."""
    step = _STEPS.get(event_name(event.subject), _OFF_PATH_STEP)
    return (event.occurred_at, step, event.event_id)


def causal_order(events: Iterable[RecordedEvent]) -> list[RecordedEvent]:
    """`events` in causal order, each once (the same event id recorded twice counts once)."""
    unique = {event.event_id: event for event in events}
    return sorted(unique.values(), key=causal_key)
