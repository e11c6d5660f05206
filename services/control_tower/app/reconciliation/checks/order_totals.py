"""order_totals: a finished order's lines, shipments, invoices and credit notes agree, in units
and money (rules: services.control_tower.domain.order_totals).

Order owns lines, prices and cancellations; shipment owns what each shipment carries and its
fate; billing owns invoices and credit notes. A drift is one order (subject `order:<id>`) whose
documents break one or more rules, the evidence naming each broken rule's numbers.

Scan: order's ListOrders(COMPLETED), then ListOrders(CANCELLED), page by page (200); per page,
for the orders last changed more than the grace ago, ONE ListShipments(order_ids, outbound), ONE
ListInvoices(order_ids) and ONE ListCreditNotes(order_ids), each followed to its next page only
when the page's documents do not fit in one answer (500). The grace spares orders whose last
effects are in flight: an order cancels its shipments and asks billing for credits after it
turned CANCELLED or COMPLETED.

No correction: billing posts documents only from events and has no RPC that posts or voids an
invoice or a credit note, and which document is wrong is an accounting decision. correct()
refuses with the reason, so the finding stays for an operator; it closes by itself once a run
finds the totals agree (a redriven credit, a re-emitted delivery).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import grpc
from crossdock.billing.v1 import billing_pb2
from crossdock.billing.v1 import billing_service_pb2 as billing_svc
from crossdock.billing.v1 import billing_service_pb2_grpc as billing_grpc
from crossdock.common.v1 import common_pb2
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as order_svc
from crossdock.shipment.v1 import shipment_pb2
from crossdock.shipment.v1 import shipment_service_pb2 as shipment_svc
from crossdock.shipment.v1 import shipment_service_pb2_grpc as shipment_grpc

from services.control_tower.adapters.clients import OwnerRefused
from services.control_tower.app.reconciliation.checks import CheckContext, ScanPage
from services.control_tower.domain import order_totals as rules
from services.control_tower.domain.reconciliation import Drift

ORDERS_PAGE_SIZE = 200
DOCUMENTS_PAGE_SIZE = 500
ORDER = "order:"
_FINISHED = {
    order_pb2.ORDER_STATUS_COMPLETED: rules.OrderState.COMPLETED,
    order_pb2.ORDER_STATUS_CANCELLED: rules.OrderState.CANCELLED,
}
_SHIPMENT_STATES = {
    shipment_pb2.SHIPMENT_STATUS_DELIVERED: rules.ShipmentState.DELIVERED,
    shipment_pb2.SHIPMENT_STATUS_CANCELLED: rules.ShipmentState.CANCELLED,
    shipment_pb2.SHIPMENT_STATUS_RETURNED_TO_SENDER: rules.ShipmentState.RETURNED,
}

T = TypeVar("T")


def _decimal(value: common_pb2.Money) -> Decimal:
    return Decimal(value.units) + Decimal(value.nanos).scaleb(-9)


def _seconds(order: order_pb2.Order) -> float:
    return order.update_time.seconds + order.update_time.nanos / 1e9


def order_of(order: order_pb2.Order) -> rules.Order:
    return rules.Order(
        order.order_id,
        _FINISHED[order.status],
        order.currency_code,
        tuple(
            rules.OrderLine(
                line.line_number,
                line.sku,
                line.quantity_ordered,
                line.quantity_cancelled,
                _decimal(line.unit_price),
            )
            for line in order.lines
        ),
    )


def shipment_of(shipment: shipment_pb2.Shipment) -> rules.Shipment:
    units: dict[int, int] = defaultdict(int)
    for package in shipment.packages:
        for item in package.items:
            units[item.order_line_number] += item.quantity
    state = _SHIPMENT_STATES.get(shipment.status, rules.ShipmentState.LIVE)
    return rules.Shipment(shipment.shipment_id, state, dict(units))


def _lines(lines: Iterable[billing_pb2.InvoiceLine]) -> tuple[rules.DocumentLine, ...]:
    return tuple(
        rules.DocumentLine(
            line.kind == billing_pb2.INVOICE_LINE_KIND_GOODS,
            line.order_line_number,
            line.quantity,
            _decimal(line.unit_price),
            _decimal(line.amount),
        )
        for line in lines
    )


def invoice_of(invoice: billing_pb2.Invoice) -> rules.Invoice:
    return rules.Invoice(
        invoice.invoice_id,
        invoice.invoice_number or invoice.invoice_id,
        invoice.shipment_id,
        invoice.total.currency_code,
        _lines(invoice.lines),
        _decimal(invoice.total),
    )


def credit_note_of(note: billing_pb2.CreditNote) -> rules.CreditNote:
    return rules.CreditNote(
        note.credit_note_number or note.credit_note_id,
        note.invoice_id,
        note.total.currency_code,
        _lines(note.lines),
        _decimal(note.total),
    )


def drift_of(
    order: order_pb2.Order,
    shipments: Sequence[shipment_pb2.Shipment],
    invoices: Sequence[billing_pb2.Invoice],
    credit_notes: Sequence[billing_pb2.CreditNote],
) -> Drift | None:
    """The order's drift, or None when its totals agree."""
    broken = rules.violations(
        order_of(order),
        [shipment_of(s) for s in shipments],
        [invoice_of(i) for i in invoices],
        [credit_note_of(n) for n in credit_notes],
    )
    if not broken:
        return None
    return Drift(f"{ORDER}{order.order_id}", order.order_id, "; ".join(broken))


