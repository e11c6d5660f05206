"""Proto ↔ domain for the exceptions workbench: which owner events open or fix an exception
(services.control_tower.domain.exceptions has the table), and exceptions → proto.

Only the few event types that open an exception are decoded; a fixing event needs nothing but
its subject and aggregate (a shipment id, or `<carrier>:<code>` for carrier.code_mapped), except
an order's exception_cleared, decoded for the episode it ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from crossdock.events.v1 import carrier_events_pb2, order_events_pb2, shipment_events_pb2
from crossdock.order.v1 import order_pb2
from crossdock.tower.v1 import tower_pb2
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp

from services.control_tower.domain.exceptions import (
    AuditEntry,
    ExceptionKind,
    ExceptionView,
    Signal,
    dead_letter_subject,
    order_exception_subject,
)
from services.control_tower.domain.timeline import RecordedEvent
from services.kit import events as ev
from services.kit.dlq import DLQ_TIME, DeadLetter
from services.kit.handlers import PermanentError
from services.kit.proto_values import timestamp

_SHIPMENT = "crossdock.shipment."
DELIVERY_EXCEPTION = _SHIPMENT + "delivery_exception.v1"
RETURN_PARCEL_EXCEPTION = _SHIPMENT + "return_parcel_exception.v1"
LABEL_VOID_FAILED = _SHIPMENT + "label_void_failed.v1"
CODE_UNMAPPED = "crossdock.carrier.code_unmapped.v1"
CODE_MAPPED = "crossdock.carrier.code_mapped.v1"
ORDER_EXCEPTION_RAISED = "crossdock.order.exception_raised.v1"
ORDER_EXCEPTION_CLEARED = "crossdock.order.exception_cleared.v1"
# A failed label booking's failure_code when the carrier may have booked it (shipment's word).
LABEL_OUTCOME_UNKNOWN = "LABEL_OUTCOME_UNKNOWN"

_LABEL_FIXES = frozenset(
    {
        _SHIPMENT + "manifested.v1",
        _SHIPMENT + "return_parcel_manifested.v1",
        _SHIPMENT + "cancelled.v1",
    }
)
# The owner events that fix each kind, keyed by the exception's subject (their aggregate). An
# order exception's fix is decoded instead (`_DECODED`): it names the episode it ends.
CLOSERS: dict[ExceptionKind, frozenset[str]] = {
    ExceptionKind.LABEL_FAILED: _LABEL_FIXES,
    ExceptionKind.LABEL_OUTCOME_UNKNOWN: _LABEL_FIXES,
    ExceptionKind.LABEL_VOID_FAILED: frozenset({_SHIPMENT + "label_voided.v1"}),
    ExceptionKind.CARRIER_CODE_UNMAPPED: frozenset({CODE_MAPPED}),
}
_CLOSED_BY: dict[str, list[ExceptionKind]] = {}
for _kind, _subjects in CLOSERS.items():
    for _subject in _subjects:
        _CLOSED_BY.setdefault(_subject, []).append(_kind)


def _decode(message_class: type[Message], event: RecordedEvent, body: bytes) -> Message:
    try:
        return message_class.FromString(body)
    except DecodeError as exc:
        raise PermanentError(f"undecodable {event.subject}: {exc}") from exc


def _label_failed(event: RecordedEvent, body: bytes, message_class: type[Message]) -> list[Signal]:
    message = _decode(message_class, event, body)
    # A carrier's delivery exception has a tracking status; a failed label booking has none.
    if message.status != 0:  # type: ignore[attr-defined]
        return []
    ref = message.shipment  # type: ignore[attr-defined]
    unknown = message.failure_code == LABEL_OUTCOME_UNKNOWN  # type: ignore[attr-defined]
    return [
        Signal(
            ExceptionKind.LABEL_OUTCOME_UNKNOWN if unknown else ExceptionKind.LABEL_FAILED,
            ref.shipment_id,
            True,
            event.occurred_at,
            event.event_id,
            event.subject,
            order_id=ref.order_id,
            detail=message.description,  # type: ignore[attr-defined]
        )
    ]


def _void_failed(event: RecordedEvent, body: bytes) -> list[Signal]:
    message = _decode(shipment_events_pb2.ShipmentLabelVoidFailed, event, body)
    assert isinstance(message, shipment_events_pb2.ShipmentLabelVoidFailed)
    return [
        Signal(
            ExceptionKind.LABEL_VOID_FAILED,
            message.shipment.shipment_id,
            True,
            event.occurred_at,
            event.event_id,
            event.subject,
            order_id=message.shipment.order_id,
            detail=f"voiding label {message.label_id} failed: {message.reason}",
        )
    ]


def _code_unmapped(event: RecordedEvent, body: bytes) -> list[Signal]:
    message = _decode(carrier_events_pb2.CarrierCodeUnmapped, event, body)
    assert isinstance(message, carrier_events_pb2.CarrierCodeUnmapped)
    # Only a status code can be mapped (MapCarrierCode); an incident code has no owner fix.
    if not message.carrier_status_code or message.carrier_incident_code:
        return []
    return [
        Signal(
            ExceptionKind.CARRIER_CODE_UNMAPPED,
            f"{message.carrier}:{message.carrier_status_code}",
            True,
            event.occurred_at,
            event.event_id,
            event.subject,
            order_reference=message.tracking_number,
            detail=f"scan of {message.tracking_number} stored as UNKNOWN: "
            f"{message.carrier_status_code} {message.description!r}",
        )
    ]


def _order_exception_raised(event: RecordedEvent, body: bytes) -> list[Signal]:
    message = _decode(order_events_pb2.OrderExceptionRaised, event, body)
    assert isinstance(message, order_events_pb2.OrderExceptionRaised)
    step = order_pb2.FulfillmentStep.Name(message.step).removeprefix("FULFILLMENT_STEP_")
    return [
        Signal(
            ExceptionKind.ORDER_EXCEPTION,
            order_exception_subject(message.order_id, message.episode),
            True,
            event.occurred_at,
            event.event_id,
            event.subject,
            order_id=message.order_id,
            detail=f"order in EXCEPTION at {step}: {message.reason}",
        )
    ]


def _order_exception_cleared(event: RecordedEvent, body: bytes) -> list[Signal]:
    message = _decode(order_events_pb2.OrderExceptionCleared, event, body)
    assert isinstance(message, order_events_pb2.OrderExceptionCleared)
    return [
        Signal(
            ExceptionKind.ORDER_EXCEPTION,
            order_exception_subject(message.order_id, message.episode),
            False,
            event.occurred_at,
            event.event_id,
            event.subject,
            order_id=message.order_id,
        )
    ]


# The event types decoded for their signals: the openers, and the one fix that names its episode.
_DECODED: dict[str, Callable[[RecordedEvent, bytes], list[Signal]]] = {
    DELIVERY_EXCEPTION: lambda e, b: _label_failed(
        e, b, shipment_events_pb2.ShipmentDeliveryException
    ),
    RETURN_PARCEL_EXCEPTION: lambda e, b: _label_failed(
        e, b, shipment_events_pb2.ReturnParcelException
    ),
    LABEL_VOID_FAILED: _void_failed,
    CODE_UNMAPPED: _code_unmapped,
    ORDER_EXCEPTION_RAISED: _order_exception_raised,
    ORDER_EXCEPTION_CLEARED: _order_exception_cleared,
}


def letter_signal(letter: DeadLetter) -> Signal:
    """A dead letter in the DLQ as the opening of its exception (subject `<durable>:<seq>`)."""
    try:
        seen_at = datetime.fromisoformat(letter.headers.get(DLQ_TIME, "")).timestamp()
    except ValueError:  # a letter without its time: when the tower saw it
        seen_at = time.time()
    return Signal(
        ExceptionKind.DEAD_LETTER,
        dead_letter_subject(letter.consumer, letter.seq),
        True,
        seen_at,
        letter.event_id,
        letter.original_subject,
        order_reference=letter.headers.get(ev.CE_SUBJECT, ""),
        detail=f"{letter.original_subject} {letter.event_id} dead-lettered after "
        f"{letter.num_delivered} deliveries: {letter.reason}",
    )


def signals_event(subject: str) -> bool:
    """True when events of `subject` may open or fix an exception (cheap: no decoding)."""
    return subject in _DECODED or subject in _CLOSED_BY


def signals_of(event: RecordedEvent, body: bytes) -> list[Signal]:
    """What the event says about exceptions: the one it opens, or the ones it fixes."""
    decoder = _DECODED.get(event.subject)
    if decoder is not None:
        return decoder(event, body)
    return [
        Signal(kind, event.aggregate_id, False, event.occurred_at, event.event_id, event.subject)
        for kind in _CLOSED_BY.get(event.subject, ())
    ]


# -- exceptions → proto --------------------------------------------------------------------


def _time(seconds: float) -> Timestamp:
    moment = timestamp(datetime.fromtimestamp(seconds, UTC))
    assert moment is not None
    return moment


def exception_to_proto(found: ExceptionView, now: float, sla_seconds: float) -> tower_pb2.Exception:
    """One exception as the workbench shows it, its age and breach at `now`."""
    age = found.age(now)
    message = tower_pb2.Exception(
        exception_id=found.exception_id,
        kind=found.kind.value,  # type: ignore[arg-type]
        owner=found.owner,
        subject_kind=found.spec.subject_kind,
        subject_id=found.subject_id,
        order_id=found.order_id,
        state=tower_pb2.EXCEPTION_STATE_OPEN if found.is_open else tower_pb2.EXCEPTION_STATE_CLOSED,
        occurrences=found.occurrences,
        detail=found.detail,
        age=Duration(seconds=int(age), nanos=int((age % 1) * 1e9)),
        sla_breached=age > sla_seconds,
        closed_by=found.closed_by,
        event_id=found.event_id,
    )
    if found.opened_at is not None:
        message.open_time.CopyFrom(_time(found.opened_at))
    if found.last_seen_at is not None:
        message.last_seen_time.CopyFrom(_time(found.last_seen_at))
    if found.closed_at is not None:
        message.close_time.CopyFrom(_time(found.closed_at))
    return message


def audit_to_proto(entry: AuditEntry) -> tower_pb2.ExceptionAuditEntry:
    message = tower_pb2.ExceptionAuditEntry(
        action=entry.action.value,  # type: ignore[arg-type]
        operator=entry.operator,
        reason=entry.reason,
        owner_call=entry.owner_call,
        succeeded=entry.succeeded,
        result=entry.result,
    )
    message.time.CopyFrom(_time(entry.acted_at))
    return message


def action_entry(entry: AuditEntry) -> tower_pb2.TimelineEntry:
    """An operator's action as a timeline entry of its own: producer "operator", subject the
    action (e.g. "exception.retry"), aggregate the exception, and what the owner answered."""
    outcome = "done" if entry.succeeded else "refused"
    call = entry.owner_call or "closed by hand"
    message = tower_pb2.TimelineEntry(
        event_id=f"audit-{entry.audit_id}",
        producer="operator",
        subject=f"exception.{entry.action.name.lower()}",
        aggregate_id=f"exception {entry.exception_id}",
        state_change=f"{entry.operator}: {call} {outcome}: {entry.result}",
    )
    message.occur_time.CopyFrom(_time(entry.acted_at))
    return message


def with_actions(
    response: tower_pb2.GetTimelineResponse, actions: Sequence[AuditEntry]
) -> tower_pb2.GetTimelineResponse:
    """The timeline with the operators' actions merged in time order (a stable sort: the
    events' causal order already follows their times)."""
    if not actions:
        return response
    merged = sorted(
        [*response.entries, *(action_entry(entry) for entry in actions)],
        key=lambda e: (e.occur_time.seconds, e.occur_time.nanos),
    )
    del response.entries[:]
    response.entries.extend(merged)
    return response
