"""Shipment's units of work: each function runs inside one `Database.run` transaction, so the
state change and the events it raises (outbox rows) commit together or not at all.

- record_order / record_pick: what the consumers keep from OrderPlaced and PickCompleted;
- create_shipment: a pending pick packed into a shipment (ShipmentCreated);
- save_rate / manifest / label_failed: the label booking's outcomes (ShipmentManifested);
- apply_tracking: new scans stored, de-duplicated, and turned into milestone events.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime

from crossdock.carrier.v1 import carrier_pb2, tracking_pb2
from crossdock.common.v1 import common_pb2
from crossdock.events.v1 import carrier_events_pb2, order_events_pb2, shipment_events_pb2
from crossdock.events.v1 import inventory_events_pb2 as inv_events
from crossdock.shipment.v1 import shipment_pb2
from google.protobuf.message import Message
from sqlalchemy import Connection

from services.kit import outbox
from services.kit.errors import FailedPrecondition, NotFound
from services.kit.ids import resource_id
from services.kit.proto_values import timestamp
from services.shipment.api.mapping import package_of
from services.shipment.domain.model import ShipmentStatus, TrackingStatus
from services.shipment.domain.packing import ItemSpec, PickedUnits, pack
from services.shipment.domain.tracking import Progress, Rule, Scan, apply_scan
from services.shipment.store import repository as repo
from services.shipment.store import scans

PICKED_UP = "crossdock.shipment.picked_up.v1"
OUT_FOR_DELIVERY = "crossdock.shipment.out_for_delivery.v1"
DELIVERED = "crossdock.shipment.delivered.v1"
EXCEPTION = "crossdock.shipment.delivery_exception.v1"
RETURNED = "crossdock.shipment.returned_to_sender.v1"


class OrderNotPlacedYet(Exception):
    """A pick arrived before its OrderPlaced (another stream): transient, redelivery finds it."""


class TrackingNumberUnknown(Exception):
    """Scans for a number no shipment holds yet: the label's commit may still be in flight."""


def record_order(conn: Connection, event: order_events_pb2.OrderPlaced) -> None:
    order = event.order
    repo.save_order_ref(
        conn,
        repo.OrderRef(order.order_id, order.partner_id, int(order.service_level), order.ship_to),
    )


def record_pick(
    conn: Connection, event: inv_events.PickCompleted, correlation_id: str, now: datetime
) -> bool:
    """Queue a completed pick for packing; False when nothing was picked or it is known."""
    if repo.get_order_ref(conn, event.order_id) is None:
        raise OrderNotPlacedYet(f"order {event.order_id} not placed yet (pick {event.pick_id})")
    lines: list[dict[str, object]] = [
        {"line": ln.order_line_number, "sku": ln.sku, "quantity": ln.quantity_picked, "lot": ln.lot}
        for ln in event.lines
        if ln.quantity_picked > 0
    ]
    if not lines:
        return False  # everything was short: nothing leaves the warehouse
    return repo.add_pending_pick(
        conn,
        pick_id=event.pick_id,
        order_id=event.order_id,
        location_id=event.location_id,
        lines=lines,
        correlation_id=correlation_id,
        now=now.timestamp(),
    )


def picked_units(pick: repo.PendingPick) -> list[PickedUnits]:
    return [
        PickedUnits(int(str(x["line"])), str(x["sku"]), int(str(x["quantity"])), str(x["lot"]))
        for x in pick.lines
    ]


def create_shipment(
    conn: Connection,
    pick: repo.PendingPick,
    items: Mapping[str, ItemSpec],
    ship_from: common_pb2.Address,
    max_box_weight_kg: float,
    now: datetime,
) -> shipment_pb2.Shipment:
    """Pack the pick into a new shipment (CREATED) and announce it; the label is due now."""
    ref = repo.get_order_ref(conn, pick.order_id)
    if ref is None:
        raise OrderNotPlacedYet(f"order {pick.order_id} not placed yet (pick {pick.pick_id})")
    boxes = pack(picked_units(pick), items, max_box_weight_kg)
    stamp = timestamp(now)
    shipment = shipment_pb2.Shipment(
        shipment_id=resource_id("shp"),
        order_id=pick.order_id,
        partner_id=ref.partner_id,
        pick_id=pick.pick_id,
        location_id=pick.location_id,
        status=shipment_pb2.SHIPMENT_STATUS_CREATED,
        ship_from=ship_from,
        ship_to=ref.ship_to,
        packages=[package_of(box) for box in boxes],
        service_level=ref.service_level,  # type: ignore[arg-type]
        create_time=stamp,
        update_time=stamp,
    )
    stored = repo.StoredShipment(
        shipment,
        Progress(ShipmentStatus.CREATED, ShipmentStatus.CREATED),
        pick.correlation_id,
        0,
        None,
        1,
    )
    repo.insert_shipment(conn, stored, label_due_at=now.timestamp(), now=now.timestamp())
    _publish(
        conn,
        stored,
        shipment_events_pb2.ShipmentCreated(shipment=shipment, occur_time=stamp),
    )
    return shipment


