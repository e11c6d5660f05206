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
from services.shipment.domain.shipment import Shipment
from services.shipment.domain.tracking import Delivery, Rule, ScanReport, Timeline


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
    batch = TrackingBatch(uow, rules)
    fresh = batch.apply(update, now)
    batch.save()
    return fresh


class TrackingBatch:
    """Carrier updates applied in one unit of work (a consumer's fetched batch): each shipment
    is read once and written once, however many of the updates are its.

    Most scans (plain timeline entries, those that move the status or raise a milestone
    naming only the shipment: picked up, out for delivery, an exception, and deliveries) and
    final charges are recorded on the shipment's Timeline alone: its status, progress and final
    charge are written and its status, last tracking status, update time and proof of delivery
    patched into the stored document; a delivery's milestone carries the stored document so
    patched as the scan left it (`scans.delivered`). The whole shipment is decoded and written
    back only for goods returned to sender (their milestone carries the units).
    Events are published as each update is applied, so they keep the updates' order; `save`
    writes every changed shipment.
    """

    def __init__(self, uow: UnitOfWork, rules: Mapping[TrackingStatus, Rule] | None = None):
        self._uow = uow
        self._rules = rules
        self._held: dict[str, _Held] = {}  # by shipment id
        self._shipment_of: dict[tuple[str, str], str] = {}  # (carrier, number) -> shipment id

    def apply(self, update: TrackingUpdate, now: datetime) -> int:
        """Apply one update; returns how many of its scans were new."""
        return self.apply_all([(update, now)])[0]

    def apply_all(self, updates: Sequence[tuple[TrackingUpdate, datetime]]) -> list[int]:
        """Apply updates (each with its time) in order, as `apply` one by one would; returns
        how many scans of each were new.

        Why all at once: the numbers not held yet are read in one query and every scan is
        stored in one INSERT, instead of a round trip per number and per scan. A number with
        no shipment raises before anything is stored (the unit of work is rolled back anyway).
        """
        held = self._hold_all([(update.carrier, update.tracking_number) for update, _ in updates])
        stored = scans.add_scans(
            self._uow.conn,
            [
                (h.shipment_id, scan)
                for h, (update, _) in zip(held, updates, strict=True)
                for scan in update.scans
            ],
        )
        fresh_counts = []
        for h, (update, now) in zip(held, updates, strict=True):
            fresh = []
            for scan in update.scans:
                key = (h.shipment_id, scan.key)
                if key in stored:
                    stored.discard(key)  # stored once: new for its first update only
                    fresh.append(scan)
            fresh_counts.append(self._take(h, update, fresh, now))
        return fresh_counts

    def _take(
        self, held: _Held, update: TrackingUpdate, fresh: list[ScanReport], now: datetime
    ) -> int:
        """Move the held shipment by an update's new scans (and final charge)."""
        if not fresh and update.final_charge is None:
            return 0
        if held.shipment is None and held.timeline.record(fresh, self._rules, update.final_charge):
            events = [
                # Read before this update's touch: the shipment as the scan found it.
                scans.delivered(held.tracked, event, held.touched_at)
                if isinstance(event, Delivery)
                else event
                for event in held.timeline.pull_events()
            ]
            self._uow.publish_all(events, correlation_id=held.tracked.correlation_id)
        else:
            shipment = held.whole()
            for scan in fresh:
                shipment.record_scan(scan, update.final_charge, self._rules)
            if update.final_charge is not None:
                shipment.record_final_charge(update.final_charge)
            shipment.touch(now)
            self._uow.publish_all(shipment.pull_events(), correlation_id=shipment.correlation_id)
        held.touched_at = now
        return len(fresh)

    def save(self) -> None:
        """Write back every shipment an update changed (under its optimistic version check);
        updates applied after this read their shipments again. The shipments only scans on
        their timeline changed are written in one executemany."""
        timelines: list[tuple[scans.TrackedShipment, Timeline, datetime]] = []
        for held in self._held.values():
            if held.touched_at is None:
                continue
            if held.shipment is not None:
                store.save_shipment(self._uow.conn, held.shipment, now=held.touched_at.timestamp())
            else:
                timelines.append((held.tracked, held.timeline, held.touched_at))
        scans.save_timelines(self._uow.conn, timelines)
        self._held.clear()
        self._shipment_of.clear()

    def _hold_all(self, numbers: Sequence[tuple[str, str]]) -> list[_Held]:
        """The held shipment of each (carrier, number), reading those not held in one query."""
        unread = [key for key in numbers if key not in self._shipment_of]
        found = scans.tracked_shipments(self._uow.conn, unread) if unread else {}
        return [self._hold(carrier, number, found) for carrier, number in numbers]

    def _hold(
        self, carrier: str, number: str, found: Mapping[tuple[str, str], scans.Tracked]
    ) -> _Held:
        known = self._shipment_of.get((carrier, number))
        if known is not None:
            return self._held[known]
        tracked_shipment = found.get((carrier, number))
        if tracked_shipment is None:
            raise TrackingNumberUnknown(f"{carrier} {number}")
        shipment_id, tracked = tracked_shipment
        if tracked is None:
            raise LookupError(f"shipment {shipment_id} vanished")
        # Another number of a shipment already held (a package's): keep what was read first.
        held = self._held.get(shipment_id)
        if held is None:
            held = self._held[shipment_id] = _Held(tracked, tracked.timeline())
        self._shipment_of[(carrier, number)] = shipment_id
        return held


@dataclass
class _Held:
    """One shipment of a batch: as read, and as the batch's updates have changed it so far."""

    tracked: scans.TrackedShipment
    timeline: Timeline  # takes the updates until one needs the whole shipment
    shipment: Shipment | None = None  # decoded once a scan needed it
    touched_at: datetime | None = None  # the last update that changed it: to be written

    @property
    def shipment_id(self) -> str:
        return self.tracked.shipment_id

    def whole(self) -> Shipment:
        """The whole shipment, as the batch's earlier updates left it."""
        if self.shipment is None:
            shipment = self.tracked.shipment()
            if self.touched_at is not None:  # the timeline took the earlier updates
                shipment.take_timeline(self.timeline)
                shipment.touch(self.touched_at)
            self.shipment = shipment
        return self.shipment
