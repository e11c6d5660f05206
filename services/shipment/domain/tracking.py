"""Tracking milestones: how a scan moves a shipment, and which scans become events.

The rules are data (propagation.json): every scan is stored, progress scans move the journey
forwards only (a late in-transit scan after delivered is kept in the timeline and changes
nothing), exception scans open an exception that a later progress scan resolves, and only rules
that name an event are published. Terminal statuses never change. Return parcels move the same
way but publish `return_event` (their own subjects) where outbound shipments publish `event`.

Most scans need no more of the shipment than its status, progress and ref: `Timeline` takes
them (the store then writes only those, and a delivery's proof and final charge).
`Shipment.record_scan` takes the rest, goods returned to sender, whose milestone carries their
units; the two build the milestones that name only the ref with the same `ref_milestone`. A
delivery's milestone carries the whole shipment: the timeline raises a `Delivery` with what it
changed, and the store completes it from the stored shipment (app/tracking.py).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path

from services.kit.values import Money
from services.shipment.domain.events import (
    ReturnParcelException,
    ReturnParcelPickedUp,
    ShipmentDeliveryException,
    ShipmentOutForDelivery,
    ShipmentPickedUp,
    ShipmentRef,
)
from services.shipment.domain.model import (
    PROGRESS_RANK,
    TERMINAL,
    IncidentReason,
    ShipmentStatus,
    TrackingStatus,
)
from services.shipment.domain.states import SHIPMENT

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
class ScanReport:
    """One carrier scan as reported; `record` is the scan as received, kept in the timeline."""

    status: TrackingStatus
    occur_time: datetime
    record: bytes
    incident_reason: IncidentReason = IncidentReason.UNSPECIFIED
    description: str = ""
    signed_by: str = ""
    dedupe_key: str = ""
    carrier_status_code: str = ""
    carrier_incident_code: str = ""

    @property
    def key(self) -> str:
        """The carrier-adapter's dedupe key, or the scan's own identity when it has none."""
        if self.dedupe_key:
            return self.dedupe_key[:200]
        moment = self.occur_time.isoformat()
        return f"{self.carrier_status_code}|{self.carrier_incident_code}|{moment}"[:200]


@dataclass(frozen=True)
class ProofOfDelivery:
    deliver_time: datetime | None
    signed_by: str = ""
    location: str = ""


@dataclass(frozen=True)
class Outcome:
    progress: Progress
    event: str | None = None  # subject of the milestone event to publish for this scan


def apply_scan(
    progress: Progress, scan: Scan | ScanReport, rules: Mapping[TrackingStatus, Rule] | None = None
) -> Outcome:
    """The shipment after one new (already de-duplicated) scan, and the event it raises."""
    rules = default_rules() if rules is None else rules
    # Progress is built field by field (not dataclasses.replace): this runs for every scan, and
    # replace() costs several times more.
    after = progress
    if after.latest_scan_at is None or scan.occur_time >= after.latest_scan_at:
        after = Progress(
            after.status,
            after.reached,
            after.reached_at,
            after.exception_at,
            scan.occur_time,
            scan.status,
        )
    rule = rules.get(scan.status)
    if progress.status in TERMINAL or rule is None or rule.kind is Kind.RECORD:
        return Outcome(after)
    if rule.kind is Kind.EXCEPTION:
        if after.reached_at is not None and scan.occur_time < after.reached_at:
            return Outcome(after)  # older than the progress already made: history only
        return Outcome(
            Progress(
                ShipmentStatus.EXCEPTION,
                after.reached,
                after.reached_at,
                scan.occur_time,
                after.latest_scan_at,
                after.latest_tracking_status,
            ),
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
            Progress(
                ShipmentStatus.EXCEPTION if still_excepted else target,
                target,
                scan.occur_time,
                after.exception_at if still_excepted else None,
                after.latest_scan_at,
                after.latest_tracking_status,
            ),
            rule.event,
        )
    if after.exception_at is not None and scan.occur_time > after.exception_at:
        # The carrier moved on after the problem (e.g. out for delivery again): resolved.
        return Outcome(
            Progress(
                after.reached,
                after.reached,
                after.reached_at,
                None,
                after.latest_scan_at,
                after.latest_tracking_status,
            )
        )
    return Outcome(after)


def needs_whole_shipment(rule: Rule, is_return: bool) -> bool:
    """Whether the milestone `rule` raises carries what only the whole shipment knows: for an
    outbound shipment, goods returned to sender (their units and location)."""
    return rule.shipment_status is ShipmentStatus.RETURNED_TO_SENDER and not is_return


def delivery_proof(scan: ScanReport) -> ProofOfDelivery:
    """What a delivery scan tells of the hand-over (Shipment.record_scan records the same)."""
    return ProofOfDelivery(scan.occur_time, signed_by=scan.signed_by, location=scan.description)


@dataclass(frozen=True)
class Delivery:
    """A delivery a Timeline took, to be announced: its milestone (ShipmentDelivered, or a
    return parcel's ReturnParcelDelivered) carries the whole shipment as it stood at the scan,
    i.e. the shipment as stored with these set anew; the store builds it from the stored
    shipment without decoding it (app/tracking.py)."""

    ref: ShipmentRef
    is_return: bool
    status: ShipmentStatus
    last_tracking_status: TrackingStatus
    proof_of_delivery: ProofOfDelivery
    final_charge: Money | None
    occurred_at: datetime
    latest_scan_at: datetime | None = None  # the progress's, as the snapshot carries it


RefMilestone = (
    ShipmentPickedUp
    | ShipmentOutForDelivery
    | ShipmentDeliveryException
    | ReturnParcelPickedUp
    | ReturnParcelException
)


def ref_milestone(
    ref: ShipmentRef, is_return: bool, rule: Rule, scan: ScanReport
) -> RefMilestone | None:
    """The milestone a publishing rule raises for `scan`, where it names only the shipment (not
    `needs_whole_shipment`): exceptions, pickup and out for delivery; a return parcel raises its
    own (a parcel taken back to the customer is an exception), or none where its rule names no
    return_event."""
    at = scan.occur_time
    target = rule.shipment_status
    if is_return:
        if not rule.return_event:
            return None
        if rule.kind is Kind.EXCEPTION or target is ShipmentStatus.RETURNED_TO_SENDER:
            return ReturnParcelException(
                ref, scan.incident_reason, scan.description, at, status=scan.status
            )
        if target is ShipmentStatus.PICKED_UP:
            return ReturnParcelPickedUp(ref, at)
        raise ValueError(f"propagation rule names a return event shipment cannot build: {rule}")
    if rule.kind is Kind.EXCEPTION:
        return ShipmentDeliveryException(
            ref, scan.incident_reason, scan.description, at, status=scan.status
        )
    if target is ShipmentStatus.PICKED_UP:
        return ShipmentPickedUp(ref, at)
    if target is ShipmentStatus.OUT_FOR_DELIVERY:
        return ShipmentOutForDelivery(ref, at)
    raise ValueError(f"propagation rule names an event shipment cannot build: {rule.event}")


@dataclass
class Timeline:
    """A shipment as far as most scans are concerned: its status, progress and ref.

    Most scans are timeline entries (in transit, arrived at a hub) that change only the
    progress's latest scan (and so the shipment's last tracking status), or move its status and
    raise a milestone that names only the shipment (picked up, out for delivery, an exception),
    or deliver it (a `Delivery` raised, its proof of delivery and the update's final charge
    kept). They are recorded here, without decoding the whole shipment; Shipment.record_scan
    takes the others (`needs_whole_shipment`), and does exactly this for these.
    """

    status: ShipmentStatus
    progress: Progress
    # Who its milestones are about. Without a ref it takes only the scans that change nothing
    # but the progress (no status move, no milestone).
    ref: ShipmentRef | None = None
    is_return: bool = False
    # Set by the scans and updates taken (None: unchanged).
    proof_of_delivery: ProofOfDelivery | None = None
    final_charge: Money | None = None
    events: list[object] = field(default_factory=list, repr=False, compare=False)

    def record(
        self,
        scans: Iterable[Scan | ScanReport],
        rules: Mapping[TrackingStatus, Rule] | None = None,
        final_charge: Money | None = None,
    ) -> bool:
        """Take new (already de-duplicated) scans of one update (and its final charge) and
        return True, their milestones raised (`pull_events`); if any needs the whole shipment,
        change nothing and return False: the shipment takes them all. A status move the
        shipment's table refuses raises, as Shipment.record_scan would."""
        rules = default_rules() if rules is None else rules
        status, progress, events = self.status, self.progress, list[object]()
        delivered: ProofOfDelivery | None = None
        for scan in scans:
            outcome = apply_scan(progress, scan, rules)
            if self.ref is None:
                if outcome.event is not None or outcome.progress.status != status:
                    return False
            elif outcome.event is not None:
                rule = rules[scan.status]
                # A bare Scan has no incident or description for a milestone to carry.
                if not isinstance(scan, ScanReport) or needs_whole_shipment(rule, self.is_return):
                    return False
                if rule.shipment_status is ShipmentStatus.DELIVERED:
                    delivered = delivery_proof(scan)
                    if rule.return_event or not self.is_return:
                        events.append(
                            Delivery(
                                self.ref,
                                self.is_return,
                                outcome.progress.status,
                                outcome.progress.latest_tracking_status,
                                delivered,
                                final_charge,
                                scan.occur_time,
                                outcome.progress.latest_scan_at,
                            )
                        )
                else:
                    event = ref_milestone(self.ref, self.is_return, rule, scan)
                    if event is not None:
                        events.append(event)
            if outcome.progress.status != status:
                SHIPMENT.transition(status, outcome.progress.status)  # as Shipment._move
                status = outcome.progress.status
            progress = outcome.progress
        self.status, self.progress = status, progress
        if delivered is not None:
            self.proof_of_delivery = delivered
        if final_charge is not None:
            self.final_charge = final_charge
        self.events.extend(events)
        return True

    @property
    def last_tracking_status(self) -> TrackingStatus:
        """The shipment's last tracking status once it has recorded a scan."""
        return self.progress.latest_tracking_status

    def pull_events(self) -> list[object]:
        """The milestones raised since the last pull, oldest first."""
        events, self.events = self.events, []
        return events
