"""Shipment's tracking queries: tracking numbers → shipment, and the scan timeline."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from services.kit.errors import Conflict
from services.shipment.adapters.store import codecs
from services.shipment.adapters.store import statements as sql
from services.shipment.domain.events import (
    ReturnParcelDelivered,
    ShipmentDelivered,
    ShipmentDocument,
)
from services.shipment.domain.model import ShipmentStatus
from services.shipment.domain.shipment import Shipment
from services.shipment.domain.tracking import Delivery, ScanReport, Timeline


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
    whole shipment only when a scan needs it (`shipment()`), from the same row."""

    shipment_id: str
    row: object

    @property
    def correlation_id(self) -> str:
        """The correlation id of the shipment's events (its pick's)."""
        return str(self.row.correlation_id)  # type: ignore[attr-defined]

    def timeline(self) -> Timeline:
        ref, is_return = codecs.parse_ref(self.row.document)  # type: ignore[attr-defined]
        return Timeline(
            ShipmentStatus(self.row.status),  # type: ignore[attr-defined]
            codecs.parse_progress(self.row.progress),  # type: ignore[attr-defined]
            ref,
            is_return,
        )

    def shipment(self) -> Shipment:
        return codecs.parse_shipment(self.row)


def tracked_shipment(
    conn: Connection, carrier: str, number: str
) -> tuple[str, TrackedShipment | None] | None:
    """The id and the shipment a tracking number belongs to, in one query: None for an unknown
    number, (id, None) when the number's shipment is not there."""
    row = sql.TRACKED_SHIPMENT.run(conn, {"carrier": carrier, "tracking_number": number}).first()
    return None if row is None else _tracked(row)


# What `tracked_shipments` answers per (carrier, tracking number) it found: as tracked_shipment.
Tracked = tuple[str, TrackedShipment | None]


def tracked_shipments(
    conn: Connection, numbers: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Tracked]:
    """`tracked_shipment` of many (carrier, number) pairs, one query per carrier (and per
    MAX_ROWS_PER_STATEMENT numbers); an unknown number is missing from the answer."""
    by_carrier: dict[str, list[str]] = {}
    for carrier, number in dict.fromkeys(numbers):
        by_carrier.setdefault(carrier, []).append(number)
    found: dict[tuple[str, str], Tracked] = {}
    for carrier, wanted in by_carrier.items():
        for start in range(0, len(wanted), sql.MAX_ROWS_PER_STATEMENT):
            chunk = wanted[start : start + sql.MAX_ROWS_PER_STATEMENT]
            params = {f"number_{index}": number for index, number in enumerate(chunk)}
            params["carrier"] = carrier
            for row in sql.tracked_shipments(len(chunk)).run(conn, params):
                found[(carrier, str(row.tracked_number))] = _tracked(row)
    return found


def _tracked(row: object) -> Tracked:
    shipment_id = str(row.tracked_shipment_id)  # type: ignore[attr-defined]
    if row.document is None:  # type: ignore[attr-defined]
        return shipment_id, None
    return shipment_id, TrackedShipment(shipment_id, row)


def save_timeline(
    conn: Connection, shipment: TrackedShipment, timeline: Timeline, *, now: datetime
) -> None:
    """Write back what timeline scans changed (status, progress, last tracking status, update
    time, a delivery's proof and final charge) under the same optimistic version check as
    shipments.save_shipment, so a worker holding the shipment as read before still cannot
    overwrite the scans' progress."""
    save_timelines(conn, [(shipment, timeline, now)])


def save_timelines(
    conn: Connection, changed: Sequence[tuple[TrackedShipment, Timeline, datetime]]
) -> None:
    """`save_timeline` for many shipments in one executemany; Conflict unless every one of them
    still had the version read (the batch is then rolled back whole, as one Conflict would)."""
    if not changed:
        return
    result = sql.SAVE_SHIPMENT.run_many(conn, [_timeline_row(*item) for item in changed])
    if result.rowcount != len(changed):
        ids = ", ".join(shipment.shipment_id for shipment, _, _ in changed)
        raise Conflict(f"shipment {ids} changed concurrently")


def _timeline_row(shipment: TrackedShipment, timeline: Timeline, now: datetime) -> dict[str, Any]:
    row = shipment.row
    version = int(row.version)  # type: ignore[attr-defined]
    return {
        "match_shipment_id": shipment.shipment_id,
        "match_version": version,
        "status": int(timeline.status),
        "document": codecs.document_with_timeline(
            row.document,  # type: ignore[attr-defined]
            timeline.status,
            timeline.last_tracking_status,
            now,
            timeline.proof_of_delivery,
            timeline.progress.latest_scan_at,
        ),
        "progress": codecs.progress_json(timeline.progress),
        # Always set (as read when unchanged): one executemany takes every shipment's row.
        "final_charge": (
            row.final_charge  # type: ignore[attr-defined]
            if timeline.final_charge is None
            else codecs.final_charge_json(timeline.final_charge)
        ),
        "version": version + 1,
        "updated_at": now.timestamp(),
    }


def delivered(
    shipment: TrackedShipment, delivery: Delivery, update_time: datetime | None
) -> ShipmentDelivered | ReturnParcelDelivered:
    """The milestone of a delivery the shipment's timeline took: the stored shipment as it
    stood at the scan (`update_time`: when the batch last changed it, None if not yet), as
    Shipment.record_scan's snapshot would carry it, without decoding the shipment."""
    document = ShipmentDocument(
        shipment.shipment_id,
        codecs.document_with_timeline(
            shipment.row.document,  # type: ignore[attr-defined]
            delivery.status,
            delivery.last_tracking_status,
            update_time,
            delivery.proof_of_delivery,
            delivery.latest_scan_at,
        ),
    )
    announce = ReturnParcelDelivered if delivery.is_return else ShipmentDelivered
    return announce(document, delivery.final_charge, delivery.occurred_at)


def add_scans(conn: Connection, scans: Sequence[tuple[str, ScanReport]]) -> set[tuple[str, str]]:
    """Store (shipment id, scan) pairs, as received, in order: one INSERT per
    MAX_ROWS_PER_STATEMENT. Answers the (shipment id, scan key) of those stored, i.e. new to
    their shipment (a key the shipment already had, or twice here, is stored once)."""
    stored: set[tuple[str, str]] = set()
    for start in range(0, len(scans), sql.MAX_ROWS_PER_STATEMENT):
        chunk = scans[start : start + sql.MAX_ROWS_PER_STATEMENT]
        params: dict[str, Any] = {}
        for row, (shipment_id, scan) in enumerate(chunk):
            params[f"shipment_id_{row}"] = shipment_id
            params[f"dedupe_key_{row}"] = scan.key
            params[f"occur_time_{row}"] = scan.occur_time.timestamp()
            params[f"event_{row}"] = scan.record
        returned = sql.new_scans(len(chunk)).run(conn, params)
        stored.update((str(shipment_id), str(key)) for shipment_id, key in returned)
    return stored


def list_scans(conn: Connection, shipment_id: str) -> list[bytes]:
    """Every stored scan as received, oldest first (by scan time, then arrival)."""
    rows = sql.SCANS_OF.run(conn, {"shipment_id": shipment_id}).all()
    return [bytes(row.event) for row in rows]
