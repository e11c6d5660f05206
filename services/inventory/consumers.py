"""Inventory's event handlers: order decisions turned into warehouse work and stock releases.

- `crossdock.order.released.v1` → one pick task per reservation (idempotent per reservation);
- `crossdock.order.cancelled.v1` → release the order's still-active reservations, which also
  withdraws their open pick tasks (the compensation "cancel before pick releases the stock").

Handlers run on the DB worker inside the consumer's batch transaction (kit.consumer): the inbox
row, the state change and any outbox rows commit together. A position `Conflict` is transient,
so the kit NAKs and the redelivery re-runs the handler on fresh rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from crossdock.events.v1 import order_events_pb2
from sqlalchemy import Connection

from services.inventory import domain, publishing
from services.inventory.domain.errors import NotFound, ReservationNotActive
from services.inventory.domain.ids import IdSource
from services.inventory.store import SqlInventory
from services.kit import events as ev
from services.kit.handlers import HandlerRegistry, PermanentError

log = logging.getLogger(__name__)

PURPOSE = "order-events"
CANCEL_REASON = "order cancelled"


def build_registry(ids: IdSource, clock: Callable[[], datetime]) -> HandlerRegistry:
    """The handlers of the `inventory-order-events` consumer (stream ORDER)."""
    registry = HandlerRegistry()

    def on_released(
        event: order_events_pb2.OrderReleased, headers: Mapping[str, str], conn: Connection
    ) -> None:
        repo = SqlInventory(conn)
        for reservation_id in event.reservation_ids:
            try:
                domain.create_pick_task(repo, ids, reservation_id, clock())
            except NotFound as exc:
                # Order only releases reservations inventory granted; a missing one is poison.
                raise PermanentError(str(exc)) from exc
            except ReservationNotActive:
                # Released meanwhile (a cancel overtook the release): nothing left to pick.
                log.info("skipping pick for inactive reservation %s", reservation_id)

    def on_cancelled(
        event: order_events_pb2.OrderCancelled, headers: Mapping[str, str], conn: Connection
    ) -> None:
        repo = SqlInventory(conn)
        correlation_id = headers.get(ev.CORRELATION_ID, "")
        wanted = set(event.released_reservation_ids)
        wanted.update(
            r.reservation_id
            for r in repo.reservations(
                order_id=event.order_id, status=domain.ReservationStatus.ACTIVE
            )
        )
        for reservation_id in sorted(wanted):
            reservation = repo.get_reservation(reservation_id)
            if reservation is None or reservation.status is not domain.ReservationStatus.ACTIVE:
                continue  # unknown, already released, or already picked: nothing to give back
            outcome = domain.release(repo, reservation_id, CANCEL_REASON, clock())
            publishing.publish(conn, outcome.events, correlation_id)

    registry.add(order_events_pb2.OrderReleased, on_released)
    registry.add(order_events_pb2.OrderCancelled, on_cancelled)
    return registry
