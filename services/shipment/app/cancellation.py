"""Cancelling an order's shipments, and voiding the labels of cancelled ones.

The order service calls `cancel_order_shipments` before it commits a cancellation, so the answer
is authoritative: scans are applied in this same database, so a pickup either lands before the
cancel (which is then refused) or after it (and is ignored, the shipment being CANCELLED).

- Every shipment of the order is cancelled, or none is (any one picked up refuses the lot).
- The order is remembered as cancelled: a pick still in the queue, or one that arrives later,
  becomes a CANCELLED shipment at once, never packed or booked.
- ShipmentCancelled carries the picked units; inventory puts them back (once, by shipment).
- A booked label (or one whose booking was in flight, see Shipment.manifest) is voided by the
  worker through carrier-adapter, retried with backoff; a void that stays refused becomes
  ShipmentLabelVoidFailed, which the order shows as an exception (RetryLabelVoid tries again).
"""

from __future__ import annotations

from datetime import datetime

from services.kit.errors import NotFound
from services.kit.ids import resource_id
from services.kit.uow import UnitOfWork
from services.shipment.adapters.store import shipments as store
from services.shipment.domain.model import LabelVoid
from services.shipment.domain.shipment import PendingPick, Shipment, ShipmentNotCancellable


def cancel_order_shipments(
    uow: UnitOfWork, order_id: str, partner_id: str, reason: str, now: datetime
) -> list[Shipment]:
    """Cancel every shipment of the order (all or none); the order's shipments after it."""
    existing = store.shipments_of(uow.conn, order_id)
    for shipment in existing:
        shipment.ensure_cancellable()  # all or none: check every one before changing any
    store.mark_order_cancelled(uow.conn, order_id, partner_id, reason, now=now.timestamp())
    for shipment in existing:
        if shipment.cancel(reason, now):
            _save(uow, shipment, now)
    for pick in store.pending_picks_of(uow.conn, order_id):
        _insert_cancelled(uow, pick, partner_id, reason, now)
    return store.shipments_of(uow.conn, order_id)


def cancel_if_order_cancelled(uow: UnitOfWork, pick: PendingPick, now: datetime) -> bool:
    """A pick of a cancelled order becomes a CANCELLED shipment; True when it was one."""
    cancellation = store.order_cancellation(uow.conn, pick.order_id)
    if cancellation is None:
        return False
    if store.shipment_of_pick(uow.conn, pick.pick_id) is None:
        partner_id, reason = cancellation
        _insert_cancelled(uow, pick, partner_id, reason, now)
    return True


def _insert_cancelled(
    uow: UnitOfWork, pick: PendingPick, partner_id: str, reason: str, now: datetime
) -> None:
    shipment = Shipment.cancelled_pick(resource_id("shp"), pick, partner_id, reason, now)
    store.insert_shipment(uow.conn, shipment, label_due_at=None, now=now.timestamp())
    uow.publish_all(shipment.pull_events(), correlation_id=shipment.correlation_id)


def _save(uow: UnitOfWork, shipment: Shipment, now: datetime) -> None:
    """Write a cancelled shipment back; its void, if it has a label, is due now."""
    due = now.timestamp() if shipment.label_void is LabelVoid.PENDING else None
    store.save_shipment(uow.conn, shipment, now=now.timestamp(), label_due_at=due)
    uow.publish_all(shipment.pull_events(), correlation_id=shipment.correlation_id)


# -- label voids (the worker's steps) ---------------------------------------------------------


def take_due_voids(uow: UnitOfWork, now: float, limit: int, lease_seconds: float) -> list[Shipment]:
    return store.lease_due_voids(uow.conn, now, limit, lease_seconds)


def label_voided(uow: UnitOfWork, shipment_id: str, now: datetime) -> None:
    shipment = store.get_shipment(uow.conn, shipment_id)
    if shipment is None or not shipment.label_voided(now):
        return
    store.save_shipment(
        uow.conn, shipment, now=now.timestamp(), label_due_at=None, release_lease=True
    )
    uow.publish_all(shipment.pull_events(), correlation_id=shipment.correlation_id)


def fail_void(uow: UnitOfWork, shipment_id: str, reason: str, now: datetime) -> None:
    shipment = store.get_shipment(uow.conn, shipment_id)
    if shipment is None or not shipment.fail_void(reason, now):
        return
    store.save_shipment(
        uow.conn, shipment, now=now.timestamp(), label_due_at=None, release_lease=True
    )
    uow.publish_all(shipment.pull_events(), correlation_id=shipment.correlation_id)


def reschedule_void(
    uow: UnitOfWork, shipment_id: str, attempts: int, due: float, error: str, now: float
) -> None:
    shipment = store.get_shipment(uow.conn, shipment_id)
    if shipment is None or not shipment.void_attempt_failed(attempts, error):
        return
    store.save_shipment(uow.conn, shipment, now=now, label_due_at=due, release_lease=True)


def retry_void(uow: UnitOfWork, shipment_id: str, now: datetime) -> Shipment:
    """An operator's retry of a failed void: due now, with a fresh attempt budget."""
    shipment = store.get_shipment(uow.conn, shipment_id)
    if shipment is None:
        raise NotFound(
            f"shipment {shipment_id} not found", resource_type="shipment", resource_name=shipment_id
        )
    if shipment.retry_void(now):
        store.save_shipment(
            uow.conn,
            shipment,
            now=now.timestamp(),
            label_due_at=now.timestamp(),
            release_lease=True,
        )
    return shipment


__all__ = [
    "ShipmentNotCancellable",
    "cancel_if_order_cancelled",
    "cancel_order_shipments",
    "fail_void",
    "label_voided",
    "reschedule_void",
    "retry_void",
    "take_due_voids",
]
