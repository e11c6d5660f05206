"""Orders held at every step of the spine, and returns, for the business-flow tests: each
scenario's events and the flows a hand count puts it in."""

from __future__ import annotations

from dataclasses import dataclass, field

from crossdock.billing.v1 import billing_pb2
from crossdock.carrier.v1 import carrier_pb2
from crossdock.events.v1 import (
    billing_events_pb2,
    order_events_pb2,
    return_events_pb2,
    shipment_events_pb2,
)
from crossdock.order.v1 import order_pb2
from crossdock.shipment.v1 import shipment_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from services.control_tower.domain.flows import DAY
from services.kit.ids import resource_id
from tests.control_tower.lifecycle import T0, Lifecycle, Published, published

# Lifecycle().events, by index: how many of them an order held at a step has published.
PLACED, RELEASED, PICKED, MANIFESTED, PICKED_UP, DELIVERED, INVOICED = 1, 4, 5, 7, 9, 10, 12
# A clock past every default SLA and the default transit allowance (5 days after pickup).
LATE = T0 + 30 * DAY


@dataclass
class Scenario:
    """Events of several items and, per flow, the ids a hand count finds in it at LATE."""

    events: list[Published] = field(default_factory=list)
    expected: dict[str, set[str]] = field(default_factory=dict)

    def add(self, events: list[Published], flow: str | None = None, item_id: str = "") -> None:
        self.events += events
        if flow is not None:
            self.expected.setdefault(flow, set()).add(item_id)


def held_order(steps: int, start: float = T0) -> Lifecycle:
    """An order whose first `steps` events happened."""
    order = Lifecycle().build(start)
    order.events = order.events[:steps]
    return order


def promised_manifest(order: Lifecycle, promised_at: float) -> Published:
    """The order's manifest, with the carrier's estimated delivery at `promised_at`."""
    ship = shipment_pb2.Shipment(
        shipment_id=order.shipment_id,
        order_id=order.order_id,
        tracking_number=order.tracking_number,
        rate=carrier_pb2.Rate(estimated_delivery_time=Timestamp(seconds=int(promised_at))),
    )
    return published(
        shipment_events_pb2.ShipmentManifested(shipment=ship),
        order.shipment_id,
        T0 + 5,  # the lifecycle's manifest instant
        f"corr-{order.order_id}",
    )


def return_events(steps: int, start: float = T0) -> tuple[str, list[Published]]:
    """A return: authorized, received, credited; the first `steps` of them."""
    order_id, return_id = resource_id("ord"), resource_id("ret")
    order_return = order_pb2.Return(return_id=return_id, order_id=order_id)
    note = billing_pb2.CreditNote(
        credit_note_id=resource_id("crn"), order_id=order_id, return_id=return_id
    )
    corr = f"corr-{order_id}"
    events = [
        published(
            return_events_pb2.ReturnAuthorized(order_return=order_return), return_id, start, corr
        ),
        published(
            return_events_pb2.ReturnReceived(order_return=order_return), return_id, start + 1, corr
        ),
        published(
            billing_events_pb2.CreditNotePosted(credit_note=note),
            note.credit_note_id,
            start + 2,
            corr,
        ),
    ]
    return return_id, events[:steps]


def cancelled_order() -> Lifecycle:
    """An order released, then cancelled before its pick: in no flow."""
    order = held_order(RELEASED)
    order.events.append(
        published(
            order_events_pb2.OrderCancelled(order_id=order.order_id),
            order.order_id,
            T0 + 3,
            f"corr-{order.order_id}",
        )
    )
    return order


def mixed() -> Scenario:
    """Items at every step, a cancelled order, completed ones and returns."""
    s = Scenario()
    for steps, flow in (
        (PLACED, "awaiting_allocation"),
        (RELEASED, "released_not_picked"),
        (RELEASED, "released_not_picked"),
        (PICKED, "picked_no_label"),
    ):
        order = held_order(steps)
        s.add(order.events, flow, order.order_id)
    for steps, flow in (
        (MANIFESTED, "labelled_not_picked_up"),
        (PICKED_UP, "in_transit_past_promise"),
        (DELIVERED, "delivered_not_invoiced"),
    ):
        order = held_order(steps)
        s.add(order.events, flow, order.shipment_id)
    s.add(held_order(INVOICED).events)  # invoiced, not completed yet: in no flow
    s.add(Lifecycle().build().events)  # completed
    s.add(cancelled_order().events)
    # Picked up with a promise a day after the start: late at LATE, without the allowance.
    promised = held_order(PICKED_UP)
    promised.events[MANIFESTED - 1] = promised_manifest(promised, T0 + DAY)
    s.add(promised.events, "in_transit_past_promise", promised.shipment_id)
    for steps, flow in (
        (1, "return_authorized_not_received"),
        (2, "return_received_not_credited"),
        (3, None),
    ):
        return_id, events = return_events(steps)
        s.add(events, flow, return_id)
    return s
