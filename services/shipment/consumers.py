"""Shipment's event handlers (consumer `shipment-events`, one durable per stream it reads).

- OrderPlaced → who the order belongs to, where it goes and how fast (order_refs);
- PickCompleted → the pick queued for packing (the worker packs it: it needs the item master);
- TrackingUpdated → scans stored, de-duplicated, milestones moved and published.

Out-of-order arrival across streams (a pick before its OrderPlaced, scans before the label's
commit) raises an ordinary exception: the kit NAKs with backoff and the redelivery finds the
data. Duplicates are stopped by the kit's inbox (same event id) and by the pick and scan keys
(the same fact under another event id).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from crossdock.events.v1 import carrier_events_pb2, inventory_events_pb2, order_events_pb2
from sqlalchemy import Connection

from services.kit import events as ev
from services.kit.db import call_after_commit
from services.kit.handlers import HandlerRegistry
from services.shipment import flow

PURPOSE = "events"
Clock = Callable[[], datetime]


def build_registry(clock: Clock, on_pick_queued: Callable[[], None]) -> HandlerRegistry:
    """`on_pick_queued` wakes the packing worker after the commit that queued a pick."""
    registry = HandlerRegistry()

    def on_placed(
        event: order_events_pb2.OrderPlaced, headers: Mapping[str, str], conn: Connection
    ) -> None:
        flow.record_order(conn, event)

    def on_pick_completed(
        event: inventory_events_pb2.PickCompleted, headers: Mapping[str, str], conn: Connection
    ) -> None:
        if flow.record_pick(conn, event, headers.get(ev.CORRELATION_ID, ""), clock()):
            call_after_commit(conn, on_pick_queued)

    def on_tracking(
        event: carrier_events_pb2.TrackingUpdated, headers: Mapping[str, str], conn: Connection
    ) -> None:
        flow.apply_tracking(conn, event, clock())

    registry.add(order_events_pb2.OrderPlaced, on_placed)
    registry.add(inventory_events_pb2.PickCompleted, on_pick_completed)
    registry.add(carrier_events_pb2.TrackingUpdated, on_tracking)
    return registry
