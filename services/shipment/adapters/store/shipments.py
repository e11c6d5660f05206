"""Shipment's queries, on the unit of work's connection (SQLAlchemy Core): order refs, the
pending-pick queue, and shipments with their label schedule and lease.

A return parcel and its queued units are keyed by their return id where an outbound shipment
and its pick use the pick id (the `pick_id` columns: the source), told apart by `kind`.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, Connection, and_, or_, select

from services.kit.errors import Conflict
from services.kit.leases import lease_due
from services.kit.paging import keyset, next_page
from services.shipment.adapters.store import codecs
from services.shipment.adapters.store import statements as sql
from services.shipment.adapters.store import tables as t
from services.shipment.domain.model import ShipmentKind, ShipmentStatus
from services.shipment.domain.packing import PickedUnits
from services.shipment.domain.shipment import OrderRef, PendingPick, Shipment

_OUTBOUND = int(ShipmentKind.OUTBOUND)
_RETURN = int(ShipmentKind.RETURN)

# -- order refs ----------------------------------------------------------------------------


def save_order_ref(conn: Connection, ref: OrderRef) -> None:
    """First OrderPlaced wins; a redelivery changes nothing (ON CONFLICT DO NOTHING)."""
    sql.NEW_ORDER_REF.run(
        conn,
        {
            "order_id": ref.order_id,
            "partner_id": ref.partner_id,
            "service_level": ref.service_level,
            "ship_to": codecs.address_bytes(ref.ship_to),
        },
    )


def get_order_ref(conn: Connection, order_id: str) -> OrderRef | None:
    row = sql.ORDER_REF.run(conn, {"order_id": order_id}).first()
    if row is None:
        return None
    return OrderRef(
        row.order_id, row.partner_id, row.service_level, codecs.parse_address(row.ship_to)
    )


def order_ref_exists(conn: Connection, order_id: str) -> bool:
    """Whether OrderPlaced is known for the order (without decoding its address)."""
    return sql.ORDER_REF_EXISTS.run(conn, {"order_id": order_id}).first() is not None


# -- cancelled orders ------------------------------------------------------------------------


def mark_order_cancelled(
    conn: Connection, order_id: str, partner_id: str, reason: str, *, now: float
) -> None:
    """Remember the cancellation (the first reason wins); picks arriving later are cancelled."""
    sql.NEW_CANCELLED_ORDER.run(
        conn,
        {
            "order_id": order_id,
            "partner_id": partner_id,
            "reason": reason[:500],
            "cancelled_at": now,
        },
    )


def order_cancellation(conn: Connection, order_id: str) -> tuple[str, str] | None:
    """(partner_id, reason) of a cancelled order, or None."""
    row = sql.CANCELLATION.run(conn, {"order_id": order_id}).first()
    return None if row is None else (row.partner_id, row.reason)


def pending_picks_of(conn: Connection, order_id: str) -> list[PendingPick]:
    """The order's queued picks (not its queued return parcels)."""
    rows = sql.PENDING_PICKS_OF.run(conn, {"order_id": order_id, "kind": _OUTBOUND}).all()
    return [_pending(r) for r in rows]


def shipments_of(conn: Connection, order_id: str) -> list[Shipment]:
    """The order's outbound shipments, oldest first (never its return parcels)."""
    rows = sql.SHIPMENTS_OF.run(conn, {"order_id": order_id, "kind": _OUTBOUND}).all()
    return [codecs.parse_shipment(r) for r in rows]


def delivered_units_of(conn: Connection, order_id: str) -> list[PickedUnits]:
    """The units of the order's delivered outbound shipments, in shipping order."""
    return [
        units
        for shipment in shipments_of(conn, order_id)
        if shipment.status is ShipmentStatus.DELIVERED
        for units in shipment.items()
    ]


def _pending(r: object) -> PendingPick:
    returning = r.kind == _RETURN  # type: ignore[attr-defined]
    return PendingPick(
        r.pick_id,  # type: ignore[attr-defined]
        r.order_id,  # type: ignore[attr-defined]
        r.location_id,  # type: ignore[attr-defined]
        codecs.parse_lines(r.lines),  # type: ignore[attr-defined]
        r.correlation_id,  # type: ignore[attr-defined]
        r.attempts,  # type: ignore[attr-defined]
        return_id=r.pick_id if returning else "",  # type: ignore[attr-defined]
    )


