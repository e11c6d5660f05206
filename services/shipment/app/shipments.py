"""Shipment's use cases on one shipment: each runs in one unit of work, so the state change and
the events it raises (outbox rows) commit together or not at all.

- create_shipment: a pending pick packed into a shipment (ShipmentCreated), or a return's units
  packed into its return parcel (no event until its label is booked), its label leased to the
  packer to book at once;
- choose_rate / clear_rate / manifest / fail_label / reschedule_label: the label booking's
  steps and outcomes (ShipmentManifested, or a delivery exception when it fails for good);
- retry_label: an operator's retry of a failed booking;
- take_due_work / reschedule_pick: the worker's leased queue;
- get_shipment / list_shipments / get_tracking: the reads, scoped to a partner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from services.kit.errors import NotFound
from services.kit.ids import resource_id
from services.kit.uow import UnitOfWork
from services.kit.values import Address
from services.shipment.adapters.store import scans
from services.shipment.adapters.store import shipments as store
from services.shipment.app import cancellation
from services.shipment.app.errors import OrderNotPlacedYet, PickNotQueued
from services.shipment.domain.model import LabelVoid, ServiceLevel
from services.shipment.domain.packing import ItemSpec, pack
from services.shipment.domain.returns import with_shipped_lots
from services.shipment.domain.shipment import Label, Package, PendingPick, Rate, Shipment


def _not_found(shipment_id: str) -> NotFound:
    return NotFound(
        f"shipment {shipment_id} not found", resource_type="shipment", resource_name=shipment_id
    )


def _require(uow: UnitOfWork, shipment_id: str) -> Shipment:
    shipment = store.get_shipment(uow.conn, shipment_id)
    if shipment is None:
        raise LookupError(f"shipment {shipment_id} vanished")
    return shipment


def _publish(uow: UnitOfWork, shipment: Shipment) -> None:
    # Events carry the correlation id of the pick that started the shipment.
    uow.publish_all(shipment.pull_events(), correlation_id=shipment.correlation_id)


# -- creation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Packed:
    """What packing a pick came to: its shipment, and whether this unit of work created it with
    its label leased to the caller, to be booked at once (no round claims it meanwhile)."""

    shipment: Shipment
    label_leased: bool = False


def create_shipment(
    uow: UnitOfWork,
    pick: PendingPick,
    items: Mapping[str, ItemSpec],
    warehouse: Address,
    max_box_weight_kg: float,
    now: datetime,
    return_service_level: ServiceLevel = ServiceLevel.STANDARD,
    *,
    label_lease_seconds: float | None = None,
) -> Packed:
    """Pack the pick into a new shipment (CREATED) and announce it; the label is due now, and,
    with `label_lease_seconds`, leased to the caller for that long.

    The order may have been cancelled while the pick was packed: then the pick becomes a
    CANCELLED shipment instead (and a pick already turned into one is left as it is).
    A return's units (`pick.return_id`) become its return parcel instead, from the customer to
    `warehouse`, booked at `return_service_level`. A pick no longer queued (PickNotQueued)
    rolls the new shipment back.
    """
    done = store.shipment_of_pick(uow.conn, pick.pick_id)
    if done is not None:
        return Packed(done)
    if pick.return_id:
        return _create_return_parcel(
            uow,
            pick,
            items,
            warehouse,
            max_box_weight_kg,
            now,
            return_service_level,
            label_lease_seconds,
        )
    if cancellation.cancel_if_order_cancelled(uow, pick, now):
        cancelled = store.shipment_of_pick(uow.conn, pick.pick_id)
        assert cancelled is not None
        return Packed(cancelled)
    order = store.get_order_ref(uow.conn, pick.order_id)
    if order is None:
        raise OrderNotPlacedYet(f"order {pick.order_id} not placed yet (pick {pick.pick_id})")
    boxes = pack(pick.lines, items, max_box_weight_kg)
    shipment_id = resource_id("shp")
    packages = [Package.of_box(resource_id("pkg"), box) for box in boxes]
    shipment = Shipment.create(shipment_id, pick, order, packages, warehouse, now)
    return _insert_packed(uow, shipment, now, label_lease_seconds)


def _create_return_parcel(
    uow: UnitOfWork,
    parcel: PendingPick,
    items: Mapping[str, ItemSpec],
    warehouse: Address,
    max_box_weight_kg: float,
    now: datetime,
    service_level: ServiceLevel,
    label_lease_seconds: float | None,
) -> Packed:
    """The return's units packed (with the lots they left in) into a return parcel whose label
    is due now. A return is never cancelled with its order: its goods are at the customer's."""
    order = store.get_order_ref(uow.conn, parcel.order_id)
    if order is None:
        raise OrderNotPlacedYet(f"order {parcel.order_id} not placed yet (return {parcel.pick_id})")
    units = with_shipped_lots(parcel.lines, store.delivered_units_of(uow.conn, parcel.order_id))
    packages = [
        Package.of_box(resource_id("pkg"), box) for box in pack(units, items, max_box_weight_kg)
    ]
    shipment = Shipment.create_return(
        resource_id("shp"), parcel, order, packages, warehouse, service_level, now
    )
    return _insert_packed(uow, shipment, now, label_lease_seconds)


def _insert_packed(
    uow: UnitOfWork, shipment: Shipment, now: datetime, label_lease_seconds: float | None
) -> Packed:
    at = now.timestamp()
    lease_until = None if label_lease_seconds is None else at + label_lease_seconds
    if not store.insert_shipment(
        uow.conn, shipment, label_due_at=at, now=at, label_lease_until=lease_until
    ):
        source = shipment.return_id or shipment.pick_id
        raise PickNotQueued(f"pick {source} is not queued: nothing to pack")
    _publish(uow, shipment)
    return Packed(shipment, label_leased=lease_until is not None)


