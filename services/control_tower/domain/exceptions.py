"""The exceptions workbench: what needs an operator, as the owners' events report it.

An exception is one (kind, subject) — a shipment whose label failed, a carrier code with no
mapping — that some owner's event opened and that either a later owner event (its fix) or an
operator closes. The projection records signals, not transitions: an opening signal keeps the
earliest open time, the latest sighting and a count; a closing signal keeps the earliest close.
An exception is open while it has an opening signal and no close, so the same events in any
order, late or twice, give the same rows, and one whose fix arrived first never shows as open.

Which owner events raise and fix each kind (the owners publish nothing else about them):
- label_failed (subject: a shipment): opened by `shipment.delivery_exception` or
  `shipment.return_parcel_exception` with no tracking status (label booking failed past its
  retries); fixed by the shipment's `manifested`, `return_parcel_manifested` or `cancelled`;
- label_void_failed (a shipment): opened by `shipment.label_void_failed`; fixed by the
  shipment's `label_voided`;
- carrier_code_unmapped (`<carrier>:<code>`): opened by `carrier.code_unmapped` of a status
  code; fixed by `carrier.code_mapped` of that carrier and code;
- label_outcome_unknown (a shipment): opened instead of label_failed by those same failure
  events when they carry failure_code LABEL_OUTCOME_UNKNOWN (the carrier may have booked the
  label before failing); fixed like label_failed. Never retried from here: a retry would book
  twice or be refused, so an operator reconciles with the carrier, then resolves;
- order_exception (`<order id>:<episode>`): opened by `order.exception_raised` (again, with a
  new reason, while the order stays in EXCEPTION); fixed by `order.exception_cleared` of that
  episode. The fixing event names its exception exactly, so a fix that arrives first is stored
  as a closed row that its opening then finds (`KindSpec.records_early_fix`);
- dead_letter (`<durable>:<DLQ sequence>`): not an event but a letter in the DLQ stream, seen
  by polling it; closed when the letter is gone (redriven or discarded);
- reconciliation_finding (`<check>:<subject>:<finding id>`): not an event but an open finding
  of a reconciliation check (services.control_tower.domain.reconciliation), opened and closed
  with its finding; owned by the service whose RPC corrects the check's drifts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from services.kit.errors import FailedPrecondition, PreconditionViolation


class ExceptionKind(enum.Enum):
    """What went wrong; the value is the proto enum's number."""

    LABEL_FAILED = 1
    LABEL_VOID_FAILED = 2
    CARRIER_CODE_UNMAPPED = 3
    DEAD_LETTER = 4
    ORDER_EXCEPTION = 5
    LABEL_OUTCOME_UNKNOWN = 6
    RECONCILIATION_FINDING = 7

    @property
    def label(self) -> str:
        return self.name.lower()


class Action(enum.Enum):
    """What an operator did; the value is the proto enum's number."""

    RETRY = 1
    RESOLVE = 2
    MAP_CODE = 3
    REDRIVE = 4


@dataclass(frozen=True)
class KindSpec:
    """Who owns a kind's subject and its fix, and what an operator may do about it."""

    # "" when each exception names its own (a dead letter's consuming service).
    owner: str
    subject_kind: str
    # The owner's RPC a retry calls; "" when the kind cannot be retried.
    retry_call: str
    can_map_code: bool
    default_sla: float
    can_redrive: bool = False
    # Why a retry is refused and what to do instead, when the kind has no retry call.
    no_retry: str = "it cannot be retried (map the code, or resolve it)"
    # True when a fixing event names its exception exactly (not only its aggregate): a fix
    # that arrives before the opening is stored as a closed row, and the opening finds it.
    records_early_fix: bool = False


KINDS: dict[ExceptionKind, KindSpec] = {
    ExceptionKind.LABEL_FAILED: KindSpec("shipment", "shipment", "shipment.RetryLabel", False, 900),
    ExceptionKind.LABEL_VOID_FAILED: KindSpec(
        "shipment", "shipment", "shipment.RetryLabelVoid", False, 3600
    ),
    ExceptionKind.CARRIER_CODE_UNMAPPED: KindSpec(
        "carrier-adapter", "carrier_code", "", True, 3600
    ),
    ExceptionKind.DEAD_LETTER: KindSpec("", "dead_letter", "", False, 900, can_redrive=True),
    ExceptionKind.ORDER_EXCEPTION: KindSpec(
        "order", "order", "order.RetryOrderStep", False, 900, records_early_fix=True
    ),
    ExceptionKind.LABEL_OUTCOME_UNKNOWN: KindSpec(
        "shipment",
        "shipment",
        "",
        False,
        3600,
        no_retry="the label's booking outcome is unknown at the carrier (a retry would book a "
        "second label or be refused): reconcile with the carrier, then resolve it",
    ),
    ExceptionKind.RECONCILIATION_FINDING: KindSpec(
        "",
        "finding",
        "",
        False,
        3600,
        no_retry="a reconciliation finding closes when a later run of its check no longer finds "
        "the drift (`crossdock reconcile run --check NAME`); resolve it with a note once handled",
    ),
}

# Each reconciliation check's owner (the service whose RPC corrects its drifts), declared by
# the check registry (services.control_tower.app.reconciliation.checks).
CHECK_OWNERS: dict[str, str] = {}

# The mesh's services, longest first: a durable consumer is named `<service>-<purpose>`.
SERVICES = tuple(
    sorted(
        (
            "order",
            "inventory",
            "shipment",
            "billing",
            "carrier-adapter",
            "control-tower",
            "gateway",
            "schema-registry",
        ),
        key=len,
        reverse=True,
    )
)


