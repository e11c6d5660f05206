"""Scans left UNKNOWN by an unmapped status code, kept until a mapping normalizes them again.

Only such scans are written here (rare: a carrier sending a code its table lacks), in the unit
of work that publishes them, so the hot path of mapped scans pays nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from services.carrier_adapter.adapters.store.codec import epoch
from services.carrier_adapter.adapters.store.tables import unmapped_scans
from services.carrier_adapter.domain.model import (
    IncidentReason,
    ScanLocation,
    TrackingScan,
    TrackingStatus,
)

__all__ = ["claim_unmapped", "keep_unmapped", "pending_codes", "purge_renormalized"]


def keep_unmapped(conn: Connection, scans: Sequence[TrackingScan], received_at: datetime) -> None:
    """Keep scans just published as UNKNOWN (each once: a re-sent scan is not published again
    anyway, and its dedupe key is the row's key)."""
    if not scans:
        return
    rows = [
        {
            "dedupe_key": scan.dedupe_key,
            "carrier": scan.carrier,
            "carrier_status_code": scan.carrier_status_code,
            "tracking_number": scan.tracking_number,
            "scan": _encode(scan),
            "received_at": epoch(received_at),
            "mapped_version": None,
            "mapped_at": None,
        }
        for scan in scans
    ]
    module: Any = sqlite if conn.dialect.name == "sqlite" else postgresql
    conn.execute(
        module.insert(unmapped_scans).on_conflict_do_nothing(index_elements=["dedupe_key"]), rows
    )


def claim_unmapped(
    conn: Connection, carrier: str, code: str, version: int, now: datetime
) -> list[TrackingScan]:
    """Mark every scan `code` left UNKNOWN as normalized under mapping `version`; return them
    (as stored, still UNKNOWN), oldest first.

    One UPDATE … WHERE mapped_version IS NULL decides, so of two replicas (or a mapping and a
    refresh) re-normalizing the same code at once, each scan goes to exactly one of them.
    """
    rows = conn.execute(
        update(unmapped_scans)
        .where(
            unmapped_scans.c.carrier == carrier,
            unmapped_scans.c.carrier_status_code == code,
            unmapped_scans.c.mapped_version.is_(None),
        )
        .values(mapped_version=version, mapped_at=epoch(now))
        .returning(unmapped_scans.c.scan)
    ).all()
    return sorted((_decode(row.scan) for row in rows), key=lambda scan: scan.occurred_at)


def pending_codes(conn: Connection) -> set[tuple[str, str]]:
    """The (carrier, status code) pairs that still have scans left UNKNOWN."""
    rows = conn.execute(
        select(unmapped_scans.c.carrier, unmapped_scans.c.carrier_status_code)
        .where(unmapped_scans.c.mapped_version.is_(None))
        .distinct()
    ).all()
    return {(row.carrier, row.carrier_status_code) for row in rows}


def purge_renormalized(conn: Connection, before: datetime) -> int:
    """Scans published again before `before` are done with (a re-sent copy is stopped by
    seen_scans); those still UNKNOWN stay until their code is mapped."""
    statement = delete(unmapped_scans).where(
        unmapped_scans.c.mapped_version.is_not(None), unmapped_scans.c.mapped_at < epoch(before)
    )
    return int(conn.execute(statement).rowcount)


def _encode(scan: TrackingScan) -> str:
    location = scan.location
    return json.dumps(
        {
            "tracking_number": scan.tracking_number,
            "carrier": scan.carrier,
            "status": scan.status.value,
            "incident_reason": scan.incident_reason.value if scan.incident_reason else None,
            "carrier_status_code": scan.carrier_status_code,
            "carrier_incident_code": scan.carrier_incident_code,
            "description": scan.description,
            # ISO text, not epoch seconds: the time must come back exactly (it keys the scan).
            "occurred_at": scan.occurred_at.isoformat(),
            "location": None
            if location is None
            else [location.city, location.region, location.postal_code, location.country_code],
            "signed_by": scan.signed_by,
            "dedupe_key": scan.dedupe_key,
        },
        separators=(",", ":"),
    )


def _decode(text: str) -> TrackingScan:
    raw = json.loads(text)
    location = raw["location"]
    return TrackingScan(
        tracking_number=raw["tracking_number"],
        carrier=raw["carrier"],
        status=TrackingStatus(raw["status"]),
        incident_reason=IncidentReason(raw["incident_reason"]) if raw["incident_reason"] else None,
        carrier_status_code=raw["carrier_status_code"],
        carrier_incident_code=raw["carrier_incident_code"],
        description=raw["description"],
        occurred_at=datetime.fromisoformat(raw["occurred_at"]),
        location=None if location is None else ScanLocation(*location),
        signed_by=raw["signed_by"],
        dedupe_key=raw["dedupe_key"],
    )
