"""The shipment aggregate: one warehouse pick packed into packages, booked with a carrier and
tracked to the door; or a return parcel (kind RETURN): the units of one authorized return
packed for the trip from the customer back to a warehouse, on a return label.

Its transitions are methods that check the current status, change the shipment and record the
domain events they raise (`pull_events`). Label booking: CREATED → MANIFESTED, or LABEL_FAILED
(retryable back to CREATED). Tracking: scans move the journey through `tracking.apply_scan`.
Cancellation: CREATED, MANIFESTED or LABEL_FAILED → CANCELLED (model.CANCELLABLE); a booked
label is then voided (label_void PENDING → VOIDED, or FAILED for an operator to retry).
Return parcels book and track the same way but raise their own events (domain/returns.py), and
are never cancelled with their order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from services.kit.errors import FailedPrecondition
from services.kit.values import Address, Dimensions, DimensionUnit, Money, Weight, WeightUnit
from services.shipment.domain.events import (
    ReturnParcelException,
    ReturnParcelManifested,
    ShipmentCancelled,
    ShipmentCreated,
    ShipmentDelivered,
    ShipmentDeliveryException,
    ShipmentLabelVoided,
    ShipmentLabelVoidFailed,
    ShipmentManifested,
    ShipmentRef,
    ShipmentReturnedToSender,
)
from services.shipment.domain.model import (
    CANCELLABLE,
    IncidentReason,
    LabelVoid,
    ServiceLevel,
    ShipmentKind,
    ShipmentStatus,
    TrackingStatus,
)
from services.shipment.domain.packing import Box, PickedUnits
from services.shipment.domain.returns import return_milestone
from services.shipment.domain.states import SHIPMENT
from services.shipment.domain.tracking import (
    Kind,
    Progress,
    ProofOfDelivery,
    Rule,
    ScanReport,
    Timeline,
    apply_scan,
    default_rules,
    delivery_proof,
    ref_milestone,
)

FAILURE_REASON_MAX = 500
# The failure code of a label the carrier may have booked before failing: asking again is
# unsafe, so it fails at once, and its exception event says so machine-readably.
LABEL_OUTCOME_UNKNOWN = "LABEL_OUTCOME_UNKNOWN"


class ShipmentNotCancellable(FailedPrecondition):
    """The carrier has the parcels (or delivered them): only a return can bring them back."""

    default_reason = "SHIPMENT_NOT_CANCELLABLE"


@dataclass(frozen=True)
class OrderRef:
    """What OrderPlaced said about delivery: whose order, where it goes and how fast."""

    order_id: str
    partner_id: str
    service_level: int
    ship_to: Address


@dataclass(frozen=True)
class PendingPick:
    """Units waiting to be packed: a completed warehouse pick or, with `return_id`, the units a
    customer sends back against an authorized return (then `pick_id` is the return id, the
    queue's key, and `location_id` the warehouse the goods go back to)."""

    pick_id: str
    order_id: str
    location_id: str
    lines: tuple[PickedUnits, ...]
    correlation_id: str
    attempts: int = 0
    return_id: str = ""


@dataclass(frozen=True)
class Package:
    """One box of the shipment; its items are the picked units it holds."""

    package_id: str
    weight: Weight
    dimensions: Dimensions
    items: tuple[PickedUnits, ...]
    tracking_number: str = ""

    @classmethod
    def of_box(cls, package_id: str, box: Box) -> Package:
        # repr() keeps the packer's float exactly (0.1 stays 0.1 and converts back to 0.1).
        return cls(
            package_id=package_id,
            weight=Weight(Decimal(repr(box.weight_kg)), WeightUnit.KILOGRAM),
            dimensions=Dimensions(
                Decimal(repr(box.length_cm)),
                Decimal(repr(box.width_cm)),
                Decimal(repr(box.height_cm)),
                DimensionUnit.CENTIMETER,
            ),
            items=box.items,
        )


@dataclass(frozen=True)
class Rate:
    """The carrier quote chosen for booking (kept so every retry books the same one)."""

    rate_id: str
    carrier: str
    service_level: ServiceLevel
    total_charge: Money | None = None
    carrier_account_id: str = ""
    service_code: str = ""
    service_name: str = ""
    estimated_transit_days: int = 0
    estimated_delivery_time: datetime | None = None
    expire_time: datetime | None = None


@dataclass(frozen=True)
class Label:
    """What a booked label tells the shipment."""

    label_id: str
    carrier: str
    tracking_number: str
    package_tracking_numbers: tuple[str, ...] = ()
    quoted_charge: Money | None = None
    # The quote it was booked at, when carrier-adapter chose it (shop and book).
    rate: Rate | None = None


@dataclass
class Shipment:
    """A shipment and what shipment keeps about it beyond the contract (progress, attempts)."""

    shipment_id: str
    order_id: str
    partner_id: str
    pick_id: str
    location_id: str
    status: ShipmentStatus
    progress: Progress
    correlation_id: str
    ship_from: Address | None = None
    ship_to: Address | None = None
    packages: list[Package] = field(default_factory=list)
    service_level: ServiceLevel = ServiceLevel.UNSPECIFIED
    rate: Rate | None = None
    carrier: str = ""
    tracking_number: str = ""
    label_id: str = ""
    proof_of_delivery: ProofOfDelivery | None = None
    last_tracking_status: TrackingStatus = TrackingStatus.UNSPECIFIED
    failure_reason: str = ""
    create_time: datetime | None = None
    update_time: datetime | None = None
    label_attempts: int = 0
    final_charge: Money | None = None
    cancel_reason: str = ""
    label_void: LabelVoid = LabelVoid.UNSPECIFIED
    kind: ShipmentKind = ShipmentKind.OUTBOUND
    return_id: str = ""  # the return a return parcel carries goods back for
    version: int = 1
    events: list[object] = field(default_factory=list, repr=False, compare=False)

    # -- creation ----------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        shipment_id: str,
        pick: PendingPick,
        order: OrderRef,
        packages: list[Package],
        ship_from: Address,
        now: datetime,
    ) -> Shipment:
        """A pick packed into a new shipment (CREATED); raises ShipmentCreated."""
        shipment = cls(
            shipment_id=shipment_id,
            order_id=pick.order_id,
            partner_id=order.partner_id,
            pick_id=pick.pick_id,
            location_id=pick.location_id,
            status=ShipmentStatus.CREATED,
            progress=Progress(ShipmentStatus.CREATED, ShipmentStatus.CREATED),
            correlation_id=pick.correlation_id,
            ship_from=ship_from,
            ship_to=order.ship_to,
            packages=packages,
            service_level=ServiceLevel(order.service_level),
            create_time=now,
            update_time=now,
        )
        shipment.events.append(ShipmentCreated(shipment.snapshot(), now))
        return shipment

    @classmethod
    def create_return(
        cls,
        shipment_id: str,
        parcel: PendingPick,
        order: OrderRef,
        packages: list[Package],
        warehouse: Address,
        service_level: ServiceLevel,
        now: datetime,
    ) -> Shipment:
        """A return parcel (CREATED): the returned units packed for the trip from the customer
        (the order's delivery address) back to `warehouse`. No event yet: its label is the news
        (ReturnParcelManifested)."""
        return cls(
            shipment_id=shipment_id,
            order_id=parcel.order_id,
            partner_id=order.partner_id,
            pick_id="",
            location_id=parcel.location_id,
            status=ShipmentStatus.CREATED,
            progress=Progress(ShipmentStatus.CREATED, ShipmentStatus.CREATED),
            correlation_id=parcel.correlation_id,
            ship_from=order.ship_to,
            ship_to=warehouse,
            packages=packages,
            service_level=service_level,
            create_time=now,
            update_time=now,
            kind=ShipmentKind.RETURN,
            return_id=parcel.return_id,
        )

    @classmethod
    def cancelled_pick(
        cls, shipment_id: str, pick: PendingPick, partner_id: str, reason: str, now: datetime
    ) -> Shipment:
        """A pick of an order cancelled before it was packed: a CANCELLED shipment at once.

        It is never packed or booked, so it has no packages; its ShipmentCancelled event carries
        the picked units that go back to stock. Raises ShipmentCancelled (no ShipmentCreated).
        """
        shipment = cls(
            shipment_id=shipment_id,
            order_id=pick.order_id,
            partner_id=partner_id,
            pick_id=pick.pick_id,
            location_id=pick.location_id,
            status=ShipmentStatus.CANCELLED,
            progress=Progress(ShipmentStatus.CANCELLED, ShipmentStatus.CREATED),
            correlation_id=pick.correlation_id,
            cancel_reason=reason[:FAILURE_REASON_MAX],
            create_time=now,
            update_time=now,
        )
        shipment.events.append(ShipmentCancelled(shipment.snapshot(), pick.lines, reason, now))
        return shipment

    # -- cancellation --------------------------------------------------------------------------

    def cancel(self, reason: str, now: datetime) -> bool:
        """CANCELLED before the carrier has the parcels; a booked label is to be voided.

        False when it already was cancelled; ShipmentNotCancellable once picked up or later.
        """
        self.ensure_cancellable()
        if self.status == ShipmentStatus.CANCELLED:
            return False
        self._move(ShipmentStatus.CANCELLED)
        self.cancel_reason = reason[:FAILURE_REASON_MAX]
        self.progress = replace(self.progress, status=ShipmentStatus.CANCELLED)
        if self.label_id:
            self.label_void = LabelVoid.PENDING
            self.label_attempts = 0  # the attempts now count voids
        self.touch(now)
        self.events.append(ShipmentCancelled(self.snapshot(), self.items(), reason, now))
        return True

    def ensure_cancellable(self) -> None:
        """Raise ShipmentNotCancellable once the carrier has the parcels, and for a return parcel
        (its ShipmentCancelled would put goods still at the customer's back into stock)."""
        if self.is_return:
            raise ShipmentNotCancellable(
                f"shipment {self.shipment_id} is the return parcel of {self.return_id}",
                metadata={"shipment_id": self.shipment_id, "return_id": self.return_id},
            )
        if self.status in CANCELLABLE or self.status == ShipmentStatus.CANCELLED:
            return
        state = f"SHIPMENT_STATUS_{self.status.name}"
        raise ShipmentNotCancellable(
            f"shipment {self.shipment_id} is {state}: the carrier has the parcels; "
            "create a return instead",
            metadata={"shipment_id": self.shipment_id, "status": state},
        )

    def label_voided(self, now: datetime) -> bool:
        """The carrier voided the label; False unless a void was pending or had failed."""
        if self.label_void not in (LabelVoid.PENDING, LabelVoid.FAILED):
            return False
        self.label_void = LabelVoid.VOIDED
        self.failure_reason = ""
        self.touch(now)
        self.events.append(ShipmentLabelVoided(self.ref(), self.label_id, now))
        return True

    def void_attempt_failed(self, attempts: int, reason: str) -> bool:
        """A void failed and will be tried again; False unless one is pending."""
        if self.label_void is not LabelVoid.PENDING:
            return False
        self.failure_reason = reason[:FAILURE_REASON_MAX]
        self.label_attempts = attempts
        return True

    def fail_void(self, reason: str, now: datetime) -> bool:
        """Voiding failed for good: the carrier may charge for the label, an operator must act."""
        if self.label_void is not LabelVoid.PENDING:
            return False
        self.label_void = LabelVoid.FAILED
        self.failure_reason = reason[:FAILURE_REASON_MAX]
        self.touch(now)
        self.events.append(ShipmentLabelVoidFailed(self.ref(), self.label_id, reason, now))
        return True

    def retry_void(self, now: datetime) -> bool:
        """FAILED → PENDING with a fresh attempt budget; True when reset, False when the void is
        already pending or done. A shipment with no label to void is FAILED_PRECONDITION."""
        if self.label_void is LabelVoid.FAILED:
            self.label_void = LabelVoid.PENDING
            self.label_attempts = 0
            self.touch(now)
            return True
        if self.label_void is LabelVoid.UNSPECIFIED:
            raise FailedPrecondition(
                f"shipment {self.shipment_id} has no label to void",
                metadata={"shipment_id": self.shipment_id},
            )
        return False

    # -- label booking -----------------------------------------------------------------------

    def choose_rate(self, rate: Rate, now: datetime) -> None:
        """Fix the chosen quote before booking, so every retry books the same one."""
        self.rate = rate
        self.touch(now)

    def clear_rate(self, now: datetime) -> None:
        """The quote can no longer be booked (expired): shop again on the next attempt."""
        self.rate = None
        self.touch(now)

    def manifest(self, label: Label, now: datetime) -> bool:
        """The label is booked: MANIFESTED with its tracking numbers; False if it already was.

        A booking that was in flight when the shipment was cancelled still ends here: the label
        is recorded and its void becomes pending, so no label is left booked unnoticed.
        """
        if self.status == ShipmentStatus.CANCELLED and not self.label_id:
            self._record_label(label)
            self.label_void = LabelVoid.PENDING
            self.label_attempts = 0
            self.touch(now)
            return True
        if self.status != ShipmentStatus.CREATED:
            return False
        self._move(ShipmentStatus.MANIFESTED)
        self._record_label(label)
        self.failure_reason = ""
        self.touch(now)
        self.progress = Progress(
            ShipmentStatus.MANIFESTED, ShipmentStatus.MANIFESTED, reached_at=now
        )
        quoted = label.quoted_charge
        if quoted is None and self.rate is not None:
            quoted = self.rate.total_charge
        level = self.rate.service_level if self.rate is not None else ServiceLevel.UNSPECIFIED
        announce = ReturnParcelManifested if self.is_return else ShipmentManifested
        self.events.append(announce(self.snapshot(), quoted, level, now))
        return True

    def label_attempt_failed(self, attempts: int, reason: str) -> bool:
        """A booking attempt failed and will be made again; False unless still CREATED."""
        if self.status != ShipmentStatus.CREATED:
            return False
        self.failure_reason = reason[:FAILURE_REASON_MAX]
        self.label_attempts = attempts
        return True

    def fail_label(self, reason: str, now: datetime, failure_code: str = "") -> bool:
        """Booking failed for good: LABEL_FAILED, raised as a delivery exception so the order
        shows it (a label failure is visible and retryable), carrying `failure_code` (e.g.
        LABEL_OUTCOME_UNKNOWN; "" for any other failure). False unless CREATED."""
        if self.status != ShipmentStatus.CREATED:
            return False
        self._move(ShipmentStatus.LABEL_FAILED)
        self.failure_reason = reason[:FAILURE_REASON_MAX]
        self.touch(now)
        self.progress = replace(self.progress, status=ShipmentStatus.LABEL_FAILED)
        announce = ReturnParcelException if self.is_return else ShipmentDeliveryException
        self.events.append(
            announce(
                self.ref(),
                IncidentReason.OTHER,
                f"label booking failed: {reason}"[:FAILURE_REASON_MAX],
                now,
                failure_code=failure_code,
            )
        )
        return True

    def retry_label(self, now: datetime) -> bool:
        """LABEL_FAILED → CREATED with a fresh attempt budget (no event: the booking's outcome
        is the news); True when it was reset. A shipment booking or booked stays as it is."""
        if self.status == ShipmentStatus.LABEL_FAILED:
            self._move(ShipmentStatus.CREATED)
            self.rate = None  # shop again: the old quote may have expired
            self.progress = replace(self.progress, status=ShipmentStatus.CREATED)
            self.label_attempts = 0
            self.touch(now)
            return True
        if self.status != ShipmentStatus.CREATED and not self.label_id:
            raise FailedPrecondition(
                f"shipment {self.shipment_id} is SHIPMENT_STATUS_{self.status.name}; "
                "only a failed label booking can be retried"
            )
        return False

    # -- tracking ----------------------------------------------------------------------------

    def record_scan(
        self,
        scan: ScanReport,
        final_charge: Money | None,
        rules: Mapping[TrackingStatus, Rule] | None = None,
    ) -> None:
        """Move the journey by one new (already de-duplicated) scan; raise its milestone (a
        return parcel's own, or none where its rule names no return_event).

        A scan whose milestone does not need the whole shipment (tracking.needs_whole_shipment)
        changes only status, progress, last_tracking_status and, delivering it, its proof of
        delivery: tracking.Timeline records those alone (`take_timeline`), keep the two in step.
        """
        rules = default_rules() if rules is None else rules
        outcome = apply_scan(self.progress, scan, rules)
        self._move(outcome.progress.status)  # first: a refused move changes nothing
        self.progress = outcome.progress
        self.last_tracking_status = outcome.progress.latest_tracking_status
        if not outcome.event:
            return
        rule = rules[scan.status]
        delivered = rule.kind is Kind.PROGRESS and rule.shipment_status is ShipmentStatus.DELIVERED
        if delivered and self.status == ShipmentStatus.DELIVERED:
            self.proof_of_delivery = delivery_proof(scan)
        if self.is_return:
            if rule.return_event:
                self.events.append(return_milestone(self, rule, scan, final_charge))
            return
        self.events.append(self._milestone(rule, scan, final_charge))

    def record_final_charge(self, charge: Money) -> None:
        self.final_charge = charge

    def _milestone(self, rule: Rule, scan: ScanReport, final_charge: Money | None) -> object:
        """The event a publishing rule raises for `scan`: a delivery carries the shipment as it
        stands, goods returned to sender their units; the others name only the shipment."""
        at = scan.occur_time
        target = rule.shipment_status
        if target is ShipmentStatus.DELIVERED:
            return ShipmentDelivered(self.snapshot(), final_charge, at)
        if target is ShipmentStatus.RETURNED_TO_SENDER:
            return ShipmentReturnedToSender(
                self.ref(), scan.incident_reason, at, self.location_id, self.items()
            )
        return ref_milestone(self.ref(), False, rule, scan)

    def take_timeline(self, timeline: Timeline) -> None:
        """What a Timeline that took this shipment's scans (and updates) left it: status,
        progress, last tracking status, proof of delivery and final charge, as record_scan and
        record_final_charge would have (the timeline raised their milestones)."""
        self.status = timeline.status
        self.progress = timeline.progress
        self.last_tracking_status = timeline.last_tracking_status
        if timeline.proof_of_delivery is not None:
            self.proof_of_delivery = timeline.proof_of_delivery
        if timeline.final_charge is not None:
            self.final_charge = timeline.final_charge

    def _record_label(self, label: Label) -> None:
        if label.rate is not None:
            self.rate = label.rate  # chosen by the booking itself: kept as choose_rate keeps one
        self.carrier = label.carrier
        self.tracking_number = label.tracking_number
        self.label_id = label.label_id
        numbers = label.package_tracking_numbers
        self.packages = [
            replace(package, tracking_number=number)
            for package, number in zip(self.packages, numbers, strict=False)
        ] + self.packages[len(numbers) :]

    # -- helpers -----------------------------------------------------------------------------

    @property
    def is_return(self) -> bool:
        """Whether this is a return parcel (customer → warehouse) rather than goods leaving."""
        return self.kind is ShipmentKind.RETURN

    def touch(self, now: datetime) -> None:
        self.update_time = now

    def _move(self, target: ShipmentStatus) -> None:
        """Change status as the status table (states.py) allows; IllegalTransition otherwise."""
        if target != self.status:
            SHIPMENT.transition(self.status, target)
            self.status = target

    def items(self) -> tuple[PickedUnits, ...]:
        """Every unit in the shipment's packages."""
        return tuple(item for package in self.packages for item in package.items)

    def ref(self) -> ShipmentRef:
        return ShipmentRef(
            self.shipment_id,
            self.order_id,
            self.partner_id,
            self.carrier,
            self.tracking_number,
            self.return_id,
        )

    def snapshot(self) -> Shipment:
        """A copy as it stands now, for an event (its parts are immutable but the package list)."""
        return replace(self, packages=list(self.packages), events=[])

    def pull_events(self) -> list[object]:
        """The events raised since the last pull, oldest first."""
        events, self.events = self.events, []
        return events
