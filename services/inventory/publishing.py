"""Domain events → `crossdock.events.v1` messages → outbox rows, inside the caller's unit of work.

Called by the api and the consumers with the same connection that wrote the state change, so an
event exists if and only if its change committed (DESIGN.md, "Publishing").
"""

from __future__ import annotations

from collections.abc import Iterable

from crossdock.events.v1 import inventory_events_pb2 as events_pb
from google.protobuf.message import Message
from sqlalchemy import Connection

from services.inventory.api import mapping
from services.inventory.domain.events import (
    InventoryEvent,
    PickCompleted,
    ReservationReleased,
    StockAdjusted,
    StockReceived,
    StockReserved,
)
from services.kit import outbox
from services.kit.proto_values import timestamp


def to_message(event: InventoryEvent) -> tuple[Message, str]:
    """The event message and its aggregate id (the CloudEvents subject)."""
    at = timestamp(event.occurred_at)
    if isinstance(event, StockReserved):
        reservation = event.reservation
        message: Message = events_pb.StockReserved(
            reservation=mapping.reservation_to_proto(reservation), occur_time=at
        )
        return message, reservation.reservation_id
    if isinstance(event, ReservationReleased):
        reservation = event.reservation
        message = events_pb.ReservationReleased(
            reservation=mapping.reservation_to_proto(reservation),
            reason=event.reason,
            occur_time=at,
        )
        return message, reservation.reservation_id
    if isinstance(event, PickCompleted):
        message = events_pb.PickCompleted(
            pick_id=event.pick_id,
            reservation_id=event.reservation_id,
            order_id=event.order_id,
            location_id=event.location_id,
            lines=[mapping.confirmation_to_proto(line) for line in event.lines],
            occur_time=at,
        )
        return message, event.order_id
    if isinstance(event, StockAdjusted):
        message = events_pb.StockAdjusted(
            adjustment=mapping.adjustment_to_proto(event.adjustment),
            position=mapping.position_to_proto(event.position),
            occur_time=at,
        )
        return message, f"{event.position.sku}@{event.position.location_id}"
    if isinstance(event, StockReceived):
        message = events_pb.StockReceived(
            receipt=mapping.receipt_to_proto(event.receipt),
            positions=[mapping.position_to_proto(p) for p in event.positions],
            occur_time=at,
        )
        return message, event.receipt.receipt_id
    raise TypeError(f"unknown inventory event {type(event).__name__}")


def publish(conn: Connection, events: Iterable[InventoryEvent], correlation_id: str) -> None:
    """Append one outbox row per event in the caller's transaction."""
    for event in events:
        message, aggregate_id = to_message(event)
        outbox.append(conn, message, aggregate_id, correlation_id=correlation_id)
