"""The raw payload log table: batched appends and the bounded-retention sweep."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, func, insert, select

from services.carrier_adapter.adapters.store.codec import epoch
from services.carrier_adapter.adapters.store.tables import payload_log
from services.carrier_adapter.domain.payload_log import RawPayload, RetentionPolicy
from services.kit.statements import prepared

__all__ = ["append_payloads", "count_payloads", "sweep_payloads"]

# Built once and run on the kit's prepared path (the raw DBAPI cursor's executemany); `inline()`:
# the generated record ids are never read, so PostgreSQL needs no RETURNING for them.
_APPEND = prepared(insert(payload_log).inline())


def append_payloads(conn: Connection, records: Sequence[RawPayload]) -> None:
    if not records:
        return
    _APPEND.run_many(
        conn,
        [
            {
                "carrier": r.carrier,
                "carrier_account_id": r.carrier_account_id,
                "operation": r.operation,
                "direction": r.direction.value,
                "is_error": r.is_error,
                "recorded_at": epoch(r.recorded_at),
                "url": r.url[:500],
                "reference": r.reference[:128],
                "body": r.body,
                "truncated": r.truncated,
            }
            for r in records
        ],
    )


def sweep_payloads(conn: Connection, policy: RetentionPolicy, now: datetime) -> int:
    """Delete records past their age bound, then beyond the newest N per account."""
    cut = policy.cutoffs(now)
    log = payload_log.c
    deleted = conn.execute(
        delete(payload_log).where(
            ((log.is_error.is_(False)) & (log.recorded_at < epoch(cut.ordinary_before)))
            | (log.recorded_at < epoch(cut.error_before))
        )
    ).rowcount
    crowded = conn.execute(
        select(log.carrier_account_id)
        .group_by(log.carrier_account_id)
        .having(func.count() > policy.max_records_per_account)
    ).scalars()
    for account in list(crowded):
        # The oldest record still kept (newest first by time, then id); everything older goes.
        at, record_id = conn.execute(
            select(log.recorded_at, log.record_id)
            .where(log.carrier_account_id == account)
            .order_by(log.recorded_at.desc(), log.record_id.desc())
            .offset(policy.max_records_per_account - 1)
            .limit(1)
        ).one()
        older = (log.recorded_at < at) | ((log.recorded_at == at) & (log.record_id < record_id))
        deleted += conn.execute(
            delete(payload_log).where(log.carrier_account_id == account, older)
        ).rowcount
    return int(deleted)


def count_payloads(conn: Connection, reference: str | None = None) -> int:
    query = select(func.count()).select_from(payload_log)
    if reference is not None:
        query = query.where(payload_log.c.reference == reference)
    return int(conn.execute(query).scalar_one())
