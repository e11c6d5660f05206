"""One order's lifecycle as the control tower sees it: the events every service publishes, with
their CloudEvents headers, and the same events in other arrival orders."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from crossdock.billing.v1 import billing_pb2
from crossdock.events.v1 import (
    billing_events_pb2,
    carrier_events_pb2,
    inventory_events_pb2,
    order_events_pb2,
    shipment_events_pb2,
)
from crossdock.inventory.v1 import inventory_pb2
from crossdock.order.v1 import order_pb2
from crossdock.shipment.v1 import shipment_pb2
from google.protobuf import wrappers_pb2
from google.protobuf.message import Message

from services.control_tower.entrypoints.consumers import SequencedHeaders
from services.kit import events as ev
from services.kit.ids import new_event_id, resource_id
from services.kit.outbox import build_headers

T0 = 1_780_000_000.0  # 2026-05-28T20:26:40Z


@dataclass(frozen=True)
class Published:
    """One event as its producer's relay publishes it."""

    message: Message
    headers: dict[str, str]
    # Its sequence in its domain stream (what JetStream would give it).
    stream_seq: int = 0

    @property
    def subject(self) -> str:
        return self.headers[ev.CE_TYPE]

    @property
    def event_id(self) -> str:
        return self.headers[ev.CE_ID]


def published(
    message: Message,
    aggregate_id: str,
    at: float,
    correlation_id: str,
    trace_id: str = "",
    stream_seq: int = 0,
) -> Published:
    spec = ev.event_spec(type(message))
    headers = build_headers(
        event_id=new_event_id(),
        subject=spec.subject,
        source=f"crossdock/{spec.producer}",
        aggregate_id=aggregate_id,
        dataschema=ev.dataschema_for(message.DESCRIPTOR.full_name),
        correlation_id=correlation_id,
        created_at=at,
        traceparent=f"00-{trace_id}-00f067aa0ba902b7-01" if trace_id else None,
    )
    return Published(message, headers, stream_seq)


@dataclass
class Lifecycle:
    """The ids of one order and its events, in the order they happened."""

    partner_id: str = field(default_factory=lambda: resource_id("ptn"))
    external_order_id: str = field(default_factory=lambda: f"PO-{random.randrange(10**9)}")
    order_id: str = field(default_factory=lambda: resource_id("ord"))
    shipment_id: str = field(default_factory=lambda: resource_id("shp"))
    reservation_id: str = field(default_factory=lambda: resource_id("rsv"))
    invoice_id: str = field(default_factory=lambda: resource_id("inv"))
    tracking_number: str = field(default_factory=lambda: f"1Z{random.randrange(10**12):012d}")
    invoice_number: str = field(default_factory=lambda: f"INV-2026-{random.randrange(10**6):06d}")
    trace_id: str = "4bf92f3577b34da6a3ce929d0e0e4736"
    events: list[Published] = field(default_factory=list)

    def build(self, start: float = T0) -> Lifecycle:
        """Fill `events`: placed → … → completed, one second apart (released and allocated in
        the same instant, as one transaction of the saga commits them)."""
        order = order_pb2.Order(
            order_id=self.order_id,
            partner_id=self.partner_id,
            external_order_id=self.external_order_id,
        )
        reservation = inventory_pb2.Reservation(
            reservation_id=self.reservation_id, order_id=self.order_id
        )
        ship = shipment_pb2.Shipment(
            shipment_id=self.shipment_id,
            order_id=self.order_id,
            partner_id=self.partner_id,
            carrier="sandbox",
            tracking_number=self.tracking_number,
        )
        ref = shipment_events_pb2.ShipmentRef(
            shipment_id=self.shipment_id,
            order_id=self.order_id,
            tracking_number=self.tracking_number,
        )
        invoice = billing_pb2.Invoice(
            invoice_id=self.invoice_id,
            invoice_number=self.invoice_number,
            order_id=self.order_id,
            shipment_id=self.shipment_id,
            partner_id=self.partner_id,
        )
        o, corr = self.order_id, f"corr-{self.order_id}"
        steps: list[tuple[Message, str, float]] = [
            (order_events_pb2.OrderPlaced(order=order), o, 0),
            (inventory_events_pb2.StockReserved(reservation=reservation), self.reservation_id, 1),
            (order_events_pb2.OrderAllocated(order_id=o), o, 2),
            (order_events_pb2.OrderReleased(order_id=o), o, 2),
            (inventory_events_pb2.PickCompleted(order_id=o), o, 3),
            (shipment_events_pb2.ShipmentCreated(shipment=ship), self.shipment_id, 4),
            (shipment_events_pb2.ShipmentManifested(shipment=ship), self.shipment_id, 5),
            (
                carrier_events_pb2.TrackingUpdated(tracking_number=self.tracking_number),
                self.tracking_number,
                6,
            ),
            (shipment_events_pb2.ShipmentPickedUp(shipment=ref), self.shipment_id, 7),
            (shipment_events_pb2.ShipmentDelivered(shipment=ship), self.shipment_id, 8),
            (
                inventory_events_pb2.ReservationReleased(reservation=reservation),
                self.reservation_id,
                8.5,
            ),
            (billing_events_pb2.InvoicePosted(invoice=invoice), self.invoice_id, 9),
            (order_events_pb2.OrderCompleted(order_id=o), o, 10),
        ]
        self.events = [
            published(message, aggregate, start + offset, corr, self.trace_id, index + 1)
            for index, (message, aggregate, offset) in enumerate(steps)
        ]
        return self

    @property
    def subjects(self) -> list[str]:
        return [event.subject for event in self.events]


def as_consumed(events: Sequence[Published]) -> list[tuple[Message, SequencedHeaders]]:
    """What the tower's batch handler receives for `events` (raw bodies, stream sequences)."""
    return [
        (
            wrappers_pb2.BytesValue(value=event.message.SerializeToString()),
            SequencedHeaders(event.headers, event.stream_seq),
        )
        for event in events
    ]