# -- pending picks -------------------------------------------------------------------------


def add_pending_pick(
    conn: Connection, pick: PendingPick, *, now: float, lease_until: float | None = None
) -> bool:
    """Queue a completed pick (or a return's units) for packing; False when it is queued or
    shipped already.

    Due at once for the worker's rounds, or, with `lease_until`, leased to the caller (who hands
    it to its worker after the commit) until then: the lease is the due time, as a round's.
    """
    if sql.PICK_KNOWN.run(conn, {"pick_id": pick.pick_id}).first() is not None:
        return False
    sql.INSERT_PENDING_PICK.run(
        conn,
        {
            "pick_id": pick.pick_id,
            "order_id": pick.order_id,
            "location_id": pick.location_id,
            "lines": codecs.lines_json(pick.lines),
            "correlation_id": pick.correlation_id,
            "attempts": 0,
            "next_attempt_at": now if lease_until is None else lease_until,
            "last_error": "",
            "kind": _RETURN if pick.return_id else _OUTBOUND,
        },
    )
    return True


def lease_due_picks(
    conn: Connection, now: float, limit: int, lease_seconds: float
) -> list[PendingPick]:
    """Due picks, leased to the caller (pushing next_attempt_at out) so no other worker packs
    them meanwhile; a crashed worker's lease simply runs out."""
    # Why the probe: the lease builds its statements per call (~80 µs), and most polls find
    # nothing due; the probe is a prebuilt statement (a few µs).
    if sql.ANY_PICK_DUE.run(conn, {"now": now}).first() is None:
        return []
    rows = lease_due(
        conn,
        select(t.pending_picks)
        .where(t.pending_picks.c.next_attempt_at <= now)
        .order_by(t.pending_picks.c.next_attempt_at)
        .limit(limit),
        table=t.pending_picks,
        key=t.pending_picks.c.pick_id,
        lease_column=t.pending_picks.c.next_attempt_at,
        lease_until=now + lease_seconds,
    )
    return [_pending(r) for r in rows]


def reschedule_pick(conn: Connection, pick_id: str, attempts: int, due: float, error: str) -> None:
    sql.RESCHEDULE_PICK.run(
        conn,
        {
            "match_pick_id": pick_id,
            "attempts": attempts,
            "next_attempt_at": due,
            "last_error": error[:500],
        },
    )


# -- shipments -----------------------------------------------------------------------------


def shipment_of_pick(conn: Connection, pick_id: str) -> Shipment | None:
    """The shipment of a pick, or the return parcel of a return (`pick_id` = the return id)."""
    row = sql.SHIPMENT_OF_PICK.run(conn, {"pick_id": pick_id}).first()
    return None if row is None else codecs.parse_shipment(row)


def insert_shipment(
    conn: Connection,
    shipment: Shipment,
    *,
    label_due_at: float | None,
    now: float,
    label_lease_until: float | None = None,
) -> bool:
    """Insert a new shipment and drop its pick (or return) from the queue, in the caller's
    transaction; True when the pick was in the queue. With `label_lease_until` its label work
    is leased to the caller, who books it at once."""
    source = shipment.return_id if shipment.is_return else shipment.pick_id
    sql.INSERT_SHIPMENT.run(
        conn,
        {
            "shipment_id": shipment.shipment_id,
            "order_id": shipment.order_id,
            "partner_id": shipment.partner_id,
            "pick_id": source,
            "kind": int(shipment.kind),
            "status": int(shipment.status),
            "document": codecs.shipment_document(shipment),
            "progress": codecs.progress_json(shipment.progress),
            "correlation_id": shipment.correlation_id,
            "label_attempts": 0,
            "label_due_at": label_due_at,
            "label_lease_until": label_lease_until,
            "final_charge": None,
            "version": 1,
            "updated_at": now,
        },
    )
    return sql.DELETE_PENDING_PICK.run(conn, {"pick_id": source}).rowcount == 1


def get_shipment(conn: Connection, shipment_id: str) -> Shipment | None:
    row = sql.SHIPMENT.run(conn, {"shipment_id": shipment_id}).first()
    return None if row is None else codecs.parse_shipment(row)


