"""Shipment's hot-path SQL statements, each built once (why: services/kit/statements.py).

Every one is `prepared`: it runs on the raw DBAPI cursor (`STATEMENT.run(conn, params)`), in
the unit of work's transaction, and answers rows read like SQLAlchemy's.

- SELECTs bind their filters by name.
- UPDATEs are the kit's `update_where` (SET from the parameters, WHERE on `match_*` binds).
- `NEW_*` are first-writer-wins inserts, the kit's `insert_new` (ON CONFLICT DO NOTHING per
  dialect): the caller reads `rowcount` (0 = the row was already there) instead of reading first.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import and_, bindparam, delete, or_, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import BindParameter

from services.kit.statements import Prepared, insert_new, prepared, update_where
from services.shipment.adapters.store import tables as t

# -- order refs and cancelled orders ---------------------------------------------------------

ORDER_REF = prepared(select(t.order_refs).where(t.order_refs.c.order_id == bindparam("order_id")))
ORDER_REF_EXISTS = prepared(
    select(t.order_refs.c.order_id).where(t.order_refs.c.order_id == bindparam("order_id"))
)
NEW_ORDER_REF = prepared(insert_new(t.order_refs))

CANCELLATION = prepared(
    select(t.cancelled_orders.c.partner_id, t.cancelled_orders.c.reason).where(
        t.cancelled_orders.c.order_id == bindparam("order_id")
    )
)
NEW_CANCELLED_ORDER = prepared(insert_new(t.cancelled_orders))

# -- pending picks ---------------------------------------------------------------------------

# A pick (or return) that is queued, or already shipped: the source of a shipment.
PICK_KNOWN = prepared(
    union_all(
        select(t.pending_picks.c.pick_id).where(t.pending_picks.c.pick_id == bindparam("pick_id")),
        select(t.shipments.c.pick_id).where(t.shipments.c.pick_id == bindparam("pick_id")),
    )
)
# An order's queued picks of one kind.
PENDING_PICKS_OF = prepared(
    select(t.pending_picks).where(
        t.pending_picks.c.order_id == bindparam("order_id"),
        t.pending_picks.c.kind == bindparam("kind"),
    )
)
INSERT_PENDING_PICK = prepared(t.pending_picks.insert().inline())
DELETE_PENDING_PICK = prepared(
    delete(t.pending_picks).where(t.pending_picks.c.pick_id == bindparam("pick_id"))
)
RESCHEDULE_PICK = prepared(update_where(t.pending_picks, "pick_id"))
# Whether any pick is due: the worker's cheap probe before it leases (shipments.lease_due_picks;
# same condition as the lease's query).
ANY_PICK_DUE = prepared(
    select(t.pending_picks.c.pick_id)
    .where(t.pending_picks.c.next_attempt_at <= bindparam("now"))
    .limit(1)
)

# -- shipments -------------------------------------------------------------------------------

SHIPMENT = prepared(
    select(t.shipments).where(t.shipments.c.shipment_id == bindparam("shipment_id"))
)
SHIPMENT_OF_PICK = prepared(
    select(t.shipments).where(t.shipments.c.pick_id == bindparam("pick_id"))
)
# An order's shipments of one kind, oldest first.
SHIPMENTS_OF = prepared(
    select(t.shipments)
    .where(t.shipments.c.order_id == bindparam("order_id"), t.shipments.c.kind == bindparam("kind"))
    .order_by(t.shipments.c.seq)
)
INSERT_SHIPMENT = prepared(t.shipments.insert().inline())
# Optimistic: matches only the version that was read.
SAVE_SHIPMENT = prepared(update_where(t.shipments, "shipment_id", "version"))
# Whether any shipment of `status` has label work (a booking, or a void) due with its lease
# free: the worker's cheap probe before it leases (same condition as shipments._label_work_due).
ANY_LABEL_WORK_DUE = prepared(
    select(t.shipments.c.shipment_id)
    .where(
        t.shipments.c.status == bindparam("status"),
        t.shipments.c.label_due_at <= bindparam("now"),
        or_(
            t.shipments.c.label_lease_until.is_(None),
            t.shipments.c.label_lease_until < bindparam("now"),
        ),
    )
    .limit(1)
)

# -- tracking --------------------------------------------------------------------------------

# The shipment a tracking number belongs to, read with the number in one round trip; the outer
# join tells a number whose shipment vanished from an unknown one.
_TRACKED = select(
    t.tracking_numbers.c.shipment_id.label("tracked_shipment_id"),
    t.shipments.c.status,
    t.shipments.c.document,
    t.shipments.c.progress,
    t.shipments.c.correlation_id,
    t.shipments.c.label_attempts,
    t.shipments.c.final_charge,
    t.shipments.c.version,
).select_from(
    t.tracking_numbers.outerjoin(
        t.shipments, t.shipments.c.shipment_id == t.tracking_numbers.c.shipment_id
    )
)
TRACKED_SHIPMENT = prepared(
    _TRACKED.where(
        and_(
            t.tracking_numbers.c.carrier == bindparam("carrier"),
            t.tracking_numbers.c.tracking_number == bindparam("tracking_number"),
        )
    )
)
NEW_TRACKING_NUMBER = prepared(insert_new(t.tracking_numbers))
# Rows per statement of the batched tracking statements below: a consumer's batch holds up to
# 100 events; this keeps each statement under the drivers' bind-parameter limits and bounds the
# statements kept compiled (one per row count).
MAX_ROWS_PER_STATEMENT = 100


@functools.cache  # at most MAX_ROWS_PER_STATEMENT of them
def tracked_shipments(count: int) -> Prepared:
    """TRACKED_SHIPMENT for `count` numbers of one carrier (`:carrier`, `:number_0` ...), each
    row with its `tracked_number`: a batch's numbers in one round trip."""
    numbers: list[BindParameter[Any]] = [bindparam(f"number_{index}") for index in range(count)]
    return prepared(
        _TRACKED.add_columns(t.tracking_numbers.c.tracking_number.label("tracked_number")).where(
            t.tracking_numbers.c.carrier == bindparam("carrier"),
            t.tracking_numbers.c.tracking_number.in_(numbers),
        )
    )


_SCAN_COLUMNS = ("shipment_id", "dedupe_key", "occur_time", "event")


@functools.cache  # at most MAX_ROWS_PER_STATEMENT of them
def new_scans(count: int) -> Prepared:
    """`count` scans in one INSERT (`:shipment_id_0`, `:dedupe_key_0`, ...), first writer wins
    ((shipment_id, dedupe_key) is UNIQUE): RETURNING the (shipment_id, dedupe_key) of the rows
    it stored, which are the scans new to their shipments."""
    rows: list[dict[str, Any]] = [
        {column: bindparam(f"{column}_{row}") for column in _SCAN_COLUMNS} for row in range(count)
    ]
    return prepared(
        {
            name: dialect.insert(t.scans)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["shipment_id", "dedupe_key"])
            .returning(t.scans.c.shipment_id, t.scans.c.dedupe_key)
            for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
        }
    )


SCANS_OF = prepared(
    select(t.scans.c.event)
    .where(t.scans.c.shipment_id == bindparam("shipment_id"))
    .order_by(t.scans.c.occur_time, t.scans.c.seq)
)