def service_of_durable(durable: str) -> str:
    """The service a durable consumer belongs to ("inventory-order-events" → "inventory");
    "" for a name no service's."""
    return next((name for name in SERVICES if durable.startswith(name + "-")), "")


def dead_letter_subject(durable: str, sequence: int) -> str:
    return f"{durable}:{sequence}"


def dead_letter_of(subject_id: str) -> tuple[str, int]:
    """(durable, DLQ sequence) of a dead letter's subject id."""
    durable, _, sequence = subject_id.rpartition(":")
    return durable, int(sequence)


def order_exception_subject(order_id: str, episode: int) -> str:
    """An order exception's subject id: the order and the episode, one per stretch in EXCEPTION."""
    return f"{order_id}:{episode}"


def order_of_exception(subject_id: str) -> str:
    """The order of an order exception's subject id."""
    return subject_id.rpartition(":")[0]


@dataclass(frozen=True, slots=True)
class Signal:
    """One owner event's word on an exception: it is happening (`opens`) or it is fixed."""

    kind: ExceptionKind
    subject_id: str
    opens: bool
    seen_at: float
    event_id: str
    event_subject: str
    order_id: str = ""
    detail: str = ""
    # A tracking number that names the order when the event does not (resolved by the links).
    order_reference: str = ""


@dataclass(frozen=True)
class ExceptionView:
    """An exception as stored."""

    exception_id: int
    kind: ExceptionKind
    subject_id: str
    order_id: str
    opened_at: float | None
    last_seen_at: float | None
    occurrences: int
    detail: str
    event_id: str
    closed_at: float | None
    closed_by: str

    @property
    def spec(self) -> KindSpec:
        return KINDS[self.kind]

    @property
    def owner(self) -> str:
        """The service that owns the subject and its fix."""
        if self.kind is ExceptionKind.DEAD_LETTER:
            return service_of_durable(dead_letter_of(self.subject_id)[0])
        if self.kind is ExceptionKind.RECONCILIATION_FINDING:
            return CHECK_OWNERS.get(self.subject_id.partition(":")[0], "")
        return self.spec.owner

    @property
    def retry_subject(self) -> str:
        """What the owner's retry call names: an order exception's order, else the subject."""
        if self.kind is ExceptionKind.ORDER_EXCEPTION:
            return order_of_exception(self.subject_id)
        return self.subject_id

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None and self.closed_at is None

    def age(self, now: float) -> float:
        """How long it has been open (until it closed)."""
        if self.opened_at is None:
            return 0.0
        end = self.closed_at if self.closed_at is not None else now
        return max(0.0, end - self.opened_at)


@dataclass(frozen=True)
class AuditEntry:
    """One operator action: who, when, why, which owner call, and the owner's answer."""

    exception_id: int
    action: Action
    operator: str
    acted_at: float
    reason: str
    owner_call: str
    succeeded: bool
    result: str
    order_id: str = ""
    # The audit row's id (0 until stored).
    audit_id: int = 0


def closed_by_event(subject: str, event_id: str) -> str:
    return f"event {subject} {event_id}"


def closed_by_operator(operator: str) -> str:
    return f"operator {operator}"


def _refuse(found: ExceptionView, violation_type: str, message: str) -> FailedPrecondition:
    """FAILED_PRECONDITION naming the `exception_id` field and the exception's state."""
    return FailedPrecondition(
        message,
        violations=[PreconditionViolation(violation_type, "exception_id", message)],
        reason=violation_type,
        metadata={"field": "exception_id", "exception_id": str(found.exception_id)},
    )


def require_open(found: ExceptionView) -> None:
    """An action on a closed exception is FAILED_PRECONDITION naming `exception_id`."""
    if not found.is_open:
        raise _refuse(
            found,
            "EXCEPTION_CLOSED",
            f"exception_id: exception {found.exception_id} is closed ({found.closed_by}); "
            "only an open exception can be acted on",
        )


def require_retryable(found: ExceptionView) -> str:
    """The owner call a retry makes; FAILED_PRECONDITION naming `exception_id` otherwise."""
    require_open(found)
    if not found.spec.retry_call:
        raise _refuse(
            found,
            "EXCEPTION_NOT_RETRYABLE",
            f"exception_id: exception {found.exception_id} is {found.kind.label}: "
            f"{found.spec.no_retry}",
        )
    return found.spec.retry_call


def require_code_mappable(found: ExceptionView) -> tuple[str, str]:
    """(carrier, code) of an open carrier-code exception; FAILED_PRECONDITION otherwise."""
    require_open(found)
    if not found.spec.can_map_code:
        raise _refuse(
            found,
            "EXCEPTION_NOT_CARRIER_CODE",
            f"exception_id: exception {found.exception_id} is {found.kind.label}, not "
            "carrier_code_unmapped: it has no carrier code to map",
        )
    carrier, _, code = found.subject_id.partition(":")
    return carrier, code


def require_redrivable(found: ExceptionView) -> tuple[str, int]:
    """(durable, sequence) of an open dead letter's exception; FAILED_PRECONDITION otherwise."""
    require_open(found)
    if not found.spec.can_redrive:
        raise _refuse(
            found,
            "EXCEPTION_NOT_DEAD_LETTER",
            f"exception_id: exception {found.exception_id} is {found.kind.label}, not "
            "dead_letter: it has no dead letter to redrive",
        )
    return dead_letter_of(found.subject_id)
