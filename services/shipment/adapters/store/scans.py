"""Shipment's tracking queries: tracking numbers → shipment, and the scan timeline."""

from __future__ import annotations

from sqlalchemy import Connection, and_, select

from services.shipment.adapters.store import tables as t
from services.shipment.domain.shipment import ScanReport


def add_tracking_numbers(
    conn: Connection, carrier: str, numbers: list[str], shipment_id: str
) -> None:
    for number in dict.fromkeys(n for n in numbers if n):
        exists = conn.execute(
            select(t.tracking_numbers.c.shipment_id).where(
                and_(
                    t.tracking_numbers.c.carrier == carrier,
                    t.tracking_numbers.c.tracking_number == number,
                )
            )
        ).first()
        if exists is None:
            conn.execute(
                t.tracking_numbers.insert().values(
                    carrier=carrier, tracking_number=number, shipment_id=shipment_id
                )
            )


def shipment_of_tracking_number(conn: Connection, carrier: str, number: str) -> str | None:
    row = conn.execute(
        select(t.tracking_numbers.c.shipment_id).where(
            and_(
                t.tracking_numbers.c.carrier == carrier,
                t.tracking_numbers.c.tracking_number == number,
            )
        )
    ).first()
    return None if row is None else str(row.shipment_id)


def add_scan(conn: Connection, shipment_id: str, scan: ScanReport) -> bool:
    """Store a scan (as received); False when the shipment already has it (same dedupe key)."""
    dedupe_key = scan.key
    seen = conn.execute(
        select(t.scans.c.seq).where(
            and_(t.scans.c.shipment_id == shipment_id, t.scans.c.dedupe_key == dedupe_key)
        )
    ).first()
    if seen is not None:
        return False
    conn.execute(
        t.scans.insert().values(
            shipment_id=shipment_id,
            dedupe_key=dedupe_key,
            occur_time=scan.occur_time.timestamp(),
            event=scan.record,
        )
    )
    return True


def list_scans(conn: Connection, shipment_id: str) -> list[bytes]:
    """Every stored scan as received, oldest first (by scan time, then arrival)."""
    rows = conn.execute(
        select(t.scans.c.event)
        .where(t.scans.c.shipment_id == shipment_id)
        .order_by(t.scans.c.occur_time, t.scans.c.seq)
    ).all()
    return [bytes(row.event) for row in rows]