class OrderTotals:
    name = "order_totals"
    owner = "billing"
    action = "billing.operator"
    default_interval_seconds = 3600.0

    async def scan(self, ctx: CheckContext) -> AsyncIterator[ScanPage]:
        orders, shipments, billing = ctx.order, ctx.shipment, ctx.billing
        if orders is None or shipments is None or billing is None:
            raise RuntimeError(f"{self.name} needs the order, shipment and billing targets")
        cutoff = ctx.clock() - ctx.order_totals_grace_seconds
        for status in _FINISHED:
            token = ""
            while True:
                page = await _call(
                    "order.ListOrders",
                    orders.ListOrders(
                        order_svc.ListOrdersRequest(
                            status=status, page_size=ORDERS_PAGE_SIZE, page_token=token
                        )
                    ),
                )
                judged = [o for o in page.orders if _seconds(o) <= cutoff]
                yield ScanPage(len(judged), await _drifts(shipments, billing, judged))
                token = page.next_page_token
                if not token:
                    break

    async def correct(self, ctx: CheckContext, drift: Drift) -> str:
        raise OwnerRefused(
            self.action,
            "NOT_CORRECTABLE",
            f"order {drift.order_id}: billing posts invoices and credit notes only from events "
            "and no RPC posts or voids one; which document is wrong is an operator's decision "
            "(redrive a dead-lettered event, re-emit a delivery, or adjust in the ERP). The "
            "finding closes once a run finds the totals agree",
        )


async def _call(name: str, call: Awaitable[T]) -> T:
    try:
        return await call
    except grpc.aio.AioRpcError as error:
        raise OwnerRefused.of(name, error) from error


async def _all_pages(
    name: str, ask: Callable[[str], Awaitable[Any]], items: Callable[[Any], Iterable[T]]
) -> list[T]:
    """Every page of one owner's answer (one call when it fits in one page)."""
    found: list[T] = []
    token = ""
    while True:
        answer = await _call(name, ask(token))
        found += items(answer)
        token = answer.next_page_token
        if not token:
            return found


async def _drifts(
    shipments_api: shipment_grpc.ShipmentServiceAsyncStub,
    billing: billing_grpc.BillingServiceAsyncStub,
    orders: Sequence[order_pb2.Order],
) -> list[Drift]:
    """The drifts among one page of finished orders: one call per owner (and document kind)."""
    if not orders:
        return []
    ids = [order.order_id for order in orders]
    shipments = await _all_pages(
        "shipment.ListShipments",
        lambda token: shipments_api.ListShipments(
            shipment_svc.ListShipmentsRequest(
                order_ids=ids,
                kind=shipment_pb2.SHIPMENT_KIND_OUTBOUND,
                page_size=DOCUMENTS_PAGE_SIZE,
                page_token=token,
            )
        ),
        lambda answer: answer.shipments,
    )
    invoices = await _all_pages(
        "billing.ListInvoices",
        lambda token: billing.ListInvoices(
            billing_svc.ListInvoicesRequest(
                order_ids=ids, page_size=DOCUMENTS_PAGE_SIZE, page_token=token
            )
        ),
        lambda answer: answer.invoices,
    )
    notes = await _all_pages(
        "billing.ListCreditNotes",
        lambda token: billing.ListCreditNotes(
            billing_svc.ListCreditNotesRequest(
                order_ids=ids, page_size=DOCUMENTS_PAGE_SIZE, page_token=token
            )
        ),
        lambda answer: answer.credit_notes,
    )
    shipments_of: dict[str, list[shipment_pb2.Shipment]] = defaultdict(list)
    for shipment in shipments:
        shipments_of[shipment.order_id].append(shipment)
    invoices_of: dict[str, list[billing_pb2.Invoice]] = defaultdict(list)
    for invoice in invoices:
        invoices_of[invoice.order_id].append(invoice)
    notes_of: dict[str, list[billing_pb2.CreditNote]] = defaultdict(list)
    for note in notes:
        notes_of[note.order_id].append(note)
    drifts = [
        drift_of(
            order,
            shipments_of[order.order_id],
            invoices_of[order.order_id],
            notes_of[order.order_id],
        )
        for order in orders
    ]
    return [drift for drift in drifts if drift is not None]
