"""Billing's event handlers (consumer `billing-events`, one durable per stream it reads).

- OrderPlaced → the order's price cache (who pays, unit price per line);
- ShipmentManifested → the freight quote; the invoice too when the partner bills on ship;
- ShipmentDelivered → the final freight charge and the invoice (InvoicePosted), plus
  FreightChargeFinalized when the final charge differs from the quote;
- ReturnReceived → a credit note per invoice the returned lines were billed on.

Events can arrive out of order (a shipment before its OrderPlaced, a return before its invoice):
the handler then raises PricesMissing, an ordinary exception, so the kit NAKs with backoff and
the redelivery finds the data. Duplicates are stopped by the kit's inbox (same event id) and by
UNIQUE keys plus existence checks (the same fact under another event id).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime

from crossdock.events.v1 import order_events_pb2, return_events_pb2, shipment_events_pb2
from crossdock.shipment.v1 import shipment_pb2
from google.protobuf import json_format
from sqlalchemy import Connection

from services.billing import posting
from services.billing.api.mapping import decimal_of
from services.billing.domain import invoicing
from services.billing.domain.documents import Freight, OrderPrices
from services.billing.domain.ids import new_id
from services.billing.store import repository as repo
from services.kit import events as ev
from services.kit.handlers import HandlerRegistry

PURPOSE = "events"
Clock = Callable[[], datetime]


def _shipped(shipment: shipment_pb2.Shipment) -> list[invoicing.ShippedItem]:
    return [
        invoicing.ShippedItem(item.order_line_number, item.sku, item.quantity)
        for package in shipment.packages
        for item in package.items
    ]


def _prices(conn: Connection, order_id: str) -> OrderPrices:
    prices = repo.get_prices(conn, order_id)
    if prices is None:
        raise invoicing.PricesMissing(f"order {order_id} not placed yet (prices unknown)")
    return prices


def build_registry(settings: posting.BillingSettings, clock: Clock) -> HandlerRegistry:
    registry = HandlerRegistry()

    def on_placed(
        event: order_events_pb2.OrderPlaced, headers: Mapping[str, str], conn: Connection
    ) -> None:
        order = event.order
        lines = {
            line.line_number: invoicing.OrderLinePrice(
                line.line_number, line.sku, decimal_of(line.unit_price)
            )
            for line in order.lines
        }
        customer = json_format.MessageToDict(order.customer, preserving_proto_field_name=True)
        repo.save_prices(
            conn,
            OrderPrices(order.order_id, order.partner_id, customer, order.currency_code, lines),
        )

    def on_manifested(
        event: shipment_events_pb2.ShipmentManifested, headers: Mapping[str, str], conn: Connection
    ) -> None:
        shipment = event.shipment
        existing = repo.get_freight(conn, shipment.shipment_id)
        quote = decimal_of(event.quoted_charge)
        if existing is None:
            repo.save_freight(
                conn,
                Freight(
                    new_id("frt"),
                    shipment.shipment_id,
                    shipment.order_id,
                    shipment.partner_id,
                    shipment.carrier,
                    event.quoted_charge.currency_code,
                    quote,
                    None,
                    None,
                ),
            )
        elif existing.quoted is None:
            repo.save_freight(conn, replace(existing, quoted=quote))
        # The customer's policy needs the order (OrderPlaced may still be on its way: NAK).
        prices = _prices(conn, shipment.order_id) if settings.on_ship_customers else None
        customer = str(prices.customer.get("party_id", "")) if prices else ""
        policy = invoicing.policy_for(
            shipment.partner_id, settings.on_ship_partners, customer, settings.on_ship_customers
        )
        if policy is invoicing.InvoicePolicy.ON_SHIP:
            posting.post_invoice(
                conn,
                settings,
                prices or _prices(conn, shipment.order_id),
                shipment.shipment_id,
                _shipped(shipment),
                quote,
                clock(),
                headers.get(ev.CORRELATION_ID, ""),
            )

    def on_delivered(
        event: shipment_events_pb2.ShipmentDelivered, headers: Mapping[str, str], conn: Connection
    ) -> None:
        shipment = event.shipment
        prices = _prices(conn, shipment.order_id)
        correlation_id = headers.get(ev.CORRELATION_ID, "")
        now = clock()
        freight = repo.get_freight(conn, shipment.shipment_id)
        final = decimal_of(event.final_charge) if event.HasField("final_charge") else None
        if final is not None and (freight is None or freight.final is None):
            # First time the final charge is known: record it (and announce a changed amount).
            currency = event.final_charge.currency_code or prices.currency
            base = freight or Freight(
                new_id("frt"),
                shipment.shipment_id,
                shipment.order_id,
                shipment.partner_id,
                shipment.carrier,
                currency,
                None,
                None,
                None,
            )
            freight = replace(base, final=final, finalized_at=now)
            posting.finalize_freight(conn, freight, now, correlation_id)
        amount, _ = invoicing.freight_to_bill(
            freight.quoted if freight else None, freight.final if freight else None
        )
        posting.post_invoice(
            conn,
            settings,
            prices,
            shipment.shipment_id,
            _shipped(shipment),
            amount,
            now,
            correlation_id,
        )

    def on_return_received(
        event: return_events_pb2.ReturnReceived, headers: Mapping[str, str], conn: Connection
    ) -> None:
        ret = event.order_return
        returned = [
            invoicing.ShippedItem(line.order_line_number, line.sku, line.quantity_received)
            for line in ret.lines
        ]
        reasons = sorted({line.reason for line in ret.lines if line.reason})
        posting.post_credit_notes(
            conn,
            settings,
            ret.order_id,
            ret.return_id,
            event.receipt_id,
            returned,
            "; ".join(reasons) or "return received",
            clock(),
            headers.get(ev.CORRELATION_ID, ""),
        )

    registry.add(order_events_pb2.OrderPlaced, on_placed)
    registry.add(shipment_events_pb2.ShipmentManifested, on_manifested)
    registry.add(shipment_events_pb2.ShipmentDelivered, on_delivered)
    registry.add(return_events_pb2.ReturnReceived, on_return_received)
    return registry
