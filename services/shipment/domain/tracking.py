"""Tracking milestones: how a scan moves a shipment, and which scans become events.

The rules are data (propagation.json): every scan is stored, progress scans move the journey
forwards only (a late in-transit scan after delivered is kept in the timeline and changes
nothing), exception scans open an exception that a later progress scan resolves, and only rules
that name an event are published. Terminal statuses never change. Return parcels move the same
way but publish `return_event` (their own subjects) where outbound shipments publish `event`.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from pathlib import Path

from services.shipment.domain.model import (
    PROGRESS_RANK,
    TERMINAL,
    ShipmentStatus,
    TrackingStatus,
)

RULES_FILE = Path(__file__).with_name("propagation.json")


class Kind(enum.Enum):
    PROGRESS = "progress"
    EXCEPTION = "exception"
    RECORD = "record"


@dataclass(frozen=True)
class Rule:
    tracking_status: TrackingStatus
    kind: Kind
    shipment_status: ShipmentStatus | None = None
    # The event to publish (its subject; Shipment.record_scan raises the matching domain event);
    # None keeps the scan internal.
    event: str | None = None
    # What a return parcel publishes for the same milestone instead (a subject of its own, never
    # an outbound one); None keeps the scan internal for return parcels.
    return_event: str | None = None


class RulesError(ValueError):
    """propagation.json is inconsistent."""


def parse_rules(document: Mapping[str, object]) -> dict[TrackingStatus, Rule]:
    """Validate and index the rules; every tracking status must have exactly one."""
    raw_rules = document.get("rules")
    if not isinstance(raw_rules, list):
        raise RulesError("'rules' must be a list")
    rules: dict[TrackingStatus, Rule] = {}
    for raw in raw_rules:
        try:
            status = TrackingStatus[raw["tracking_status"]]
            kind = Kind(raw["kind"])
            target = raw.get("shipment_status")
            rule = Rule(
                status,
                kind,
                ShipmentStatus[target] if target else None,
                raw.get("event"),
                raw.get("return_event"),
            )
        except (KeyError, ValueError, TypeError) as error:
            raise RulesError(f"bad rule {raw!r}: {error}") from error
        if status in rules:
            raise RulesError(f"two rules for {status.name}")
        if (kind is Kind.PROGRESS) != (rule.shipment_status is not None):
            raise RulesError(f"{status.name}: progress rules (and only they) name a status")
        if rule.shipment_status is not None and rule.shipment_status not in PROGRESS_RANK:
            raise RulesError(f"{status.name}: {rule.shipment_status.name} is not a milestone")
        if kind is Kind.EXCEPTION and not rule.event:
            raise RulesError(f"{status.name}: an exception must be published")
        if rule.return_event and not rule.event:
            raise RulesError(f"{status.name}: a return parcel publishes only outbound milestones")
        rules[status] = rule
    outbound = {rule.event for rule in rules.values() if rule.event}
    for rule in rules.values():
        if rule.return_event in outbound:
            name = rule.tracking_status.name
            raise RulesError(f"{name}: a return parcel never publishes an outbound subject")
    missing = set(TrackingStatus) - {TrackingStatus.UNSPECIFIED} - set(rules)
    if missing:
        raise RulesError(f"no rule for {sorted(s.name for s in missing)}")
    return rules


@cache
def default_rules() -> dict[TrackingStatus, Rule]:
    return parse_rules(json.loads(RULES_FILE.read_text()))


@dataclass(frozen=True)
class Progress:
    """Where a shipment stands, as far as scans are concerned."""

    status: ShipmentStatus
    reached: ShipmentStatus  # the furthest progress milestone, never lowered
    reached_at: datetime | None = None  # scan time of that milestone
    exception_at: datetime | None = None  # scan time of the open exception, if any
    latest_scan_at: datetime | None = None
    latest_tracking_status: TrackingStatus = TrackingStatus.UNSPECIFIED


@dataclass(frozen=True)
class Scan:
    status: TrackingStatus
    occur_time: datetime


@dataclass(frozen=True)
class Outcome:
    progress: Progress
    event: str | None = None  # subject of the milestone event to publish for this scan


def apply_scan(
    progress: Progress, scan: Scan, rules: Mapping[TrackingStatus, Rule] | None = None
) -> Outcome:
    """The shipment after one new (already de-duplicated) scan, and the event it raises."""
    rules = default_rules() if rules is None else rules
    after = progress
    if after.latest_scan_at is None or scan.occur_time >= after.latest_scan_at:
        after = replace(after, latest_scan_at=scan.occur_time, latest_tracking_status=scan.status)
    rule = rules.get(scan.status)
    if progress.status in TERMINAL or rule is None or rule.kind is Kind.RECORD:
        return Outcome(after)
    if rule.kind is Kind.EXCEPTION:
        if after.reached_at is not None and scan.occur_time < after.reached_at:
            return Outcome(after)  # older than the progress already made: history only
        return Outcome(
            replace(after, status=ShipmentStatus.EXCEPTION, exception_at=scan.occur_time),
            rule.event,
        )
    assert rule.shipment_status is not None
    target = rule.shipment_status
    if PROGRESS_RANK[target] > PROGRESS_RANK[after.reached]:
        still_excepted = (
            after.exception_at is not None
            and scan.occur_time < after.exception_at
            and target not in TERMINAL
        )
        return Outcome(
            replace(
                after,
                status=ShipmentStatus.EXCEPTION if still_excepted else target,
                reached=target,
                reached_at=scan.occur_time,
                exception_at=after.exception_at if still_excepted else None,
            ),
            rule.event,
        )
    if after.exception_at is not None and scan.occur_time > after.exception_at:
        # The carrier moved on after the problem (e.g. out for delivery again): resolved.
        return Outcome(replace(after, status=after.reached, exception_at=None))
    return Outcome(after)


def moves_shipment(status: ShipmentStatus, outcome: Outcome) -> bool:
    """Whether a scan's outcome changes a shipment at `status` beyond its timeline (the latest
    scan): a new status, or a milestone to raise."""
    return outcome.event is not None or outcome.progress.status != status


@dataclass
class Timeline:
    """A shipment as far as scans that move nothing are concerned: its status and progress.

    Most scans are plain timeline entries (in transit, arrived at a hub) that change only the
    progress's latest scan (and so the shipment's last tracking status and update time). They
    are recorded here, without decoding the whole shipment; Shipment.record_scan takes the
    scans that move it, and does exactly this for the others.
    """

    status: ShipmentStatus
    progress: Progress

    def record(
        self, scans: Iterable[Scan], rules: Mapping[TrackingStatus, Rule] | None = None
    ) -> bool:
        """Take new (already de-duplicated) scans that move nothing and return True; if any
        would move the shipment, change nothing and return False: the shipment takes them all."""
        rules = default_rules() if rules is None else rules
        progress = self.progress
        for scan in scans:
            outcome = apply_scan(progress, scan, rules)
            if moves_shipment(self.status, outcome):
                return False
            progress = outcome.progress
        self.progress = progress
        return True

    @property
    def last_tracking_status(self) -> TrackingStatus:
        """The shipment's last tracking status once it has recorded a scan."""
        return self.progress.latest_tracking_status
