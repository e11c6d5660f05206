"""Shipment's tracking queries: tracking numbers → shipment, and the scan timeline."""

from __future__ import annotations

from sqlalchemy import Connection

from services.shipment.adapters.store import codecs
from services.shipment.adapters.store import statements as sql
from services.shipment.domain.shipment import ScanReport, Shipment


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


def tracked_shipment(
    conn: Connection, carrier: str, number: str
) -> tuple[str, Shipment | None] | None:
    """The id and the shipment a tracking number belongs to, in one query: None for an unknown
    number, (id, None) when the number's shipment is not there."""
    row = sql.TRACKED_SHIPMENT.run(conn, {"carrier": carrier, "tracking_number": number}).first()
    if row is None:
        return None
    shipment_id = str(row.tracked_shipment_id)
    if row.document is None:
        return shipment_id, None
    return shipment_id, codecs.parse_shipment(row)


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
