"""Proto ↔ domain for the control tower: event headers → recorded events, the references the
few reference-carrying event types hold, and timelines → GetTimelineResponse.

Why only some bodies are decoded: the tower sees every event of every lifecycle (~18), and
what a timeline shows is all in the CloudEvents headers. Only the events that introduce a
reference (an external order id, a shipment and its tracking numbers, a return, a reservation,
an invoice number, a credit note) are parsed; every body is kept raw for details read later.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from crossdock.events.v1 import (
    billing_events_pb2,
    inventory_events_pb2,
    order_events_pb2,
    return_events_pb2,
    shipment_events_pb2,
)
from crossdock.shipment.v1 import shipment_pb2
from crossdock.tower.v1 import tower_pb2
from google.protobuf.message import DecodeError, Message

from services.control_tower.domain.references import Link, ReferenceKind
from services.control_tower.domain.timeline import RecordedEvent, state_change
from services.kit import events as ev
from services.kit.catalog import load_catalog
from services.kit.handlers import PermanentError
from services.kit.proto_values import timestamp

_SOURCE_PREFIX = "crossdock/"
_TYPE_URL_PREFIX = "type.googleapis.com/"


# -- headers → recorded event --------------------------------------------------------------


def trace_id_of(traceparent: str | None) -> str:
    """The trace id of a W3C `traceparent` ("00-<32 hex>-<16 hex>-<2 hex>"); "" if malformed."""
    if not traceparent:
        return ""
    parts = traceparent.split("-")
    if len(parts) != 4 or len(parts[1]) != 32:
        return ""
    return parts[1]


def recorded_event(headers: Mapping[str, str], stream_seq: int) -> RecordedEvent:
    """The event's CloudEvents attributes; PermanentError when ce-time is missing or malformed."""
    raw_time = headers.get(ev.CE_TIME, "")
    try:
        occurred_at = datetime.fromisoformat(raw_time).timestamp()
    except ValueError as exc:
        raise PermanentError(f"ce-time {raw_time!r} is not an RFC 3339 instant") from exc
    source = headers.get(ev.CE_SOURCE, "")
    return RecordedEvent(
        event_id=headers[ev.CE_ID],
        subject=headers.get(ev.CE_TYPE, ""),
        producer=source.removeprefix(_SOURCE_PREFIX),
        aggregate_id=headers.get(ev.CE_SUBJECT, ""),
        occurred_at=occurred_at,
        trace_id=trace_id_of(headers.get(ev.TRACEPARENT)),
        correlation_id=headers.get(ev.CORRELATION_ID, ""),
        stream_seq=stream_seq,
    )


# -- reference-carrying bodies → links -----------------------------------------------------


def _shipment_links(shipment: shipment_pb2.Shipment) -> list[Link]:
    order_id = shipment.order_id
    links = [Link(ReferenceKind.SHIPMENT_ID, shipment.shipment_id, order_id)]
    numbers = {shipment.tracking_number, *(p.tracking_number for p in shipment.packages)}
    links += [Link(ReferenceKind.TRACKING_NUMBER, n, order_id) for n in sorted(numbers) if n]
    if shipment.return_id:
        links.append(Link(ReferenceKind.RETURN_ID, shipment.return_id, order_id))
    return links


def _placed(event: order_events_pb2.OrderPlaced) -> list[Link]:
    order = event.order
    links = [Link(ReferenceKind.ORDER_ID, order.order_id, order.order_id)]
    if order.external_order_id:
        links.append(
            Link(
                ReferenceKind.EXTERNAL_ORDER_ID,
                order.external_order_id,
                order.order_id,
                order.partner_id,
            )
        )
    return links


def _reserved(event: inventory_events_pb2.StockReserved) -> list[Link]:
    reservation = event.reservation
    return [Link(ReferenceKind.AGGREGATE, reservation.reservation_id, reservation.order_id)]


def _return(
    event: return_events_pb2.ReturnAuthorized | return_events_pb2.ReturnReceived,
) -> list[Link]:
    order_return = event.order_return
    return [Link(ReferenceKind.RETURN_ID, order_return.return_id, order_return.order_id)]


def _invoice(event: billing_events_pb2.InvoicePosted) -> list[Link]:
    invoice = event.invoice
    order_id = invoice.order_id
    return [
        Link(ReferenceKind.INVOICE_NUMBER, invoice.invoice_number, order_id),
        Link(ReferenceKind.AGGREGATE, invoice.invoice_id, order_id),
        Link(ReferenceKind.SHIPMENT_ID, invoice.shipment_id, order_id),
    ]


