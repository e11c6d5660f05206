"""What shipment keeps from the events it consumes before a shipment exists: order refs, picks to
pack, and the units of authorized returns to pack into return parcels."""

from __future__ import annotations

from datetime import datetime

from services.kit.uow import UnitOfWork
from services.shipment.adapters.store import shipments as store
from services.shipment.app import cancellation
from services.shipment.app.errors import OrderNotPlacedYet
from services.shipment.domain.shipment import OrderRef, PendingPick


def record_order(uow: UnitOfWork, order: OrderRef) -> None:
    """Who the order belongs to, where it goes and how fast (first OrderPlaced wins)."""
    store.save_order_ref(uow.conn, order)


def record_pick(
    uow: UnitOfWork, pick: PendingPick, now: datetime, *, lease_until: float | None = None
) -> bool:
    """Queue a completed pick for packing; False when nothing was picked or it is known.

    A pick of an order already cancelled is not queued: it becomes a CANCELLED shipment.
    With `lease_until` the pick is queued leased to the caller (store.add_pending_pick).
    """
    if not pick.lines:
        return False  # everything was short: nothing leaves the warehouse
    if cancellation.cancel_if_order_cancelled(uow, pick, now):
        return False
    if not store.order_ref_exists(uow.conn, pick.order_id):
        raise OrderNotPlacedYet(f"order {pick.order_id} not placed yet (pick {pick.pick_id})")
    return store.add_pending_pick(uow.conn, pick, now=now.timestamp(), lease_until=lease_until)


def record_return(
    uow: UnitOfWork, parcel: PendingPick, now: datetime, *, lease_until: float | None = None
) -> bool:
    """Queue an authorized return's units for packing into its return parcel (once per return:
    the return id keys the queue and the parcel); False when there is nothing to send back or
    it is known. Needs the order's delivery address, which is where the parcel is picked up.
    With `lease_until` the units are queued leased to the caller, like a pick."""
    if not parcel.lines:
        return False
    if not store.order_ref_exists(uow.conn, parcel.order_id):
        raise OrderNotPlacedYet(
            f"order {parcel.order_id} not placed yet (return {parcel.return_id})"
        )
    return store.add_pending_pick(uow.conn, parcel, now=now.timestamp(), lease_until=lease_until)
