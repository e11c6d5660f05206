"""Shipment's queries, on the unit of work's connection (SQLAlchemy Core)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from crossdock.common.v1 import common_pb2
from crossdock.shipment.v1 import shipment_pb2
from sqlalchemy import Connection, and_, delete, or_, select, update

from services.kit.errors import Conflict
from services.shipment.domain.model import ShipmentStatus, TrackingStatus
from services.shipment.domain.tracking import Progress
from services.shipment.store import tables as t


@dataclass(frozen=True)
class OrderRef:
    order_id: str
    partner_id: str
    service_level: int
    ship_to: common_pb2.Address


@dataclass(frozen=True)
class PendingPick:
    pick_id: str
    order_id: str
    location_id: str
    lines: list[dict[str, object]]
    correlation_id: str
    attempts: int


@dataclass
class StoredShipment:
    shipment: shipment_pb2.Shipment
    progress: Progress
    correlation_id: str
    label_attempts: int
    final_charge: str | None
    version: int


def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _moment(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def progress_json(p: Progress) -> str:
    return json.dumps(
        {
            "status": int(p.status),
            "reached": int(p.reached),
            "reached_at": _epoch(p.reached_at),
            "exception_at": _epoch(p.exception_at),
            "latest_scan_at": _epoch(p.latest_scan_at),
            "latest_tracking_status": int(p.latest_tracking_status),
        }
    )


def parse_progress(raw: str) -> Progress:
    d = json.loads(raw)
    return Progress(
        ShipmentStatus(d["status"]),
        ShipmentStatus(d["reached"]),
        _moment(d["reached_at"]),
        _moment(d["exception_at"]),
        _moment(d["latest_scan_at"]),
        TrackingStatus(d["latest_tracking_status"]),
    )


# -- order refs ----------------------------------------------------------------------------


def save_order_ref(conn: Connection, ref: OrderRef) -> None:
    """First OrderPlaced wins; a redelivery changes nothing."""
    if get_order_ref(conn, ref.order_id) is not None:
        return
    conn.execute(
        t.order_refs.insert().values(
            order_id=ref.order_id,
            partner_id=ref.partner_id,
            service_level=ref.service_level,
            ship_to=ref.ship_to.SerializeToString(),
        )
    )


def get_order_ref(conn: Connection, order_id: str) -> OrderRef | None:
    row = conn.execute(select(t.order_refs).where(t.order_refs.c.order_id == order_id)).first()
    if row is None:
        return None
    return OrderRef(
        row.order_id,
        row.partner_id,
        row.service_level,
        common_pb2.Address.FromString(row.ship_to),
    )


# -- pending picks -------------------------------------------------------------------------


def add_pending_pick(
    conn: Connection,
    *,
    pick_id: str,
    order_id: str,
    location_id: str,
    lines: list[dict[str, object]],
    correlation_id: str,
    now: float,
) -> bool:
    """Queue a completed pick for packing; False when it is queued or shipped already."""
    queued = conn.execute(
        select(t.pending_picks.c.pick_id).where(t.pending_picks.c.pick_id == pick_id)
    ).first()
    shipped = conn.execute(
        select(t.shipments.c.shipment_id).where(t.shipments.c.pick_id == pick_id)
    ).first()
    if queued is not None or shipped is not None:
        return False
    conn.execute(
        t.pending_picks.insert().values(
            pick_id=pick_id,
            order_id=order_id,
            location_id=location_id,
            lines=json.dumps(lines),
            correlation_id=correlation_id,
            attempts=0,
            next_attempt_at=now,
            last_error="",
        )
    )
    return True


def claim_pending_picks(
    conn: Connection, now: float, limit: int, lease_seconds: float
) -> list[PendingPick]:
    """Due picks, leased to the caller (pushing next_attempt_at out) so no other worker packs
    them meanwhile; a crashed worker's lease simply runs out."""
    rows = conn.execute(
        select(t.pending_picks)
        .where(t.pending_picks.c.next_attempt_at <= now)
        .order_by(t.pending_picks.c.next_attempt_at)
        .limit(limit)
    ).all()
    if not rows:
        return []
    conn.execute(
        update(t.pending_picks)
        .where(t.pending_picks.c.pick_id.in_([r.pick_id for r in rows]))
        .values(next_attempt_at=now + lease_seconds)
    )
    return [
        PendingPick(
            r.pick_id,
            r.order_id,
            r.location_id,
            json.loads(r.lines),
            r.correlation_id,
            r.attempts,
        )
        for r in rows
    ]


def reschedule_pick(conn: Connection, pick_id: str, attempts: int, due: float, error: str) -> None:
    conn.execute(
        update(t.pending_picks)
        .where(t.pending_picks.c.pick_id == pick_id)
        .values(attempts=attempts, next_attempt_at=due, last_error=error[:500])
    )


# -- shipments -----------------------------------------------------------------------------


