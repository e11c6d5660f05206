"""What a chaos run leaves behind, as plain frozen records the checker can judge with no I/O.

Times are epoch seconds (floats), statuses are the contract enum names (`COMPLETED`,
`DELIVERED`), so a history reads the same whichever service or database produced it. A history
round-trips through JSON (`to_json` / `from_json`) so it is saved next to its run's report and
can be checked again later.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any


class HistoryFormatError(ValueError):
    """A JSON history that does not have the shape of a History; the message names the path."""


@dataclass(frozen=True)
class OrderRecord:
    """An order the order service accepted (it exists), with its status now."""

    order_id: str
    status: str
    partner_id: str = ""
    # Why an order in EXCEPTION is there (the order's exception_reason), so a report names it.
    exception_reason: str = ""


@dataclass(frozen=True)
class ShipmentRecord:
    """A shipment as the shipment service reports it; kind is OUTBOUND or RETURN."""

    shipment_id: str
    status: str
    order_id: str = ""
    kind: str = "OUTBOUND"
    label_id: str = ""


@dataclass(frozen=True)
class LabelRecord:
    """A label booked with a carrier for a shipment, and whether it was voided since."""

    label_id: str
    shipment_id: str
    voided: bool = False


@dataclass(frozen=True)
class InvoiceRecord:
    invoice_id: str
    invoice_number: str
    shipment_id: str
    order_id: str = ""


@dataclass(frozen=True)
class CreditNoteRecord:
    credit_note_id: str
    credit_note_number: str
    invoice_id: str
    return_id: str = ""


@dataclass(frozen=True)
class PositionRecord:
    """Stock of one SKU at one location as inventory reports it at the end of the run."""

    sku: str
    location_id: str
    on_hand: int
    reserved: int = 0


@dataclass(frozen=True)
class StockMovement:
    """One change of on hand: `quantity` is signed (a pick is negative). kind says where it came
    from (`initial`, `received`, `picked`, `adjusted`, `restocked`, ...); event_id identifies the
    change so a movement recorded twice (a redelivered event) counts once."""

    event_id: str
    sku: str
    location_id: str
    kind: str
    quantity: int


@dataclass(frozen=True)
class StreamRecord:
    """A JetStream stream's event ids (Nats-Msg-Id) present at the end of the run.

    first_seq / first_time are the stream's oldest message still kept: when first_seq > 1,
    retention removed older messages, and events sent before first_time can't be judged."""

    name: str
    subjects: tuple[str, ...] = ()
    first_seq: int = 1
    first_time: float | None = None
    event_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutboxRow:
    """An outbox row its service reports as sent (the publish was acknowledged)."""

    event_id: str
    subject: str
    stream: str
    sent_at: float


@dataclass(frozen=True)
class UnsentRow:
    event_id: str
    subject: str


@dataclass(frozen=True)
class OutboxAudit:
    service: str
    rows: tuple[OutboxRow, ...] = ()
    # Rows never published: once the mesh is quiet, an event no consumer will ever see.
    unsent: tuple[UnsentRow, ...] = ()


@dataclass(frozen=True)
class InboxRecord:
    """How many times one consumer recorded each event id as applied."""

    service: str
    consumer: str
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DeadLetterRecord:
    """One message of the DLQ stream: an event a consumer gave up on, and why."""

    event_id: str
    consumer: str = ""
    subject: str = ""
    reason: str = ""


@dataclass(frozen=True)
class AcceptedOrder:
    """An order the partner saw accepted (a 2xx to its POST), with the Idempotency-Key it used."""

    order_id: str
    idempotency_key: str


@dataclass(frozen=True)
class History:
    orders: tuple[OrderRecord, ...] = ()
    shipments: tuple[ShipmentRecord, ...] = ()
    labels: tuple[LabelRecord, ...] = ()
    invoices: tuple[InvoiceRecord, ...] = ()
    credit_notes: tuple[CreditNoteRecord, ...] = ()
    positions: tuple[PositionRecord, ...] = ()
    movements: tuple[StockMovement, ...] = ()
    streams: tuple[StreamRecord, ...] = ()
    outboxes: tuple[OutboxAudit, ...] = ()
    inboxes: tuple[InboxRecord, ...] = ()
    dead_letters: tuple[DeadLetterRecord, ...] = ()
    # What the workload was told over REST (empty when the history was not driven by one).
    accepted: tuple[AcceptedOrder, ...] = ()
    # What the gatherer could not see or chose to skip, so a report says what it did not judge.
    notes: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> History:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise HistoryFormatError(f"history: not JSON: {error}") from error
        built: History = _build(cls, data, "history")
        return built


def _build(kind: Any, value: Any, path: str) -> Any:
    """value (parsed JSON) as `kind`, the type hint of a History field; raises
    HistoryFormatError naming the path of the first value that does not fit."""
    origin = typing.get_origin(kind)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise HistoryFormatError(f"{path}: expected an object, got {type(value).__name__}")
        hints = typing.get_type_hints(kind)
        names = {f.name for f in dataclasses.fields(kind)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise HistoryFormatError(f"{path}: unknown field(s) {', '.join(unknown)}")
        required = {
            f.name
            for f in dataclasses.fields(kind)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        missing = sorted(required - set(value))
        if missing:
            raise HistoryFormatError(f"{path}: missing field(s) {', '.join(missing)}")
        return kind(**{k: _build(hints[k], v, f"{path}.{k}") for k, v in value.items()})
    if origin is tuple:
        if not isinstance(value, list):
            raise HistoryFormatError(f"{path}: expected a list, got {type(value).__name__}")
        (item, _ellipsis) = typing.get_args(kind)
        return tuple(_build(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise HistoryFormatError(f"{path}: expected an object, got {type(value).__name__}")
        _key, item = typing.get_args(kind)
        return {str(k): _build(item, v, f"{path}.{k}") for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(kind):
            return None
        (inner,) = [a for a in typing.get_args(kind) if a is not type(None)]
        return _build(inner, value, path)
    return _scalar(kind, value, path)


def _scalar(kind: Any, value: Any, path: str) -> Any:
    # bool is an int in Python, and JSON has one number type: check both ways explicitly.
    if kind is bool and isinstance(value, bool):
        return value
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is str and isinstance(value, str):
        return value
    raise HistoryFormatError(f"{path}: expected {kind.__name__}, got {type(value).__name__}")
