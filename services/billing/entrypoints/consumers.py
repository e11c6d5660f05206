"""Billing's event handlers (consumer `billing-events`, one durable per stream it reads).

Translation only: each handler turns the event into an app command and runs the use case on the
consumer's batch transaction (`UnitOfWork.of(conn)`), so the document, its number, its event and
the inbox row commit together.

- OrderPlaced -> the order's price cache (who pays, unit price per line);
- ShipmentManifested -> the freight quote; the invoice too when the partner bills on ship;
- ShipmentDelivered -> the final freight charge and the invoice (InvoicePosted), plus
  FreightChargeFinalized when the final charge differs from the quote;
- ReturnReceived -> a credit note per invoice the returned lines were billed on.
"""

from __future__ import annotations

from collections.abc import Mapping

from crossdock.events.v1 import order_events_pb2, return_events_pb2, shipment_events_pb2
from crossdock.shipment.v1 import shipment_pb2
from sqlalchemy import Connection

from services.billing import app
from services.billing.adapters import contracts
from services.kit.clock import Clock
from services.kit.handlers import HandlerRegistry
from services.kit.uow import UnitOfWork

PURPOSE = "events"


def _facts(shipment: shipment_pb2.Shipment) -> app.ShipmentFacts:
    return app.ShipmentFacts(
        shipment.shipment_id,
        shipment.order_id,
        shipment.partner_id,
        shipment.carrier,
        contracts.shipped_items(shipment),
    )


def event_handlers(settings: app.BillingSettings, clock: Clock) -> HandlerRegistry:
    registry = HandlerRegistry()

    def on_placed(
        event: order_events_pb2.OrderPlaced, headers: Mapping[str, str], conn: Connection
    ) -> None:
        app.record_order_prices(UnitOfWork.of(conn), contracts.order_prices(event.order))

    def on_manifested(
        event: shipment_events_pb2.ShipmentManifested, headers: Mapping[str, str], conn: Connection
    ) -> None:
        command = app.RecordManifest(
            _facts(event.shipment),
            contracts.decimal_of(event.quoted_charge),
            event.quoted_charge.currency_code,
        )
        app.record_manifest(UnitOfWork.of(conn), command, settings, clock())

    def on_delivered(
        event: shipment_events_pb2.ShipmentDelivered, headers: Mapping[str, str], conn: Connection
    ) -> None:
        has_final = event.HasField("final_charge")
        command = app.RecordDelivery(
            _facts(event.shipment),
            contracts.decimal_of(event.final_charge) if has_final else None,
            event.final_charge.currency_code,
        )
        app.record_delivery(UnitOfWork.of(conn), command, settings, clock())

    def on_return_received(
        event: return_events_pb2.ReturnReceived, headers: Mapping[str, str], conn: Connection
    ) -> None:
        order_return = event.order_return
        command = app.CreditReturn(
            order_return.order_id,
            order_return.return_id,
            event.receipt_id,
            contracts.returned_items(order_return),
            tuple(line.reason for line in order_return.lines),
        )
        app.credit_return(UnitOfWork.of(conn), command, settings, clock())

    registry.add(order_events_pb2.OrderPlaced, on_placed)
    registry.add(shipment_events_pb2.ShipmentManifested, on_manifested)
    registry.add(shipment_events_pb2.ShipmentDelivered, on_delivered)
    registry.add(return_events_pb2.ReturnReceived, on_return_received)
    return registry