# -- label booking ---------------------------------------------------------------------------


def choose_rate(uow: UnitOfWork, shipment_id: str, rate: Rate, now: datetime) -> None:
    """Fix the chosen quote before booking, so every retry books the same one."""
    shipment = _require(uow, shipment_id)
    shipment.choose_rate(rate, now)
    store.save_shipment(uow.conn, shipment, now=now.timestamp())


def clear_rate(uow: UnitOfWork, shipment_id: str, now: datetime) -> None:
    """The quote can no longer be booked (expired): shop again on the next attempt."""
    shipment = _require(uow, shipment_id)
    shipment.clear_rate(now)
    store.save_shipment(uow.conn, shipment, now=now.timestamp())


def manifest(uow: UnitOfWork, shipment_id: str, label: Label, now: datetime) -> bool:
    """The label is booked: MANIFESTED with its tracking numbers; False if it already was."""
    shipment = _require(uow, shipment_id)
    if not shipment.manifest(label, now):
        return False
    # Booked after the shipment was cancelled: the label's void is due at once.
    void_due = now.timestamp() if shipment.label_void is LabelVoid.PENDING else None
    store.save_shipment(
        uow.conn, shipment, now=now.timestamp(), label_due_at=void_due, release_lease=True
    )
    numbers = [label.tracking_number, *label.package_tracking_numbers]
    scans.add_tracking_numbers(uow.conn, label.carrier, numbers, shipment_id)
    _publish(uow, shipment)
    return True


def fail_label(
    uow: UnitOfWork, shipment_id: str, reason: str, now: datetime, failure_code: str = ""
) -> bool:
    """Booking failed for good: LABEL_FAILED and a delivery exception (carrying `failure_code`);
    False unless CREATED."""
    shipment = _require(uow, shipment_id)
    if not shipment.fail_label(reason, now, failure_code):
        return False
    store.save_shipment(
        uow.conn, shipment, now=now.timestamp(), label_due_at=None, release_lease=True
    )
    _publish(uow, shipment)
    return True


def reschedule_label(
    uow: UnitOfWork, shipment_id: str, attempts: int, due: float, error: str, now: float
) -> None:
    """Book again at `due`; the lease is freed. The reason is kept on the shipment."""
    shipment = store.get_shipment(uow.conn, shipment_id)
    if shipment is None or not shipment.label_attempt_failed(attempts, error):
        return
    store.save_shipment(uow.conn, shipment, now=now, label_due_at=due, release_lease=True)


def retry_label(uow: UnitOfWork, shipment_id: str, now: datetime) -> Shipment:
    """LABEL_FAILED → CREATED with the label due now; a shipment booking or booked is returned
    as is, any other is FAILED_PRECONDITION."""
    shipment = store.get_shipment(uow.conn, shipment_id)
    if shipment is None:
        raise _not_found(shipment_id)
    if shipment.retry_label(now):
        store.save_shipment(
            uow.conn,
            shipment,
            now=now.timestamp(),
            label_due_at=now.timestamp(),
            release_lease=True,
        )
    return shipment


# -- the worker's queue ----------------------------------------------------------------------


@dataclass(frozen=True)
class DueWork:
    """What a worker round took, each leased to it: picks to pack, labels to book (retries, an
    operator's retry, a lease run out), label voids."""

    picks: list[PendingPick]
    labels: list[Shipment]
    voids: list[Shipment]

    def __len__(self) -> int:
        return len(self.picks) + len(self.labels) + len(self.voids)


def take_due_work(uow: UnitOfWork, now: float, limit: int, lease_seconds: float) -> DueWork:
    """Every kind of due work (up to `limit` of each), leased to the caller for `lease_seconds`,
    in one transaction: a round's claim. A pick's label is not among them: the packer books it
    at once, under the lease it was created with."""
    return DueWork(
        store.lease_due_picks(uow.conn, now, limit, lease_seconds),
        store.lease_due_labels(uow.conn, now, limit, lease_seconds),
        store.lease_due_voids(uow.conn, now, limit, lease_seconds),
    )


def reschedule_pick(uow: UnitOfWork, pick_id: str, attempts: int, due: float, error: str) -> None:
    """Pack the pick again at `due` (the lease ends then too)."""
    store.reschedule_pick(uow.conn, pick_id, attempts, due, error)


# -- reads -----------------------------------------------------------------------------------


def get_shipment(uow: UnitOfWork, shipment_id: str, partner_id: str) -> Shipment:
    """The shipment; another partner's answers NOT_FOUND exactly like a missing one, so ids of
    other partners cannot be probed."""
    shipment = store.get_shipment(uow.conn, shipment_id)
    if shipment is None or (partner_id and shipment.partner_id != partner_id):
        raise _not_found(shipment_id)
    return shipment


def list_shipments(
    uow: UnitOfWork,
    partner_id: str,
    order_id: str,
    status: int,
    page_token: str,
    size: int,
    *,
    kind: int = 0,
    return_id: str = "",
    order_ids: Sequence[str] = (),
) -> tuple[list[Shipment], str]:
    """One page of shipments (outbound, return parcels or both: `kind`; of one order or of the
    `order_ids`), newest first, and the next page's token ("" on the last)."""
    return store.list_shipments(
        uow.conn,
        partner_id,
        order_id,
        status,
        page_token,
        size,
        kind=kind,
        return_id=return_id,
        order_ids=order_ids,
    )


def get_tracking(
    uow: UnitOfWork, shipment_id: str, partner_id: str
) -> tuple[Shipment, list[bytes]]:
    """The shipment and every scan of its timeline as received, oldest first."""
    shipment = get_shipment(uow, shipment_id, partner_id)
    return shipment, scans.list_scans(uow.conn, shipment_id)