def _credit_note(event: billing_events_pb2.CreditNotePosted) -> list[Link]:
    note = event.credit_note
    links = [Link(ReferenceKind.AGGREGATE, note.credit_note_id, note.order_id)]
    if note.return_id:
        links.append(Link(ReferenceKind.RETURN_ID, note.return_id, note.order_id))
    return links


def _with_shipment(event: Any) -> list[Link]:
    return _shipment_links(event.shipment)


# Subject → (message class, what it links). Every other event is stored undecoded.
_LINKERS: dict[str, tuple[type[Message], Callable[[Any], list[Link]]]] = {
    ev.event_spec(message_class).subject: (message_class, linker)
    for message_class, linker in (
        (order_events_pb2.OrderPlaced, _placed),
        (inventory_events_pb2.StockReserved, _reserved),
        (shipment_events_pb2.ShipmentCreated, _with_shipment),
        (shipment_events_pb2.ShipmentManifested, _with_shipment),
        (shipment_events_pb2.ReturnParcelManifested, _with_shipment),
        (return_events_pb2.ReturnAuthorized, _return),
        (return_events_pb2.ReturnReceived, _return),
        (billing_events_pb2.InvoicePosted, _invoice),
        (billing_events_pb2.CreditNotePosted, _credit_note),
    )
}


def carries_references(subject: str) -> bool:
    """True for the event types whose body is decoded for references."""
    return subject in _LINKERS


def links_of(subject: str, aggregate_id: str, body: bytes) -> list[Link]:
    """The references an event's body ties to its order (none for most types).

    The event's own aggregate is linked as well when it is not its order, so the other events
    of that aggregate (e.g. a return received under a shipment's id) join the timeline.
    """
    found = _LINKERS.get(subject)
    if found is None:
        return []
    message_class, linker = found
    try:
        message = message_class.FromString(body)
    except DecodeError as exc:
        raise PermanentError(f"undecodable {subject}: {exc}") from exc
    links = [link for link in linker(message) if link.value and link.order_id]
    order_ids = {link.order_id for link in links}
    if len(order_ids) == 1 and aggregate_id and aggregate_id not in {link.value for link in links}:
        links.append(Link(ReferenceKind.AGGREGATE, aggregate_id, order_ids.pop()))
    return links


# -- timeline → proto ------------------------------------------------------------------------


@cache
def _event_types() -> dict[str, str]:
    return {event.subject: event.full_name for event in load_catalog()}


def entry_to_proto(event: RecordedEvent, body: bytes | None = None) -> tower_pb2.TimelineEntry:
    """One entry; with `body`, its details as an Any of the event's type (the bytes as stored,
    not decoded here: the reader decodes them)."""
    entry = tower_pb2.TimelineEntry(
        event_id=event.event_id,
        producer=event.producer,
        subject=event.subject,
        event_type=_event_types().get(event.subject, ""),
        aggregate_id=event.aggregate_id,
        occur_time=timestamp(datetime.fromtimestamp(event.occurred_at, UTC)),
        state_change=state_change(event.subject),
        trace_id=event.trace_id,
        correlation_id=event.correlation_id,
        stream_sequence=event.stream_seq,
    )
    event_type = entry.event_type
    if body is not None and event_type:
        entry.details.type_url = _TYPE_URL_PREFIX + event_type
        entry.details.value = body
    return entry


# Every kind a look-up can match (AGGREGATE links only join timelines).
_KINDS: dict[ReferenceKind, tower_pb2.ReferenceKind.ValueType] = {
    kind: tower_pb2.ReferenceKind.Value(f"REFERENCE_KIND_{kind.name}")
    for kind in ReferenceKind
    if kind is not ReferenceKind.AGGREGATE
}


def timeline_to_proto(
    order_id: str,
    matched: ReferenceKind,
    entries: Sequence[RecordedEvent],
    bodies: Mapping[str, bytes] | None = None,
) -> tower_pb2.GetTimelineResponse:
    """The response; `bodies` (event id → raw body) fill the entries' details when given."""
    return tower_pb2.GetTimelineResponse(
        order_id=order_id,
        matched=_KINDS[matched],
        entries=[
            entry_to_proto(event, None if bodies is None else bodies.get(event.event_id))
            for event in entries
        ],
    )