_KEEP = object()


def save_shipment(
    conn: Connection,
    shipment: Shipment,
    *,
    now: float,
    label_due_at: float | object | None = _KEEP,
    release_lease: bool = False,
) -> None:
    """Write the shipment back if nobody changed it since it was read (optimistic version).

    The label schedule and lease stay as they are unless given: saving the chosen rate mid-
    booking must not free the shipment for another worker.
    """
    values: dict[str, object] = {
        "match_shipment_id": shipment.shipment_id,
        "match_version": shipment.version,
        "status": int(shipment.status),
        "document": codecs.shipment_document(shipment),
        "progress": codecs.progress_json(shipment.progress),
        "label_attempts": shipment.label_attempts,
        "final_charge": codecs.final_charge_json(shipment.final_charge),
        "version": shipment.version + 1,
        "updated_at": now,
    }
    if label_due_at is not _KEEP:
        values["label_due_at"] = label_due_at
    if release_lease:
        values["label_lease_until"] = None
    result = sql.SAVE_SHIPMENT.run(conn, values)
    if result.rowcount != 1:
        raise Conflict(f"shipment {shipment.shipment_id} changed concurrently")
    shipment.version += 1


def _label_work_due(status: ShipmentStatus, now: float) -> ColumnElement[bool]:
    """Shipments of `status` whose label work is due and whose lease is free (the lease's
    condition; statements.ANY_LABEL_WORK_DUE probes the same)."""
    return and_(
        t.shipments.c.status == int(status),
        t.shipments.c.label_due_at <= now,
        or_(
            t.shipments.c.label_lease_until.is_(None),
            t.shipments.c.label_lease_until < now,
        ),
    )


def _lease_label_work(
    conn: Connection, status: ShipmentStatus, now: float, limit: int, lease_seconds: float
) -> list[Shipment]:
    # Why the probe: the lease builds its statements per call (~140 µs), and most polls find
    # nothing due; the probe is a prebuilt statement (a few µs).
    if sql.ANY_LABEL_WORK_DUE.run(conn, {"status": int(status), "now": now}).first() is None:
        return []
    rows = lease_due(
        conn,
        select(t.shipments)
        .where(_label_work_due(status, now))
        .order_by(t.shipments.c.label_due_at)
        .limit(limit),
        table=t.shipments,
        key=t.shipments.c.shipment_id,
        lease_column=t.shipments.c.label_lease_until,
        lease_until=now + lease_seconds,
    )
    return [codecs.parse_shipment(r) for r in rows]


def lease_due_labels(
    conn: Connection, now: float, limit: int, lease_seconds: float
) -> list[Shipment]:
    """Shipments waiting for a label whose lease is free, leased to the caller."""
    return _lease_label_work(conn, ShipmentStatus.CREATED, now, limit, lease_seconds)


def lease_due_voids(
    conn: Connection, now: float, limit: int, lease_seconds: float
) -> list[Shipment]:
    """Cancelled shipments whose label void is due and free, leased to the caller.

    A cancelled shipment reuses the label schedule columns: its label work is now the void.
    """
    return _lease_label_work(conn, ShipmentStatus.CANCELLED, now, limit, lease_seconds)


def list_shipments(
    conn: Connection,
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
    """One page, newest first (keyset on the row sequence), and the next page's token. With
    `order_ids`, only those orders' shipments (one statement: an IN list, at most 500)."""
    query = select(t.shipments)
    if partner_id:
        query = query.where(t.shipments.c.partner_id == partner_id)
    if order_id:
        query = query.where(t.shipments.c.order_id == order_id)
    if order_ids:
        query = query.where(t.shipments.c.order_id.in_(order_ids))
    if status:
        query = query.where(t.shipments.c.status == status)
    if kind:
        query = query.where(t.shipments.c.kind == kind)
    if return_id:
        query = query.where(and_(t.shipments.c.pick_id == return_id, t.shipments.c.kind == _RETURN))
    rows = conn.execute(keyset(query, t.shipments.c.seq, page_token, size, descending=True)).all()
    page, token = next_page(rows, size, key=lambda row: int(row.seq))
    return [codecs.parse_shipment(row) for row in page], token
