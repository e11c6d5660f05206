"""Carrier scans into shipment's timeline: stored, de-duplicated, turned into milestones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from services.kit.uow import UnitOfWork
from services.kit.values import Money
from services.shipment.adapters.store import scans
from services.shipment.adapters.store import shipments as store
from services.shipment.app.errors import TrackingNumberUnknown
from services.shipment.domain.model import TrackingStatus
from services.shipment.domain.shipment import ScanReport
from services.shipment.domain.tracking import Rule


@dataclass(frozen=True)
class TrackingUpdate:
    """A carrier's news for one tracking number: scans in scan-time order, maybe a final charge."""

    carrier: str
    tracking_number: str
    scans: Sequence[ScanReport]
    final_charge: Money | None = None


def apply_tracking(
    uow: UnitOfWork,
    update: TrackingUpdate,
    now: datetime,
    rules: Mapping[TrackingStatus, Rule] | None = None,
) -> int:
    """Store the new scans, move the milestone, publish what the rules say; returns how many
    scans were new. Duplicates (same dedupe key) are dropped here whatever the carrier resent."""
    tracked = scans.tracked_shipment(uow.conn, update.carrier, update.tracking_number)
    if tracked is None:
        raise TrackingNumberUnknown(f"{update.carrier} {update.tracking_number}")
    shipment_id, shipment = tracked
    if shipment is None:
        raise LookupError(f"shipment {shipment_id} vanished")
    fresh = 0
    for scan in update.scans:
        if not scans.add_scan(uow.conn, shipment_id, scan):
            continue
        fresh += 1
        shipment.record_scan(scan, update.final_charge, rules)
    if update.final_charge is not None:
        shipment.record_final_charge(update.final_charge)
    elif fresh == 0:
        return 0
    shipment.touch(now)
    store.save_shipment(uow.conn, shipment, now=now.timestamp())
    uow.publish_all(shipment.pull_events(), correlation_id=shipment.correlation_id)
    return fresh
