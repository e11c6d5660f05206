"""Seen tracking scans: a webhook re-sent by the carrier (or a poll repeating a push) must not
publish the same scan twice."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection

from services.carrier_adapter.adapters.store.codec import epoch, insert_ignoring_duplicates
from services.carrier_adapter.adapters.store.tables import seen_scans
from services.carrier_adapter.domain.model import TrackingScan

__all__ = ["keep_unseen"]


def keep_unseen(
    conn: Connection, scans: Sequence[TrackingScan], now: datetime
) -> list[TrackingScan]:
    """Record each scan's dedupe key; return the scans not recorded before, in order."""
    fresh: list[TrackingScan] = []
    for scan in scans:
        values = {
            "dedupe_key": scan.dedupe_key,
            "carrier": scan.carrier,
            "tracking_number": scan.tracking_number,
            "seen_at": epoch(now),
        }
        if insert_ignoring_duplicates(conn, seen_scans, values, "dedupe_key"):
            fresh.append(scan)
    return fresh