def save_rate(conn: Connection, shipment_id: str, rate: carrier_pb2.Rate, now: datetime) -> None:
    """Fix the chosen quote before booking, so every retry books the same one."""
    stored = _require(conn, shipment_id)
    stored.shipment.rate.CopyFrom(rate)
    _touch(stored, now)
    repo.save_shipment(conn, stored, now=now.timestamp())


def clear_rate(conn: Connection, shipment_id: str, now: datetime) -> None:
    """The quote can no longer be booked (expired): shop again on the next attempt."""
    stored = _require(conn, shipment_id)
    stored.shipment.ClearField("rate")
    _touch(stored, now)
    repo.save_shipment(conn, stored, now=now.timestamp())


def manifest(conn: Connection, shipment_id: str, label: carrier_pb2.Label, now: datetime) -> bool:
    """The label is booked: MANIFESTED with its tracking numbers; False if it already was."""
    stored = _require(conn, shipment_id)
    shipment = stored.shipment
    if shipment.status != shipment_pb2.SHIPMENT_STATUS_CREATED:
        return False
    shipment.status = shipment_pb2.SHIPMENT_STATUS_MANIFESTED
    shipment.carrier = label.carrier
    shipment.tracking_number = label.tracking_number
    shipment.label_id = label.label_id
    shipment.failure_reason = ""
    for package, number in zip(shipment.packages, label.package_tracking_numbers, strict=False):
        package.tracking_number = number
    _touch(stored, now)
    stored.progress = Progress(ShipmentStatus.MANIFESTED, ShipmentStatus.MANIFESTED, reached_at=now)
    repo.save_shipment(conn, stored, now=now.timestamp(), label_due_at=None, release_lease=True)
    numbers = [label.tracking_number, *label.package_tracking_numbers]
    scans.add_tracking_numbers(conn, label.carrier, list(numbers), shipment_id)
    quoted = label.quoted_charge if label.HasField("quoted_charge") else shipment.rate.total_charge
    _publish(
        conn,
        stored,
        shipment_events_pb2.ShipmentManifested(
            shipment=shipment,
            quoted_charge=quoted,
            service_level=shipment.rate.service_level,
            occur_time=timestamp(now),
        ),
    )
    return True


def label_failed(conn: Connection, shipment_id: str, reason: str, now: datetime) -> bool:
    """Booking failed for good: LABEL_FAILED, raised as a delivery exception so the order shows
    it (DESIGN.md, compensation: visible and retryable)."""
    stored = _require(conn, shipment_id)
    shipment = stored.shipment
    if shipment.status != shipment_pb2.SHIPMENT_STATUS_CREATED:
        return False
    shipment.status = shipment_pb2.SHIPMENT_STATUS_LABEL_FAILED
    shipment.failure_reason = reason[:500]
    _touch(stored, now)
    stored.progress = replace(stored.progress, status=ShipmentStatus.LABEL_FAILED)
    repo.save_shipment(conn, stored, now=now.timestamp(), label_due_at=None, release_lease=True)
    _publish(
        conn,
        stored,
        shipment_events_pb2.ShipmentDeliveryException(
            shipment=_ref(shipment),
            incident_reason=tracking_pb2.INCIDENT_REASON_OTHER,
            description=f"label booking failed: {reason}"[:500],
            occur_time=timestamp(now),
        ),
    )
    return True


def retry_label(conn: Connection, shipment_id: str, now: datetime) -> shipment_pb2.Shipment:
    """LABEL_FAILED → CREATED with a fresh attempt budget and the label due now (no event: the
    booking's outcome is the news). A shipment already booking or booked is returned as is."""
    stored = repo.get_shipment(conn, shipment_id)
    if stored is None:
        raise NotFound(
            f"shipment {shipment_id} not found", resource_type="shipment", resource_name=shipment_id
        )
    shipment = stored.shipment
    if shipment.status == shipment_pb2.SHIPMENT_STATUS_LABEL_FAILED:
        shipment.status = shipment_pb2.SHIPMENT_STATUS_CREATED
        shipment.ClearField("rate")  # shop again: the old quote may have expired
        stored.progress = replace(stored.progress, status=ShipmentStatus.CREATED)
        stored.label_attempts = 0
        _touch(stored, now)
        repo.save_shipment(
            conn, stored, now=now.timestamp(), label_due_at=now.timestamp(), release_lease=True
        )
    elif shipment.status != shipment_pb2.SHIPMENT_STATUS_CREATED and not shipment.label_id:
        raise FailedPrecondition(
            f"shipment {shipment_id} is {shipment_pb2.ShipmentStatus.Name(shipment.status)}; "
            "only a failed label booking can be retried"
        )
    return shipment


