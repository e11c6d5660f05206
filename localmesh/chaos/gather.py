"""Record a History from a running local mesh, through what the mesh exposes.

- orders, shipments, invoices, credit notes, positions: the services' gRPC list RPCs as an
  internal caller (no partner scope, so every partner's records);
- streams: every JetStream stream read as the `admin` NATS user (localmesh.chaos.streams);
- stock movements: inventory's events on its stream (`received`, `pick_completed`,
  `adjusted`): sellable receipt lines add, picked units and adjustment deltas as they are.
  The seed is a receipt too, so a mesh whose inventory stream kept everything needs no
  baseline; when it did not (or to judge only a run's own changes), take a StockBaseline
  before the run and pass it in;
- labels: the label ids of the shipment stream's `manifested` events, plus each shipment's
  current label; voided by `label_voided` events or the shipment's label_void;
- outbox rows sent and inbox ids: no public API lists them, so they are read from each
  service's database, read-only (localmesh.chaos.db_audit).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from crossdock.billing.v1 import billing_service_pb2 as billing
from crossdock.billing.v1 import billing_service_pb2_grpc as billing_grpc
from crossdock.events.v1 import inventory_events_pb2 as inventory_events
from crossdock.events.v1 import shipment_events_pb2 as shipment_events
from crossdock.inventory.v1 import inventory_pb2
from crossdock.inventory.v1 import inventory_service_pb2 as inventory
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inventory_grpc
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as order
from crossdock.order.v1 import order_service_pb2_grpc as order_grpc
from crossdock.shipment.v1 import shipment_pb2
from crossdock.shipment.v1 import shipment_service_pb2 as shipment
from crossdock.shipment.v1 import shipment_service_pb2_grpc as shipment_grpc

from localmesh.chaos import db_audit
from localmesh.chaos.history import (
    CreditNoteRecord,
    History,
    InboxRecord,
    InvoiceRecord,
    LabelRecord,
    OrderRecord,
    OutboxAudit,
    OutboxRow,
    PositionRecord,
    ShipmentRecord,
    StockMovement,
    StreamRecord,
    UnsentRow,
)
from localmesh.chaos.streams import StreamMessage, last_seq, read_streams, stream_for
from localmesh.mesh import Mesh

RECEIVED = "crossdock.inventory.received.v1"
PICKED = "crossdock.inventory.pick_completed.v1"
ADJUSTED = "crossdock.inventory.adjusted.v1"
MANIFESTED = "crossdock.shipment.manifested.v1"
RETURN_MANIFESTED = "crossdock.shipment.return_parcel_manifested.v1"
LABEL_VOIDED = "crossdock.shipment.label_voided.v1"
KEPT_SUBJECTS = frozenset({RECEIVED, PICKED, ADJUSTED, MANIFESTED, RETURN_MANIFESTED, LABEL_VOIDED})
# Only sellable units are on hand (services/inventory README: non-sellable stock).
ON_HAND_CONDITIONS = frozenset(
    {inventory_pb2.STOCK_CONDITION_UNSPECIFIED, inventory_pb2.STOCK_CONDITION_SELLABLE}
)
PAGE_SIZE = 500
CALL_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class StockBaseline:
    """Positions before a run, and the inventory stream's last sequence then: the run's stock
    is judged as these positions plus the inventory events after that sequence. Take it while
    the mesh is quiet, so no movement falls between the two reads."""

    positions: tuple[PositionRecord, ...]
    inventory_last_seq: int


def gather(mesh: Mesh, baseline: StockBaseline | None = None) -> History:
    """The history of a mesh that has settled: gather after the workload stopped and the
    in-flight work drained, since the reads below are not one snapshot.

    The order of reads is chosen so a quiet mesh reads consistently and a busy one errs
    towards missing data rather than false alarms on the outbox: a row is marked sent only
    after its stream acknowledged it, so outbox rows read first are all in streams read after.
    """
    notes: list[str] = []
    tables = _read_databases(mesh.db_urls, notes)
    read = asyncio.run(read_streams(mesh.nats_admin_url, KEPT_SUBJECTS))
    with _channels(mesh.grpc_targets) as channels:
        orders = _orders(channels["order"])
        shipments = _shipments(channels["shipment"])
        invoices, credit_notes = _billing(channels["billing"])
        positions = _positions(channels["inventory"])
    inventory_stream = _stream_of(RECEIVED, read.streams)
    if baseline is None and inventory_stream is not None and inventory_stream.first_seq > 1:
        notes.append(
            f"stream {inventory_stream.name} no longer holds its first events (first seq "
            f"{inventory_stream.first_seq}) and no baseline was taken: stock cannot add up"
        )
    outboxes, inboxes = _audits(tables, read.streams)
    return History(
        orders=orders,
        shipments=tuple(s for s, _void in shipments),
        labels=_labels(shipments, read.kept),
        invoices=invoices,
        credit_notes=credit_notes,
        positions=positions,
        movements=_movements(read.kept, baseline),
        streams=read.streams,
        outboxes=outboxes,
        inboxes=inboxes,
        dead_letters=read.dead_letters,
        notes=tuple(notes),
    )


def take_stock_baseline(mesh: Mesh) -> StockBaseline:
    last = asyncio.run(last_seq(mesh.nats_admin_url, RECEIVED))
    with grpc.insecure_channel(mesh.grpc_targets["inventory"]) as channel:
        positions = _positions(channel)
    return StockBaseline(positions, last)


class _channels:
    """One insecure channel per service, closed together."""

    def __init__(self, targets: Mapping[str, str]) -> None:
        self._channels = {name: grpc.insecure_channel(t) for name, t in targets.items()}

    def __enter__(self) -> dict[str, grpc.Channel]:
        return self._channels

    def __exit__(self, *_exc: object) -> None:
        for channel in self._channels.values():
            channel.close()


Page = TypeVar("Page")


def _pages(call: Callable[..., Page], request: Any) -> Iterator[Page]:
    while True:
        page: Any = call(request, timeout=CALL_TIMEOUT_SECONDS)
        yield page
        if not page.next_page_token:
            return
        request.page_token = page.next_page_token


def _orders(channel: grpc.Channel) -> tuple[OrderRecord, ...]:
    stub = order_grpc.OrderServiceStub(channel)
    return tuple(
        OrderRecord(
            o.order_id,
            _name(order_pb2.OrderStatus, o.status, "ORDER_STATUS_"),
            o.partner_id,
            o.exception_reason,
        )
        for page in _pages(stub.ListOrders, order.ListOrdersRequest(page_size=PAGE_SIZE))
        for o in page.orders
    )


def _shipments(channel: grpc.Channel) -> list[tuple[ShipmentRecord, bool]]:
    """Each shipment, with whether its current label is voided."""
    stub = shipment_grpc.ShipmentServiceStub(channel)
    request = shipment.ListShipmentsRequest(page_size=PAGE_SIZE)
    return [
        (
            ShipmentRecord(
                shipment_id=s.shipment_id,
                status=_name(shipment_pb2.ShipmentStatus, s.status, "SHIPMENT_STATUS_"),
                order_id=s.order_id,
                kind="RETURN" if s.kind == shipment_pb2.SHIPMENT_KIND_RETURN else "OUTBOUND",
                label_id=s.label_id,
            ),
            s.label_void == shipment_pb2.LABEL_VOID_STATUS_VOIDED,
        )
        for page in _pages(stub.ListShipments, request)
        for s in page.shipments
    ]


def _billing(
    channel: grpc.Channel,
) -> tuple[tuple[InvoiceRecord, ...], tuple[CreditNoteRecord, ...]]:
    stub = billing_grpc.BillingServiceStub(channel)
    invoices = tuple(
        InvoiceRecord(i.invoice_id, i.invoice_number, i.shipment_id, i.order_id)
        for page in _pages(stub.ListInvoices, billing.ListInvoicesRequest(page_size=PAGE_SIZE))
        for i in page.invoices
    )
    request = billing.ListCreditNotesRequest(page_size=PAGE_SIZE)
    notes = tuple(
        CreditNoteRecord(n.credit_note_id, n.credit_note_number, n.invoice_id, n.return_id)
        for page in _pages(stub.ListCreditNotes, request)
        for n in page.credit_notes
    )
    return invoices, notes


def _positions(channel: grpc.Channel) -> tuple[PositionRecord, ...]:
    stub = inventory_grpc.InventoryServiceStub(channel)
    request = inventory.ListPositionsRequest(page_size=PAGE_SIZE)
    return tuple(
        PositionRecord(p.sku, p.location_id, p.quantity_on_hand, p.quantity_reserved)
        for page in _pages(stub.ListPositions, request)
        for p in page.positions
    )


def _movements(
    kept: tuple[StreamMessage, ...], baseline: StockBaseline | None
) -> tuple[StockMovement, ...]:
    moves: list[StockMovement] = []
    if baseline is not None:
        moves += [
            StockMovement(
                f"baseline:{p.sku}@{p.location_id}", p.sku, p.location_id, "initial", p.on_hand
            )
            for p in baseline.positions
        ]
    after = baseline.inventory_last_seq if baseline else 0
    for msg in kept:
        if msg.seq <= after:
            continue
        if msg.subject == RECEIVED:
            receipt = inventory_events.StockReceived.FromString(msg.data).receipt
            source = inventory_pb2.ReceiptSource.Name(receipt.source).lower()
            moves += [
                StockMovement(
                    f"{msg.event_id}#{index}",
                    line.sku,
                    receipt.location_id,
                    f"received ({source.removeprefix('receipt_source_')})",
                    line.quantity,
                )
                for index, line in enumerate(receipt.lines)
                if line.condition in ON_HAND_CONDITIONS
            ]
        elif msg.subject == PICKED:
            pick = inventory_events.PickCompleted.FromString(msg.data)
            moves += [
                StockMovement(
                    f"{msg.event_id}#{i}",
                    line.sku,
                    pick.location_id,
                    "picked",
                    -line.quantity_picked,
                )
                for i, line in enumerate(pick.lines)
                if line.quantity_picked
            ]
        elif msg.subject == ADJUSTED:
            adjustment = inventory_events.StockAdjusted.FromString(msg.data).adjustment
            moves.append(
                StockMovement(
                    msg.event_id,
                    adjustment.sku,
                    adjustment.location_id,
                    "adjusted",
                    adjustment.quantity_delta,
                )
            )
    return tuple(moves)


def _labels(
    shipments: list[tuple[ShipmentRecord, bool]], kept: tuple[StreamMessage, ...]
) -> tuple[LabelRecord, ...]:
    booked: set[tuple[str, str]] = set()
    voided: set[tuple[str, str]] = set()
    for record, void in shipments:
        if record.label_id:
            booked.add((record.shipment_id, record.label_id))
            if void:
                voided.add((record.shipment_id, record.label_id))
    for msg in kept:
        if msg.subject == MANIFESTED:
            s = shipment_events.ShipmentManifested.FromString(msg.data).shipment
            booked.add((s.shipment_id, s.label_id))
        elif msg.subject == RETURN_MANIFESTED:
            s = shipment_events.ReturnParcelManifested.FromString(msg.data).shipment
            booked.add((s.shipment_id, s.label_id))
        elif msg.subject == LABEL_VOIDED:
            event = shipment_events.ShipmentLabelVoided.FromString(msg.data)
            voided.add((event.shipment.shipment_id, event.label_id))
    return tuple(
        LabelRecord(label_id, shipment_id, voided=(shipment_id, label_id) in voided)
        for shipment_id, label_id in sorted(booked)
        if label_id
    )


Tables = dict[str, db_audit.Tables]


def _read_databases(db_urls: Mapping[str, str], notes: list[str]) -> Tables:
    tables: Tables = {}
    for service, url in sorted(db_urls.items()):
        try:
            tables[service] = db_audit.read_tables(url)
        except ValueError as error:
            notes.append(f"{service}: outbox and inbox not audited: {error}")
    return tables


def _audits(
    tables: Tables, streams: tuple[StreamRecord, ...]
) -> tuple[tuple[OutboxAudit, ...], tuple[InboxRecord, ...]]:
    outboxes: list[OutboxAudit] = []
    inboxes: list[InboxRecord] = []
    for service, (sent, counts, unsent) in tables.items():
        rows = tuple(
            OutboxRow(str(event_id), str(subject), stream_for(str(subject), streams), float(at))
            for event_id, subject, at in sent
        )
        pending = tuple(UnsentRow(str(event_id), str(subject)) for event_id, subject in unsent)
        outboxes.append(OutboxAudit(service, rows, pending))
        by_consumer: dict[str, dict[str, int]] = {}
        for consumer, event_id, count in counts:
            by_consumer.setdefault(str(consumer), {})[str(event_id)] = int(count)
        inboxes += [InboxRecord(service, c, ids) for c, ids in sorted(by_consumer.items())]
    return tuple(outboxes), tuple(inboxes)


def _stream_of(subject: str, streams: tuple[StreamRecord, ...]) -> StreamRecord | None:
    name = stream_for(subject, streams)
    return next((s for s in streams if s.name == name), None)


def _name(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix)
