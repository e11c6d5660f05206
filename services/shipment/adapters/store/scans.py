"""Shipment's tracking queries: tracking numbers → shipment, and the scan timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from services.kit.errors import Conflict
from services.shipment.adapters.store import codecs
from services.shipment.adapters.store import statements as sql
from services.shipment.domain.model import ShipmentStatus
from services.shipment.domain.shipment import ScanReport, Shipment
from services.shipment.domain.tracking import Timeline


def add_tracking_numbers(
    conn: Connection, carrier: str, numbers: list[str], shipment_id: str
) -> None:
    """Map each number to the shipment; a number already mapped keeps its shipment."""
    sql.NEW_TRACKING_NUMBER.run_many(
        conn,
        [
            {"carrier": carrier, "tracking_number": number, "shipment_id": shipment_id}
            for number in dict.fromkeys(n for n in numbers if n)
        ],
    )


@dataclass(frozen=True)
class TrackedShipment:
    """A tracking number's shipment as read for new scans: its timeline decoded at once, the
    whole shipment only when a scan moves it (`shipment()`), from the same row."""

    shipment_id: str
    row: object

    def timeline(self) -> Timeline:
        return Timeline(
            ShipmentStatus(self.row.status),  # type: ignore[attr-defined]
            codecs.parse_progress(self.row.progress),  # type: ignore[attr-defined]
        )

    def shipment(self) -> Shipment:
        return codecs.parse_shipment(self.row)


def tracked_shipment(
    conn: Connection, carrier: str, number: str
) -> tuple[str, TrackedShipment | None] | None:
    """The id and the shipment a tracking number belongs to, in one query: None for an unknown
    number, (id, None) when the number's shipment is not there."""
    row = sql.TRACKED_SHIPMENT.run(conn, {"carrier": carrier, "tracking_number": number}).first()
    if row is None:
        return None
    shipment_id = str(row.tracked_shipment_id)
    if row.document is None:
        return shipment_id, None
    return shipment_id, TrackedShipment(shipment_id, row)


def save_timeline(
    conn: Connection, shipment: TrackedShipment, timeline: Timeline, *, now: datetime
) -> None:
    """Write back what timeline scans changed (progress, last tracking status, update time)
    under the same optimistic version check as shipments.save_shipment, so a worker holding
    the shipment as read before still cannot overwrite the scans' progress."""
    row = shipment.row
    version = int(row.version)  # type: ignore[attr-defined]
    result = sql.SAVE_SHIPMENT.run(
        conn,
        {
            "match_shipment_id": shipment.shipment_id,
            "match_version": version,
            "document": codecs.document_with_timeline(
                row.document,  # type: ignore[attr-defined]
                timeline.last_tracking_status,
                now,
            ),
            "progress": codecs.progress_json(timeline.progress),
            "version": version + 1,
            "updated_at": now.timestamp(),
        },
    )
    if result.rowcount != 1:
        raise Conflict(f"shipment {shipment.shipment_id} changed concurrently")


def add_scan(conn: Connection, shipment_id: str, scan: ScanReport) -> bool:
    """Store a scan (as received); False when the shipment already has it (same dedupe key)."""
    inserted = sql.NEW_SCAN.run(
        conn,
        {
            "shipment_id": shipment_id,
            "dedupe_key": scan.key,
            "occur_time": scan.occur_time.timestamp(),
            "event": scan.record,
        },
    )
    return inserted.rowcount == 1


def list_scans(conn: Connection, shipment_id: str) -> list[bytes]:
    """Every stored scan as received, oldest first (by scan time, then arrival)."""
    rows = sql.SCANS_OF.run(conn, {"shipment_id": shipment_id}).all()
    return [bytes(row.event) for row in rows]
