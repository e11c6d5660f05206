"""Order's event handlers: inventory, shipment and billing facts turned into saga inputs.

- reserved / reservation_released / pick_completed → the input for the order they name;
- received / adjusted (positive) → StockAvailable for every open order that wants the SKU
  (oldest first), which is how backorders fill;
- shipment created / manifested / delivered → the shipment's units per order line;
- delivery exception → ShipmentFailed (the order shows EXCEPTION until the shipment moves on);
- returned to sender → ShipmentReturnedToSender (the units came back; the order shows EXCEPTION
  until an operator reships them or cancels and credits them);
- shipment cancelled / label voided / label void failed → recorded on the order (a cancelled
  shipment's units no longer count as shipped; a failed void shows as an exception);
- invoice posted → the invoiced units per order line (goods lines; freight is not a line);
- received with source RETURN → the return it names is received (app.returns);
- credit note posted → the return it credits records it (CREDITED once received); one that
  credits a shipment returned to sender is noted on its order (CreditNoteObserved).

Each handler translates the event (adapters.contracts) and runs the use case in the unit of work
of the consumer's batch transaction (`UnitOfWork.of(conn)`): the saga transition, its outbox rows
and queued commands commit with the inbox row. Events about orders this service does not know
(e.g. stock reserved by a tool) are skipped. A Conflict with a concurrent writer is transient:
the kit NAKs and the redelivery re-runs the handler.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from crossdock.events.v1 import billing_events_pb2 as bill_events
from crossdock.events.v1 import inventory_events_pb2 as inv_events
from crossdock.events.v1 import shipment_events_pb2 as shp_events
from crossdock.inventory.v1 import inventory_pb2
from crossdock.shipment.v1 import shipment_pb2
from sqlalchemy import Connection

from services.kit import events as ev
from services.kit.clock import Clock
from services.kit.handlers import HandlerRegistry
from services.kit.uow import UnitOfWork
from services.order.adapters.contracts import (
    incident_text,
    invoiced_goods_lines,
    package_item_lines,
    return_receipt,
    shipped_lines,
)
from services.order.app import returns as return_cases
from services.order.app import transitions
from services.order.domain import (
    Context,
    CreditNoteObserved,
    FulfillmentSaga,
    InvoicePosted,
    LabelVoided,
    LabelVoidFailed,
    PickCompleted,
    PickedLine,
    ReservationObserved,
    ReservationReleasedObserved,
    SagaInput,
    ShipmentCancelledObserved,
    ShipmentCreated,
    ShipmentDelivered,
    ShipmentFailed,
    ShipmentManifested,
    ShipmentReturnedToSender,
)

PURPOSE = "events"


def event_handlers(saga: FulfillmentSaga, clock: Clock) -> HandlerRegistry:
    """The handlers of the `order-events` consumers (streams INVENTORY, SHIPMENT, BILLING)."""

    def context(headers: Mapping[str, str]) -> Context:
        return Context(
            clock(),
            correlation_id=headers.get(ev.CORRELATION_ID, ""),
            event_id=headers.get(ev.CE_ID, ""),
            event_type=headers.get(ev.CE_TYPE, ""),
        )

    def apply(conn: Connection, order_id: str, saga_input: SagaInput, ctx: Context) -> None:
        transitions.observe(UnitOfWork.of(conn), saga, order_id, saga_input, ctx)

    def stock_arrived(
        conn: Connection, sku: str, location_id: str, source_id: str, ctx: Context
    ) -> None:
        transitions.stock_arrived(UnitOfWork.of(conn), saga, sku, location_id, source_id, ctx)

    def on_reserved(
        event: inv_events.StockReserved, headers: Mapping[str, str], conn: Connection
    ) -> None:
        r = event.reservation
        saga_input = ReservationObserved(r.reservation_id, r.location_id)
        apply(conn, r.order_id, saga_input, context(headers))

    def on_released(
        event: inv_events.ReservationReleased, headers: Mapping[str, str], conn: Connection
    ) -> None:
        r = event.reservation
        if r.status == inventory_pb2.RESERVATION_STATUS_ACTIVE:
            return  # a partial release, made by the order's own partial cancel
        saga_input = ReservationReleasedObserved(r.reservation_id, event.reason)
        apply(conn, r.order_id, saga_input, context(headers))

    def on_picked(
        event: inv_events.PickCompleted, headers: Mapping[str, str], conn: Connection
    ) -> None:
        lines = tuple(
            PickedLine(x.order_line_number, x.sku, int(x.quantity_picked), int(x.quantity_short))
            for x in event.lines
        )
        saga_input = PickCompleted(event.pick_id, event.reservation_id, lines)
        apply(conn, event.order_id, saga_input, context(headers))

    def on_received(
        event: inv_events.StockReceived, headers: Mapping[str, str], conn: Connection
    ) -> None:
        ctx = context(headers)
        for position in event.positions:
            if position.quantity_available > 0:
                stock_arrived(
                    conn, position.sku, position.location_id, event.receipt.receipt_id, ctx
                )
        # Goods sent back against a return: the return is received (and its order's lines).
        receipt = return_receipt(event.receipt)
        if receipt is not None:
            return_cases.receive_returned_goods(UnitOfWork.of(conn), receipt, ctx)

    def on_credit_note(
        event: bill_events.CreditNotePosted, headers: Mapping[str, str], conn: Connection
    ) -> None:
        note = event.credit_note
        ctx = context(headers)
        # A shipment returned to sender that the order asked billing to credit (its id stands
        # for the return's); the order ignores any other credit note.
        observed = CreditNoteObserved(note.credit_note_id, note.invoice_id, note.return_id)
        apply(conn, note.order_id, observed, ctx)
        posted = return_cases.CreditNotePosted(note.credit_note_id, note.order_id, note.return_id)
        return_cases.credit_return(UnitOfWork.of(conn), posted, ctx)

    def on_adjusted(
        event: inv_events.StockAdjusted, headers: Mapping[str, str], conn: Connection
    ) -> None:
        adjustment = event.adjustment
        if adjustment.quantity_delta > 0:  # only found stock can fill a backorder
            stock_arrived(
                conn,
                adjustment.sku,
                adjustment.location_id,
                adjustment.adjustment_id,
                context(headers),
            )

    def shipment_input(
        kind: type[ShipmentCreated] | type[ShipmentManifested] | type[ShipmentDelivered],
    ) -> Callable[[Any, Mapping[str, str], Connection], None]:
        def handle(event: Any, headers: Mapping[str, str], conn: Connection) -> None:
            shipment: shipment_pb2.Shipment = event.shipment
            saga_input = kind(shipment.shipment_id, shipment.location_id, shipped_lines(shipment))
            apply(conn, shipment.order_id, saga_input, context(headers))

        return handle

    def on_exception(
        event: shp_events.ShipmentDeliveryException, headers: Mapping[str, str], conn: Connection
    ) -> None:
        reason = event.description or "delivery exception"
        saga_input = ShipmentFailed(event.shipment.shipment_id, reason)
        apply(conn, event.shipment.order_id, saga_input, context(headers))

    def on_returned(
        event: shp_events.ShipmentReturnedToSender, headers: Mapping[str, str], conn: Connection
    ) -> None:
        saga_input = ShipmentReturnedToSender(
            event.shipment.shipment_id,
            event.location_id,
            package_item_lines(event.items),
            incident_text(event.incident_reason),
        )
        apply(conn, event.shipment.order_id, saga_input, context(headers))

    def on_shipment_cancelled(
        event: shp_events.ShipmentCancelled, headers: Mapping[str, str], conn: Connection
    ) -> None:
        shipment = event.shipment
        lines = package_item_lines(event.items)
        saga_input = ShipmentCancelledObserved(
            shipment.shipment_id, shipment.location_id, lines, event.reason
        )
        apply(conn, shipment.order_id, saga_input, context(headers))

    def on_label_voided(
        event: shp_events.ShipmentLabelVoided, headers: Mapping[str, str], conn: Connection
    ) -> None:
        ref = event.shipment
        saga_input = LabelVoided(ref.shipment_id, ref.tracking_number)
        apply(conn, ref.order_id, saga_input, context(headers))

    def on_label_void_failed(
        event: shp_events.ShipmentLabelVoidFailed, headers: Mapping[str, str], conn: Connection
    ) -> None:
        ref = event.shipment
        saga_input = LabelVoidFailed(ref.shipment_id, ref.tracking_number, event.reason)
        apply(conn, ref.order_id, saga_input, context(headers))

    def on_invoice(
        event: bill_events.InvoicePosted, headers: Mapping[str, str], conn: Connection
    ) -> None:
        invoice = event.invoice
        lines = invoiced_goods_lines(invoice)
        saga_input = InvoicePosted(invoice.invoice_id, invoice.shipment_id, lines)
        apply(conn, invoice.order_id, saga_input, context(headers))

    registry = HandlerRegistry()
    registry.add(shp_events.ShipmentCreated, shipment_input(ShipmentCreated))
    registry.add(shp_events.ShipmentManifested, shipment_input(ShipmentManifested))
    registry.add(shp_events.ShipmentDelivered, shipment_input(ShipmentDelivered))
    registry.add(shp_events.ShipmentDeliveryException, on_exception)
    registry.add(shp_events.ShipmentReturnedToSender, on_returned)
    registry.add(shp_events.ShipmentCancelled, on_shipment_cancelled)
    registry.add(shp_events.ShipmentLabelVoided, on_label_voided)
    registry.add(shp_events.ShipmentLabelVoidFailed, on_label_void_failed)
    registry.add(bill_events.InvoicePosted, on_invoice)
    registry.add(bill_events.CreditNotePosted, on_credit_note)
    registry.add(inv_events.StockReserved, on_reserved)
    registry.add(inv_events.ReservationReleased, on_released)
    registry.add(inv_events.PickCompleted, on_picked)
    registry.add(inv_events.StockReceived, on_received)
    registry.add(inv_events.StockAdjusted, on_adjusted)
    return registry
