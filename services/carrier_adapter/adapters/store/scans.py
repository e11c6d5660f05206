"""Seen tracking scans: a webhook re-sent by the carrier (or a poll repeating a push) must not
publish the same scan twice."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam
from sqlalchemy.dialects import postgresql, sqlite

from services.carrier_adapter.adapters.store.codec import epoch
from services.carrier_adapter.adapters.store.tables import seen_scans
from services.carrier_adapter.domain.model import TrackingScan
from services.kit.statements import Prepared, prepared

__all__ = ["keep_unseen", "keep_unseen_groups"]

_COLUMNS = ("dedupe_key", "carrier", "tracking_number", "seen_at")
# Rows per INSERT. A push carries a few scans; a poll of a long journey may carry many more,
# and one statement per this many keeps them under the drivers' bind-parameter limits (and
# bounds the statements kept compiled, one per row count).
_MAX_ROWS_PER_INSERT = 100


def keep_unseen(
    conn: Connection, scans: Sequence[TrackingScan], now: datetime
) -> list[TrackingScan]:
    """Record each scan's dedupe key; return the scans not recorded before, in order.

    One INSERT for all the scans (per _MAX_ROWS_PER_INSERT): the unique dedupe key decides (not
    a prior SELECT), so two racing replicas cannot both keep a scan, and the keys it returns are
    the ones new here.
    """
    return keep_unseen_groups(conn, [scans], now)[0]


def keep_unseen_groups(
    conn: Connection, groups: Sequence[Sequence[TrackingScan]], now: datetime
) -> list[list[TrackingScan]]:
    """`keep_unseen` of several groups of scans (several pushes) in one INSERT: each group's
    scans not recorded before, as if the groups had been recorded one after another (a key in
    two groups is new in the first only)."""
    scans = [scan for group in groups for scan in group]
    inserted = _insert_keys(conn, scans, now) if scans else set()
    fresh_groups: list[list[TrackingScan]] = []
    for group in groups:
        fresh: list[TrackingScan] = []
        for scan in group:
            if scan.dedupe_key in inserted:
                inserted.discard(scan.dedupe_key)  # a key twice in one push is new only once
                fresh.append(scan)
        fresh_groups.append(fresh)
    return fresh_groups


def _insert_keys(conn: Connection, scans: Sequence[TrackingScan], now: datetime) -> set[str]:
    """The dedupe keys of `scans` that this INSERT recorded (those not recorded before)."""
    seen_at = epoch(now)
    inserted: set[str] = set()
    for start in range(0, len(scans), _MAX_ROWS_PER_INSERT):
        chunk = scans[start : start + _MAX_ROWS_PER_INSERT]
        values: dict[str, Any] = {}
        for row, scan in enumerate(chunk):
            values[f"dedupe_key_{row}"] = scan.dedupe_key
            values[f"carrier_{row}"] = scan.carrier
            values[f"tracking_number_{row}"] = scan.tracking_number
            values[f"seen_at_{row}"] = seen_at
        returned = _insert_rows(len(chunk)).run(conn, values).all()
        inserted.update(key for (key,) in returned)
    return inserted


@functools.cache  # at most _MAX_ROWS_PER_INSERT of them
def _insert_rows(count: int) -> Prepared:
    """`INSERT … VALUES (row 0), …, (row count-1) ON CONFLICT DO NOTHING RETURNING dedupe_key`.

    On the kit's prepared path (the raw DBAPI cursor): SQLAlchemy's execution of the same
    statement cost about four times the insert itself, on every push.
    """
    rows: list[dict[str, Any]] = [
        {column: bindparam(f"{column}_{row}") for column in _COLUMNS} for row in range(count)
    ]
    return prepared(
        {
            name: dialect.insert(seen_scans)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(seen_scans.c.dedupe_key)
            for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
        }
    )