def scan_key(scan: tracking_pb2.TrackingEvent) -> str:
    """The carrier-adapter's dedupe key, or the scan's own identity when it has none."""
    if scan.dedupe_key:
        return scan.dedupe_key[:200]
    moment = scan.occur_time.ToDatetime(tzinfo=UTC).isoformat()
    return f"{scan.carrier_status_code}|{scan.carrier_incident_code}|{moment}"[:200]


def apply_tracking(
    conn: Connection,
    update: carrier_events_pb2.TrackingUpdated,
    now: datetime,
    rules: Mapping[TrackingStatus, Rule] | None = None,
) -> int:
    """Store the new scans, move the milestone, publish what the rules say; returns how many
    scans were new. Duplicates (same dedupe key) are dropped here whatever the carrier resent."""
    shipment_id = scans.shipment_of_tracking_number(conn, update.carrier, update.tracking_number)
    if shipment_id is None:
        raise TrackingNumberUnknown(f"{update.carrier} {update.tracking_number}")
    stored = _require(conn, shipment_id)
    shipment = stored.shipment
    fresh = 0
    events: list[Message] = []
    in_order = sorted(update.events, key=lambda e: (e.occur_time.seconds, e.occur_time.nanos))
    for scan in in_order:
        if not scans.add_scan(conn, shipment_id, scan, scan_key(scan)):
            continue
        fresh += 1
        at = scan.occur_time.ToDatetime(tzinfo=UTC)
        outcome = apply_scan(stored.progress, Scan(TrackingStatus(scan.status), at), rules)
        stored.progress = outcome.progress
        shipment.status = int(outcome.progress.status)  # type: ignore[assignment]
        shipment.last_tracking_status = int(outcome.progress.latest_tracking_status)  # type: ignore[assignment]
        if outcome.progress.status == ShipmentStatus.DELIVERED and outcome.event == DELIVERED:
            shipment.proof_of_delivery.CopyFrom(
                shipment_pb2.ProofOfDelivery(
                    deliver_time=scan.occur_time,
                    signed_by=scan.signed_by,
                    location=scan.description,
                )
            )
        if outcome.event:
            events.append(_milestone(outcome.event, shipment, scan, update))
    if update.HasField("final_charge"):
        stored.final_charge = json.dumps(
            [
                update.final_charge.currency_code,
                update.final_charge.units,
                update.final_charge.nanos,
            ]
        )
    if fresh == 0 and not update.HasField("final_charge"):
        return 0
    _touch(stored, now)
    repo.save_shipment(conn, stored, now=now.timestamp())
    for event in events:
        _publish(conn, stored, event)
    return fresh


def _milestone(
    subject: str,
    shipment: shipment_pb2.Shipment,
    scan: tracking_pb2.TrackingEvent,
    update: carrier_events_pb2.TrackingUpdated,
) -> Message:
    ref = _ref(shipment)
    if subject == PICKED_UP:
        return shipment_events_pb2.ShipmentPickedUp(shipment=ref, occur_time=scan.occur_time)
    if subject == OUT_FOR_DELIVERY:
        return shipment_events_pb2.ShipmentOutForDelivery(shipment=ref, occur_time=scan.occur_time)
    if subject == DELIVERED:
        delivered = shipment_events_pb2.ShipmentDelivered(occur_time=scan.occur_time)
        delivered.shipment.CopyFrom(shipment)
        if update.HasField("final_charge"):
            delivered.final_charge.CopyFrom(update.final_charge)
        return delivered
    if subject == EXCEPTION:
        return shipment_events_pb2.ShipmentDeliveryException(
            shipment=ref,
            status=scan.status,
            incident_reason=scan.incident_reason,
            description=scan.description,
            occur_time=scan.occur_time,
        )
    if subject == RETURNED:
        return shipment_events_pb2.ShipmentReturnedToSender(
            shipment=ref, incident_reason=scan.incident_reason, occur_time=scan.occur_time
        )
    raise ValueError(f"propagation rule names an event shipment cannot build: {subject}")


def _ref(shipment: shipment_pb2.Shipment) -> shipment_events_pb2.ShipmentRef:
    return shipment_events_pb2.ShipmentRef(
        shipment_id=shipment.shipment_id,
        order_id=shipment.order_id,
        partner_id=shipment.partner_id,
        carrier=shipment.carrier,
        tracking_number=shipment.tracking_number,
    )


def _require(conn: Connection, shipment_id: str) -> repo.StoredShipment:
    stored = repo.get_shipment(conn, shipment_id)
    if stored is None:
        raise LookupError(f"shipment {shipment_id} vanished")
    return stored


def _touch(stored: repo.StoredShipment, now: datetime) -> None:
    stamp = timestamp(now)
    if stamp is not None:
        stored.shipment.update_time.CopyFrom(stamp)


def _publish(conn: Connection, stored: repo.StoredShipment, event: Message) -> None:
    outbox.append(conn, event, stored.shipment.shipment_id, correlation_id=stored.correlation_id)
