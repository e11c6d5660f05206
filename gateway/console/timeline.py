"""One order's timeline for the console: GetTimeline on the control tower, made into rows, and
the tower's refusals made into messages an operator can act on.

Each row links the references its event carries (shipment ids, tracking numbers, invoice
numbers, return ids, external order ids, read from the event's message) to a search for them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC

import grpc
from crossdock.tower.v1 import tower_pb2, tower_pb2_grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2

from gateway.adapters.backends import Backends, BackendUnavailable
from services.kit.catalog import load_catalog
from services.kit.grpc_errors import details_of, status_from_error

TOWER_SERVICE = tower_pb2.DESCRIPTOR.services_by_name["TowerService"].full_name
# An order in one of these states changes no more (a later return gets its own look-up).
FINAL_STATES = frozenset({"order → COMPLETED", "order → CANCELLED"})
KNOWN_PRODUCERS = frozenset({"order", "inventory", "shipment", "carrier-adapter", "billing"})
# Field name in an event message → how the console labels that reference.
REFERENCE_FIELDS = {
    "external_order_id": "external order",
    "shipment_id": "shipment",
    "tracking_number": "tracking",
    "tracking_numbers": "tracking",
    "invoice_number": "invoice",
    "return_id": "return",
}
_MATCHED_LABELS = {
    tower_pb2.REFERENCE_KIND_ORDER_ID: "order id",
    tower_pb2.REFERENCE_KIND_EXTERNAL_ORDER_ID: "external order id",
    tower_pb2.REFERENCE_KIND_SHIPMENT_ID: "shipment id",
    tower_pb2.REFERENCE_KIND_TRACKING_NUMBER: "tracking number",
    tower_pb2.REFERENCE_KIND_INVOICE_NUMBER: "invoice number",
    tower_pb2.REFERENCE_KIND_RETURN_ID: "return id",
    tower_pb2.REFERENCE_KIND_CORRELATION_ID: "correlation id",
}
_TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


@dataclass(frozen=True)
class Reference:
    label: str
    value: str


@dataclass(frozen=True)
class Row:
    """One event as the console shows it."""

    time: str
    producer: str
    producer_style: str  # the CSS name of the producer's colour
    subject: str
    state_change: str
    aggregate_id: str
    trace_id: str
    correlation_id: str
    references: tuple[Reference, ...]


@dataclass(frozen=True)
class TimelineView:
    order_id: str
    matched: str
    rows: tuple[Row, ...]
    order_state: str  # the order's latest state, e.g. "RELEASED"; "" before any
    final: bool

    @property
    def producers(self) -> tuple[str, ...]:
        return tuple(sorted({row.producer for row in self.rows}))


@dataclass(frozen=True)
class Refusal:
    """Why there is no timeline to show: the message, the HTTP status of the page, whether the
    partner field would settle it, and whether asking again later may work."""

    message: str
    status: int
    needs_partner: bool = False
    transient: bool = False


async def look_up(
    backends: Backends, reference: str, partner_id: str, timeout_seconds: float
) -> TimelineView | Refusal:
    """The timeline of the order `reference` names, or why there is none."""
    try:
        channel = backends.channel(TOWER_SERVICE)
    except BackendUnavailable:
        return Refusal(
            "The control tower is not configured on this gateway "
            "(CROSSDOCK_GATEWAY_TOWER_TARGET is empty).",
            503,
        )
    request = tower_pb2.GetTimelineRequest(
        reference=reference, partner_id=partner_id, include_details=True
    )
    try:
        response = await tower_pb2_grpc.TowerServiceStub(channel).GetTimeline(
            request, timeout=timeout_seconds
        )
    except grpc.aio.AioRpcError as error:
        return refusal_of(error, reference)
    return view_of(response)


def refusal_of(error: grpc.aio.AioRpcError, reference: str) -> Refusal:
    code, detail = error.code(), str(error.details() or "")
    if code is grpc.StatusCode.NOT_FOUND:
        return Refusal(
            f"No order is known by {reference!r}. Search by an order id, external order id, "
            "shipment id, tracking number, invoice number, return id or correlation id; an "
            "event published a moment ago may still be on its way to the tower.",
            404,
        )
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return Refusal(_violations(error) or detail, 400)
    if code is grpc.StatusCode.FAILED_PRECONDITION:
        subjects = _precondition_subjects(error)
        if "partner_id" in subjects:
            return Refusal(
                f"{detail}. Enter the partner id (ptn_…) of the order you mean.",
                409,
                needs_partner=True,
            )
        return Refusal(
            f"{detail}. Search by the order id, a shipment id or a tracking number instead.", 409
        )
    if code in _TRANSIENT:
        return Refusal(
            f"The control tower did not answer ({code.name}); this page tries again.",
            503,
            transient=True,
        )
    return Refusal(f"The control tower refused the look-up ({code.name}: {detail}).", 502)


def _violations(error: grpc.aio.AioRpcError) -> str:
    status = status_from_error(error)
    if status is None:
        return ""
    names = {"reference": "reference", "partner_id": "partner id"}
    return "; ".join(
        f"{names.get(violation.field, violation.field)}: {violation.description}"
        for request in details_of(status, error_details_pb2.BadRequest)
        for violation in request.field_violations
    )


def _precondition_subjects(error: grpc.aio.AioRpcError) -> list[str]:
    status = status_from_error(error)
    if status is None:
        return []
    return [
        violation.subject
        for failure in details_of(status, error_details_pb2.PreconditionFailure)
        for violation in failure.violations
    ]


def view_of(response: tower_pb2.GetTimelineResponse) -> TimelineView:
    rows = tuple(_row(entry, response.order_id) for entry in response.entries)
    order_states = [
        row.state_change.removeprefix("order → ")
        for row in rows
        if row.state_change.startswith("order → ")
    ]
    final = any(row.state_change in FINAL_STATES for row in rows)
    return TimelineView(
        order_id=response.order_id,
        matched=_MATCHED_LABELS.get(response.matched, "reference"),
        rows=rows,
        order_state=order_states[-1] if order_states else "",
        final=final,
    )


def _row(entry: tower_pb2.TimelineEntry, order_id: str) -> Row:
    stamp = entry.occur_time.ToDatetime(tzinfo=UTC)
    return Row(
        time=stamp.strftime("%Y-%m-%d %H:%M:%S.") + f"{stamp.microsecond // 1000:03d}",
        producer=entry.producer,
        producer_style=entry.producer if entry.producer in KNOWN_PRODUCERS else "other",
        subject=entry.subject.removeprefix("crossdock."),
        state_change=entry.state_change,
        aggregate_id=entry.aggregate_id,
        trace_id=entry.trace_id,
        correlation_id=entry.correlation_id,
        references=references_in(entry.details, skip={order_id, entry.aggregate_id}),
    )


def references_in(details: AnyMessage, skip: set[str]) -> tuple[Reference, ...]:
    """The references an event's message names (in field order, each once), but `skip`."""
    message = _unpacked(details)
    if message is None:
        return ()
    found: dict[str, Reference] = {}
    _collect(message, found)
    return tuple(ref for value, ref in found.items() if value not in skip)


def _collect(message: Message, found: dict[str, Reference]) -> None:
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            for child in value if _repeated(field) else [value]:
                _collect(child, found)
        elif field.type == FieldDescriptor.TYPE_STRING and field.name in REFERENCE_FIELDS:
            for text in value if _repeated(field) else [value]:
                if text:
                    found.setdefault(text, Reference(REFERENCE_FIELDS[field.name], text))


def _repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _unpacked(details: AnyMessage) -> Message | None:
    if not details.type_url:
        return None
    _event_types_loaded()
    name = details.type_url.rsplit("/", 1)[-1]
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(name)
    except KeyError:
        return None  # an event type newer than this gateway: shown without its references
    message = message_factory.GetMessageClass(descriptor)()
    return message if details.Unpack(message) else None


@functools.cache
def _event_types_loaded() -> None:
    """Import every event message module once, so their types are in the descriptor pool."""
    load_catalog()
