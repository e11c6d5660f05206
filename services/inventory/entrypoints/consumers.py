"""Inventory's event handlers: order decisions turned into warehouse work and stock releases, and
units coming back from shipments turned into receipts.

- `crossdock.order.released.v1` → one pick task per reservation (idempotent per reservation);
- `crossdock.order.cancelled.v1` → release the order's still-active reservations, which also
  withdraws their open pick tasks (the compensation "cancel before pick releases the stock");
- `crossdock.shipment.cancelled.v1` → its picked units back on hand at the shipment's location
  (the compensation "cancel after pick restocks the units");
- `crossdock.shipment.returned_to_sender.v1` → the parcel's units received back, sellable or in
  quarantine by RETURNED_TO_SENDER_CONDITION.

Handlers run on the DB worker inside the consumer's batch transaction (kit.consumer): the inbox
row, the state change and any outbox rows commit together (`UnitOfWork.of(conn)`). A position
`Conflict` is transient, so the kit NAKs and the redelivery re-runs the handler on fresh rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from crossdock.carrier.v1 import tracking_pb2
from crossdock.events.v1 import order_events_pb2, shipment_events_pb2
from sqlalchemy import Connection

from services.inventory import app
from services.inventory.adapters.contracts import package_items_to_receipt_lines
from services.inventory.domain import StockCondition
from services.inventory.domain.errors import AlreadyExists, InvalidArgument, NotFound
from services.inventory.domain.ids import IdSource
from services.kit.clock import Clock
from services.kit.handlers import HandlerRegistry, PermanentError
from services.kit.uow import UnitOfWork

# The durable is `inventory-order-events` on every stream it reads (the NATS users grant that
# name), shipment events included.
PURPOSE = "order-events"


def event_handlers(
    ids: IdSource,
    clock: Clock,
    *,
    returned_to_sender: StockCondition = StockCondition.QUARANTINE,
) -> HandlerRegistry:
    """The handlers of the `inventory-order-events` consumers (streams ORDER and SHIPMENT).

    `returned_to_sender` is the condition parcels back from the carrier are received in.
    """
    registry = HandlerRegistry()

    def on_released(
        event: order_events_pb2.OrderReleased, headers: Mapping[str, str], conn: Connection
    ) -> None:
        try:
            app.create_pick_tasks(UnitOfWork.of(conn), event.reservation_ids, ids, clock)
        except NotFound as exc:
            # Order only releases reservations inventory granted; a missing one is poison.
            raise PermanentError(str(exc)) from exc

    def on_cancelled(
        event: order_events_pb2.OrderCancelled, headers: Mapping[str, str], conn: Connection
    ) -> None:
        app.release_order_reservations(
            UnitOfWork.of(conn), event.order_id, event.released_reservation_ids, clock
        )

    def on_shipment_cancelled(
        event: shipment_events_pb2.ShipmentCancelled,
        headers: Mapping[str, str],
        conn: Connection,
    ) -> None:
        shipment = event.shipment
        lines = package_items_to_receipt_lines(event.items, StockCondition.SELLABLE, "")
        with _poison_as_permanent():
            app.restock_cancelled_shipment(
                UnitOfWork.of(conn), shipment.shipment_id, shipment.location_id, lines, ids, clock
            )

    def on_returned_to_sender(
        event: shipment_events_pb2.ShipmentReturnedToSender,
        headers: Mapping[str, str],
        conn: Connection,
    ) -> None:
        reason = ""
        if returned_to_sender is not StockCondition.SELLABLE:
            reason = _returned_to_sender_reason(event.incident_reason)
        lines = package_items_to_receipt_lines(event.items, returned_to_sender, reason)
        with _poison_as_permanent():
            app.restock_returned_to_sender(
                UnitOfWork.of(conn),
                event.shipment.shipment_id,
                event.location_id,
                lines,
                ids,
                clock,
            )

    registry.add(order_events_pb2.OrderReleased, on_released)
    registry.add(order_events_pb2.OrderCancelled, on_cancelled)
    registry.add(shipment_events_pb2.ShipmentCancelled, on_shipment_cancelled)
    registry.add(shipment_events_pb2.ShipmentReturnedToSender, on_returned_to_sender)
    return registry


def _returned_to_sender_reason(incident_reason: int) -> str:
    """Why the units are held apart, e.g. "returned to sender: refused"."""
    known = tracking_pb2.IncidentReason.DESCRIPTOR.values_by_number.get(incident_reason)
    if not incident_reason or known is None:
        return "returned to sender"
    return f"returned to sender: {known.name.removeprefix('INCIDENT_REASON_').lower()}"


@contextmanager
def _poison_as_permanent() -> Iterator[None]:
    """A receipt the event can never make (unknown SKU or location, no lot for a lot-controlled
    SKU, the shipment already restocked with other items) is dead-lettered, not retried."""
    try:
        yield
    except (InvalidArgument, NotFound, AlreadyExists) as exc:
        raise PermanentError(str(exc)) from exc
