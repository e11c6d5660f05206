"""Proto ↔ domain for business flows: which milestone each event marks, and flows → responses.

Milestones come from what the handler already has: the event's headers (its aggregate and
ce-time) and the links its body carried (a manifested shipment's order, an invoice's shipment,
a credit note's return). The one extra decode is the manifested shipment's promised delivery
(`rate.estimated_delivery_time`), one event per lifecycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from crossdock.events.v1 import shipment_events_pb2
from crossdock.tower.v1 import tower_pb2
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError

from services.control_tower.domain.flows import (
    FlowItem,
    FlowSummary,
    Milestone,
    MilestoneSeen,
)
from services.control_tower.domain.references import Link, ReferenceKind
from services.control_tower.domain.timeline import RecordedEvent, event_name
from services.kit.proto_values import timestamp

M = Milestone

# Event name → the milestone it marks on its own aggregate.
_OWN: dict[str, Milestone] = {
    "crossdock.order.placed": M.ORDER_PLACED,
    "crossdock.order.allocated": M.ORDER_ALLOCATED,
    "crossdock.order.released": M.ORDER_RELEASED,
    "crossdock.order.cancelled": M.ORDER_ENDED,
    "crossdock.order.completed": M.ORDER_ENDED,
    # Inventory keys a completed pick by its order.
    "crossdock.inventory.pick_completed": M.ORDER_PICKED,
    "crossdock.shipment.manifested": M.SHIPMENT_LABELLED,
    "crossdock.shipment.picked_up": M.SHIPMENT_IN_TRANSIT,
    "crossdock.shipment.out_for_delivery": M.SHIPMENT_IN_TRANSIT,
    "crossdock.shipment.delivery_exception": M.SHIPMENT_IN_TRANSIT,
    "crossdock.shipment.delivered": M.SHIPMENT_DELIVERED,
    "crossdock.shipment.cancelled": M.SHIPMENT_ENDED,
    "crossdock.shipment.returned_to_sender": M.SHIPMENT_ENDED,
}

# Event name → (the kind of link whose value is the item, the milestone it marks there).
_LINKED: dict[str, tuple[ReferenceKind, Milestone]] = {
    "crossdock.billing.invoice_posted": (ReferenceKind.SHIPMENT_ID, M.SHIPMENT_INVOICED),
    "crossdock.return.authorized": (ReferenceKind.RETURN_ID, M.RETURN_AUTHORIZED),
    "crossdock.return.received": (ReferenceKind.RETURN_ID, M.RETURN_RECEIVED),
    "crossdock.billing.credit_note_posted": (ReferenceKind.RETURN_ID, M.RETURN_CREDITED),
}

_MANIFESTED = "crossdock.shipment.manifested"


def marks_milestones(subject: str) -> bool:
    """True for the event types that mark some milestone."""
    name = event_name(subject)
    return name in _OWN or name in _LINKED


def _promised_at(body: bytes) -> float | None:
    """The carrier's promised delivery on a manifested shipment, if it gave one."""
    try:
        rate = shipment_events_pb2.ShipmentManifested.FromString(body).shipment.rate
    except DecodeError:
        return None  # the links' decode already dead-lettered a body this broken
    if not rate.HasField("estimated_delivery_time"):
        return None
    return rate.estimated_delivery_time.ToDatetime(UTC).timestamp()


def milestones_of(event: RecordedEvent, links: Sequence[Link], body: bytes) -> list[MilestoneSeen]:
    """The milestones `event` marks (none for most types); `links` are those its body carried."""
    name = event_name(event.subject)
    at = event.occurred_at
    found: list[MilestoneSeen] = []
    own = _OWN.get(name)
    if own is not None and event.aggregate_id:
        found.append(MilestoneSeen(event.aggregate_id, own, at))
    linked = _LINKED.get(name)
    if linked is not None:
        kind, milestone = linked
        found += [MilestoneSeen(link.value, milestone, at) for link in links if link.kind is kind]
    if name == _MANIFESTED:
        # The order got its label, and the shipment its promise (when the carrier gave one).
        orders = {link.order_id for link in links if link.kind is ReferenceKind.SHIPMENT_ID}
        found += [MilestoneSeen(order_id, M.ORDER_LABELLED, at) for order_id in sorted(orders)]
        promised = _promised_at(body)
        if promised is not None and event.aggregate_id:
            found.append(MilestoneSeen(event.aggregate_id, M.SHIPMENT_PROMISED, promised))
    return found


# -- flows → proto ---------------------------------------------------------------------------


def _duration(seconds: float) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration


def flow_to_proto(summary: FlowSummary) -> tower_pb2.FlowHealth:
    return tower_pb2.FlowHealth(
        flow=summary.flow.name,
        item_kind=summary.flow.item.value,
        description=summary.flow.description,
        items=summary.items,
        oldest_age=_duration(summary.oldest_age_seconds),
        sla=_duration(summary.sla_seconds),
        breaches=summary.breaches,
        age_buckets=[
            tower_pb2.AgeBucket(le_seconds=bound, items=count)
            for bound, count in summary.per_bucket()
        ],
    )


def flow_item_to_proto(item: FlowItem) -> tower_pb2.FlowItem:
    return tower_pb2.FlowItem(
        item_id=item.item_id,
        order_id=item.order_id,
        enter_time=timestamp(datetime.fromtimestamp(item.entered_at, UTC)),
        age=_duration(item.age_seconds),
        breached=item.breached,
    )
