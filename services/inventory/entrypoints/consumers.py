"""Inventory's event handlers: order decisions turned into warehouse work and stock releases.

- `crossdock.order.released.v1` → one pick task per reservation (idempotent per reservation);
- `crossdock.order.cancelled.v1` → release the order's still-active reservations, which also
  withdraws their open pick tasks (the compensation "cancel before pick releases the stock").

Handlers run on the DB worker inside the consumer's batch transaction (kit.consumer): the inbox
row, the state change and any outbox rows commit together (`UnitOfWork.of(conn)`). A position
`Conflict` is transient, so the kit NAKs and the redelivery re-runs the handler on fresh rows.
"""

from __future__ import annotations

from collections.abc import Mapping

from crossdock.events.v1 import order_events_pb2
from sqlalchemy import Connection

from services.inventory import app
from services.inventory.domain.errors import NotFound
from services.inventory.domain.ids import IdSource
from services.kit.clock import Clock
from services.kit.handlers import HandlerRegistry, PermanentError
from services.kit.uow import UnitOfWork

PURPOSE = "order-events"


def event_handlers(ids: IdSource, clock: Clock) -> HandlerRegistry:
    """The handlers of the `inventory-order-events` consumer (stream ORDER)."""
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

    registry.add(order_events_pb2.OrderReleased, on_released)
    registry.add(order_events_pb2.OrderCancelled, on_cancelled)
    return registry
