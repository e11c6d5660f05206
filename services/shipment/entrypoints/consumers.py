"""Shipment's event handlers (consumer `shipment-events`, one durable per stream it reads).

- OrderPlaced → who the order belongs to, where it goes and how fast (order_refs);
- PickCompleted → the pick queued for packing (the worker packs it: it needs the item master);
- ReturnAuthorized → the return's units queued for packing into its return parcel (one per
  return, keyed by the return id), booked as a return label by the same worker;
- TrackingUpdated → scans stored, de-duplicated, milestones moved and published; a batch
  handler, so the updates of one fetched batch read and write each shipment once.

A pick (or a return's units) is queued leased to the `packer` (the worker) and handed to it
once the transaction commits, so it is packed and booked at once without a claim; without a
packer, or once it stops, the pick is queued due and the worker woken for a round.

Out-of-order arrival across streams (a pick or a return before its OrderPlaced, scans before
the label's commit) raises an ordinary exception: the kit NAKs with backoff and the redelivery
finds the data. Duplicates are stopped by the kit's inbox (same event id) and by the pick,
return and scan keys (the same fact under another event id). A return without a location can
never be shipped: it is dead-lettered.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from crossdock.events.v1 import (
    carrier_events_pb2,
    inventory_events_pb2,
    order_events_pb2,
    return_events_pb2,
)
from sqlalchemy import Connection

from services.kit import events as ev
from services.kit.clock import Clock
from services.kit.handlers import HandlerRegistry, PermanentError
from services.kit.uow import UnitOfWork
from services.shipment.adapters import contracts
from services.shipment.app import intake, tracking
from services.shipment.domain.shipment import PendingPick

PURPOSE = "events"

# intake.record_pick or intake.record_return.
Record = Callable[..., bool]


class Packer(Protocol):
    """Takes picks queued leased to it (entrypoints.workers.ShipmentWorker)."""

    def hand_over_lease(self) -> float | None: ...

    def pack_now(self, pick: PendingPick) -> None: ...


def event_handlers(
    clock: Clock, on_pick_queued: Callable[[], None], *, packer: Packer | None = None
) -> HandlerRegistry:
    """`packer` is handed each pick (or return's units) queued leased to it after the commit;
    `on_pick_queued` wakes the packing worker after a commit that queued one due instead."""
    registry = HandlerRegistry()

    def queue(uow: UnitOfWork, record: Record, pick: PendingPick, now: datetime) -> None:
        # Asked in the transaction: a packer stopping meanwhile leaves the pick to its lease.
        lease_seconds = None if packer is None else packer.hand_over_lease()
        if packer is None or lease_seconds is None:
            if record(uow, pick, now):
                uow.after_commit(on_pick_queued)
        elif record(uow, pick, now, lease_until=now.timestamp() + lease_seconds):
            uow.after_commit(functools.partial(packer.pack_now, pick))

    def on_placed(
        event: order_events_pb2.OrderPlaced, headers: Mapping[str, str], conn: Connection
    ) -> None:
        intake.record_order(UnitOfWork.of(conn), contracts.order_ref_of(event))

    def on_pick_completed(
        event: inventory_events_pb2.PickCompleted, headers: Mapping[str, str], conn: Connection
    ) -> None:
        uow = UnitOfWork.of(conn)
        pick = PendingPick(
            pick_id=event.pick_id,
            order_id=event.order_id,
            location_id=event.location_id,
            lines=contracts.picked_lines_of(event),
            correlation_id=headers.get(ev.CORRELATION_ID, ""),
        )
        queue(uow, intake.record_pick, pick, clock())

    def on_return_authorized(
        event: return_events_pb2.ReturnAuthorized, headers: Mapping[str, str], conn: Connection
    ) -> None:
        uow = UnitOfWork.of(conn)
        parcel = contracts.return_parcel_of(event, headers.get(ev.CORRELATION_ID, ""))
        if not parcel.location_id:
            raise PermanentError(f"return {parcel.return_id} names no return location")
        queue(uow, intake.record_return, parcel, clock())

    def on_tracking(
        events: Sequence[tuple[carrier_events_pb2.TrackingUpdated, Mapping[str, str]]],
        conn: Connection,
    ) -> None:
        # A batch handler: the updates of one fetched batch read and write each shipment once.
        batch = tracking.TrackingBatch(UnitOfWork.of(conn))
        batch.apply_all(
            [
                (
                    tracking.TrackingUpdate(
                        event.carrier,
                        event.tracking_number,
                        contracts.scans_of(event),
                        contracts.final_charge_of(event),
                    ),
                    clock(),
                )
                for event, _headers in events
            ]
        )
        batch.save()

    registry.add(order_events_pb2.OrderPlaced, on_placed)
    registry.add(inventory_events_pb2.PickCompleted, on_pick_completed)
    registry.add(return_events_pb2.ReturnAuthorized, on_return_authorized)
    registry.add_batch(carrier_events_pb2.TrackingUpdated, on_tracking)
    return registry
