"""The polling scheduler's rows: which labels are polled, their PollState, and who polls them.

A booked label of a polled account gets its row (`enroll_labels`) on the first sweep after it is
booked. Replicas share the rows through a lease: `claim_poll` takes a row only when its lease has
lapsed and nobody polled it since it was read, in one conditional UPDATE, so two replicas can
never both win; the outcome is written under the same token (`finish_poll`), and the lease of a
replica that died simply lapses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    String,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from services.carrier_adapter.adapters.store.codec import epoch, from_epoch
from services.carrier_adapter.adapters.store.labels import LabelStatus
from services.carrier_adapter.adapters.store.tables import labels, tracking_polls
from services.carrier_adapter.domain.model import TERMINAL_STATUSES, TrackingStatus
from services.carrier_adapter.domain.polling import PollState
from services.kit.statements import Prepared, prepared, update_where

__all__ = [
    "PolledLabel",
    "claim_poll",
    "enroll_labels",
    "finish_poll",
    "get_poll",
    "pollable",
    "release_poll",
]

# tracking_polls.last_error is a String(500).
_ERROR_LENGTH = 500

# The per-label statements, built once and run on the kit's prepared path (the raw DBAPI cursor,
# in the unit of work's transaction). The sweeps' queries (a list of accounts: expanding IN) stay
# on conn.execute.
_POLL = prepared(select(tracking_polls).where(tracking_polls.c.label_id == bindparam("label_id")))


def _claim(unchanged: ColumnElement[bool]) -> Prepared:
    # The lease on one row, taken only if it is free and `unchanged` (nobody polled it since).
    t = tracking_polls
    return prepared(
        update(t)
        .where(
            t.c.label_id == bindparam("claimed_label_id"),
            unchanged,
            or_(t.c.lease_until.is_(None), t.c.lease_until <= bindparam("now")),
        )
        .values(lease_token=bindparam("claim_token"), lease_until=bindparam("claim_until"))
    )


# A claim of a row never polled, and of a row last polled at :polled_version.
_CLAIM_UNPOLLED = _claim(tracking_polls.c.last_polled_at.is_(None))
_CLAIM_POLLED = _claim(tracking_polls.c.last_polled_at == bindparam("polled_version"))
# Writes under the lease (match_label_id, match_lease_token); SET comes from the parameters.
_HELD = prepared(update_where(tracking_polls, "label_id", "lease_token"))


@dataclass(frozen=True)
class PolledLabel:
    label_id: str
    carrier_account_id: str
    state: PollState
    # last_polled_at exactly as stored: a claim succeeds only if it is still the same.
    polled_version: float | None
    last_error: str = ""


def enroll_labels(conn: Connection, account_ids: Sequence[str], since: datetime) -> None:
    """Add a row for every live label of these accounts booked since `since` that has none."""
    t = tracking_polls
    already = select(t.c.label_id).where(t.c.label_id == labels.c.label_id)
    source = select(
        labels.c.label_id,
        labels.c.carrier,
        labels.c.carrier_account_id,
        labels.c.tracking_number,
        literal(TrackingStatus.PENDING.value, String),
        labels.c.booked_at,
        literal("", String),
    ).where(
        labels.c.carrier_account_id.in_(account_ids),
        labels.c.status == LabelStatus.BOOKED.value,
        labels.c.cancelled_at.is_(None),
        labels.c.tracking_number.is_not(None),
        labels.c.booked_at >= epoch(since),
        ~exists(already),
    )
    columns = [
        "label_id",
        "carrier",
        "carrier_account_id",
        "tracking_number",
        "status",
        "label_created_at",
        "last_error",
    ]
    module: Any = sqlite if conn.dialect.name == "sqlite" else postgresql
    # ON CONFLICT as well: another replica may enroll the same label at the same moment.
    conn.execute(
        module.insert(t)
        .from_select(columns, source)
        .on_conflict_do_nothing(index_elements=["label_id"])
    )


def pollable(
    conn: Connection,
    account_ids: Sequence[str],
    now: datetime,
    give_up_after: timedelta,
    polled_before: datetime,
    limit: int,
) -> list[PolledLabel]:
    """Rows that may be due: free, not terminal, not given up, not polled since `polled_before`,
    label not voided; stalest first. Only a pre-filter: `due_for_poll` decides."""
    t = tracking_polls
    rows = conn.execute(
        select(t)
        .join(labels, labels.c.label_id == t.c.label_id)
        .where(
            t.c.carrier_account_id.in_(account_ids),
            t.c.status.not_in([status.value for status in TERMINAL_STATUSES]),
            func.coalesce(t.c.last_scan_at, t.c.label_created_at) >= epoch(now - give_up_after),
            or_(t.c.last_polled_at.is_(None), t.c.last_polled_at <= epoch(polled_before)),
            or_(t.c.lease_until.is_(None), t.c.lease_until <= epoch(now)),
            labels.c.cancelled_at.is_(None),
        )
        .order_by(func.coalesce(t.c.last_polled_at, t.c.label_created_at), t.c.label_id)
        .limit(limit)
    ).mappings()
    return [_polled(row) for row in rows]


def get_poll(conn: Connection, label_id: str) -> PolledLabel | None:
    row = _POLL.run(conn, {"label_id": label_id}).mappings().first()
    return None if row is None else _polled(row)


def claim_poll(
    conn: Connection,
    label_id: str,
    polled_version: float | None,
    token: str,
    now: datetime,
    lease_until: datetime,
) -> bool:
    """Lease the row to `token`; False when another replica holds it or polled it meanwhile."""
    claim = {
        "claimed_label_id": label_id,
        "now": epoch(now),
        "claim_token": token,
        "claim_until": epoch(lease_until),
    }
    if polled_version is None:
        taken = _CLAIM_UNPOLLED.run(conn, claim).rowcount
    else:
        taken = _CLAIM_POLLED.run(conn, {**claim, "polled_version": polled_version}).rowcount
    return bool(taken == 1)


def finish_poll(
    conn: Connection,
    label_id: str,
    token: str,
    polled_at: datetime,
    *,
    status: TrackingStatus | None = None,
    news: bool = False,
    error: str = "",
) -> bool:
    """Record a poll and free the row; False when the lease was lost (lapsed and taken)."""
    values: dict[str, Any] = {
        "match_label_id": label_id,
        "match_lease_token": token,
        "last_polled_at": epoch(polled_at),
        "last_error": error[:_ERROR_LENGTH],
        "lease_token": None,
        "lease_until": None,
    }
    if status is not None:
        values["status"] = status.value
    if news:
        values["last_scan_at"] = epoch(polled_at)
    changed = _HELD.run(conn, values).rowcount
    return bool(changed == 1)


def release_poll(conn: Connection, label_id: str, token: str) -> None:
    """Give the row up without a poll (the carrier's circuit is open: try again next sweep)."""
    _HELD.run(
        conn,
        {
            "match_label_id": label_id,
            "match_lease_token": token,
            "lease_token": None,
            "lease_until": None,
        },
    )


def _polled(row: Any) -> PolledLabel:
    created = from_epoch(row["label_created_at"])
    assert created is not None
    return PolledLabel(
        label_id=row["label_id"],
        carrier_account_id=row["carrier_account_id"],
        state=PollState(
            carrier=row["carrier"],
            tracking_number=row["tracking_number"],
            status=TrackingStatus(row["status"]),
            label_created_at=created,
            last_polled_at=from_epoch(row["last_polled_at"]),
            last_scan_at=from_epoch(row["last_scan_at"]),
        ),
        polled_version=row["last_polled_at"],
        last_error=row["last_error"],
    )
