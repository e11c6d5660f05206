"""Seen tracking scans: a webhook re-sent by the carrier (or a poll repeating a push) must not
publish the same scan twice."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection

from services.carrier_adapter.adapters.store.codec import epoch, insert_new
from services.carrier_adapter.adapters.store.tables import seen_scans
from services.carrier_adapter.domain.model import TrackingScan

__all__ = ["keep_unseen"]


def keep_unseen(
    conn: Connection, scans: Sequence[TrackingScan], now: datetime
) -> list[TrackingScan]:
    """Record each scan's dedupe key; return the scans not recorded before, in order.

    One INSERT for all the scans: the unique dedupe key decides (not a prior SELECT), so two
    racing replicas cannot both keep a scan, and the keys it returns are the ones new here.
    """
    if not scans:
        return []
    seen_at = epoch(now)
    rows = [
        {
            "dedupe_key": scan.dedupe_key,
            "carrier": scan.carrier,
            "tracking_number": scan.tracking_number,
            "seen_at": seen_at,
        }
        for scan in scans
    ]
    inserted = {key for (key,) in conn.execute(insert_new(conn, seen_scans, "dedupe_key"), rows)}
    fresh: list[TrackingScan] = []
    for scan in scans:
        if scan.dedupe_key in inserted:
            inserted.discard(scan.dedupe_key)  # a key twice in one push is new only once
            fresh.append(scan)
    return fresh