def _stored(row: object) -> StoredShipment:
    return StoredShipment(
        shipment_pb2.Shipment.FromString(row.document),  # type: ignore[attr-defined]
        parse_progress(row.progress),  # type: ignore[attr-defined]
        row.correlation_id,  # type: ignore[attr-defined]
        row.label_attempts,  # type: ignore[attr-defined]
        row.final_charge,  # type: ignore[attr-defined]
        row.version,  # type: ignore[attr-defined]
    )


def insert_shipment(
    conn: Connection, stored: StoredShipment, *, label_due_at: float, now: float
) -> None:
    """Insert a new shipment and drop its pick from the queue, in the caller's transaction."""
    s = stored.shipment
    conn.execute(
        t.shipments.insert().values(
            shipment_id=s.shipment_id,
            order_id=s.order_id,
            partner_id=s.partner_id,
            pick_id=s.pick_id,
            status=int(s.status),
            document=s.SerializeToString(),
            progress=progress_json(stored.progress),
            correlation_id=stored.correlation_id,
            label_attempts=0,
            label_due_at=label_due_at,
            label_lease_until=None,
            final_charge=None,
            version=1,
            updated_at=now,
        )
    )
    conn.execute(delete(t.pending_picks).where(t.pending_picks.c.pick_id == s.pick_id))


def get_shipment(conn: Connection, shipment_id: str) -> StoredShipment | None:
    row = conn.execute(select(t.shipments).where(t.shipments.c.shipment_id == shipment_id)).first()
    return None if row is None else _stored(row)


_KEEP = object()


def save_shipment(
    conn: Connection,
    stored: StoredShipment,
    *,
    now: float,
    label_due_at: float | object | None = _KEEP,
    release_lease: bool = False,
) -> None:
    """Write the shipment back if nobody changed it since it was read (optimistic version).

    The label schedule and lease stay as they are unless given: saving the chosen rate mid-
    booking must not free the shipment for another worker.
    """
    s = stored.shipment
    schedule: dict[str, object] = {}
    if label_due_at is not _KEEP:
        schedule["label_due_at"] = label_due_at
    if release_lease:
        schedule["label_lease_until"] = None
    result = conn.execute(
        update(t.shipments)
        .where(
            and_(
                t.shipments.c.shipment_id == s.shipment_id,
                t.shipments.c.version == stored.version,
            )
        )
        .values(
            status=int(s.status),
            document=s.SerializeToString(),
            progress=progress_json(stored.progress),
            label_attempts=stored.label_attempts,
            final_charge=stored.final_charge,
            version=stored.version + 1,
            updated_at=now,
            **schedule,
        )
    )
    if result.rowcount != 1:
        raise Conflict(f"shipment {s.shipment_id} changed concurrently")
    stored.version += 1


def claim_label_due(
    conn: Connection, now: float, limit: int, lease_seconds: float
) -> list[StoredShipment]:
    """Shipments waiting for a label whose lease is free, leased to the caller."""
    rows = conn.execute(
        select(t.shipments)
        .where(
            and_(
                t.shipments.c.status == int(ShipmentStatus.CREATED),
                t.shipments.c.label_due_at <= now,
                or_(
                    t.shipments.c.label_lease_until.is_(None),
                    t.shipments.c.label_lease_until < now,
                ),
            )
        )
        .order_by(t.shipments.c.label_due_at)
        .limit(limit)
    ).all()
    if not rows:
        return []
    conn.execute(
        update(t.shipments)
        .where(t.shipments.c.shipment_id.in_([r.shipment_id for r in rows]))
        .values(label_lease_until=now + lease_seconds)
    )
    return [_stored(r) for r in rows]


def reschedule_label(
    conn: Connection, shipment_id: str, attempts: int, due: float, error: str, now: float
) -> None:
    """Book again at `due`; the lease is freed. The reason is kept on the shipment."""
    stored = get_shipment(conn, shipment_id)
    if stored is None or stored.shipment.status != int(ShipmentStatus.CREATED):
        return
    stored.shipment.failure_reason = error[:500]
    stored.label_attempts = attempts
    save_shipment(conn, stored, now=now, label_due_at=due, release_lease=True)


def list_shipments(
    conn: Connection,
    partner_id: str,
    order_id: str,
    status: int,
    before_seq: int | None,
    limit: int,
) -> list[tuple[int, shipment_pb2.Shipment]]:
    query = select(t.shipments.c.seq, t.shipments.c.document)
    if partner_id:
        query = query.where(t.shipments.c.partner_id == partner_id)
    if order_id:
        query = query.where(t.shipments.c.order_id == order_id)
    if status:
        query = query.where(t.shipments.c.status == status)
    if before_seq is not None:
        query = query.where(t.shipments.c.seq < before_seq)
    rows = conn.execute(query.order_by(t.shipments.c.seq.desc()).limit(limit)).all()
    return [(row.seq, shipment_pb2.Shipment.FromString(row.document)) for row in rows]
