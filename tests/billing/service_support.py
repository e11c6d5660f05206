"""Billing's test data: the events it consumes (an order placed, a shipment manifested and
delivered, a return received), and the environment of billing as a real process. The in-process
billing is `tests.fixtures.running.running_billing`.
"""

from __future__ import annotations

import os
from typing import Any

from crossdock.common.v1 import common_pb2
from crossdock.events.v1 import order_events_pb2, return_events_pb2, shipment_events_pb2
from crossdock.order.v1 import order_pb2
from crossdock.shipment.v1 import shipment_pb2

from services.kit.ids import resource_id as new_id
from tests.fixtures.running import billing_env


def subprocess_env(db_url: str, nats_url: str) -> dict[str, str]:
    return {**os.environ, **billing_env(db_url, nats_url, CONSUMER_BATCH_SIZE="5")}


def eur(units: int, nanos: int = 0) -> common_pb2.Money:
    return common_pb2.Money(currency_code="EUR", units=units, nanos=nanos)


def order_placed(order_id: str, partner_id: str) -> order_events_pb2.OrderPlaced:
    """Two lines: SKU-A at 12.50, SKU-B at 0.10."""
    order = order_pb2.Order(
        order_id=order_id,
        partner_id=partner_id,
        customer=common_pb2.PartyRef(party_id="CUST-1", name="Ada"),
        currency_code="EUR",
        lines=[
            order_pb2.OrderLine(
                line_number=1, sku="SKU-A", quantity_ordered=4, unit_price=eur(12, 500_000_000)
            ),
            order_pb2.OrderLine(
                line_number=2, sku="SKU-B", quantity_ordered=10, unit_price=eur(0, 100_000_000)
            ),
        ],
    )
    return order_events_pb2.OrderPlaced(order=order)


def shipment(shipment_id: str, order_id: str, partner_id: str) -> shipment_pb2.Shipment:
    """Ships 2 x SKU-A and 3 x SKU-B in two packages."""
    return shipment_pb2.Shipment(
        shipment_id=shipment_id,
        order_id=order_id,
        partner_id=partner_id,
        carrier="dhl",
        packages=[
            shipment_pb2.Package(
                package_id="pkg-1",
                items=[
                    shipment_pb2.PackageItem(order_line_number=1, sku="SKU-A", quantity=2),
                    shipment_pb2.PackageItem(order_line_number=2, sku="SKU-B", quantity=1),
                ],
            ),
            shipment_pb2.Package(
                package_id="pkg-2",
                items=[shipment_pb2.PackageItem(order_line_number=2, sku="SKU-B", quantity=2)],
            ),
        ],
    )


def manifested(ship: shipment_pb2.Shipment, quote: common_pb2.Money) -> Any:
    return shipment_events_pb2.ShipmentManifested(shipment=ship, quoted_charge=quote)


def delivered(ship: shipment_pb2.Shipment, final: common_pb2.Money | None) -> Any:
    event = shipment_events_pb2.ShipmentDelivered(shipment=ship)
    if final is not None:
        event.final_charge.CopyFrom(final)
    return event


def return_received(
    return_id: str, order_id: str, partner_id: str, received: dict[int, int]
) -> Any:
    """The order's ReturnReceived: {order line number: units received} (SKU-A is line 1)."""
    skus = {1: "SKU-A", 2: "SKU-B"}
    order_return = order_pb2.Return(
        return_id=return_id,
        order_id=order_id,
        partner_id=partner_id,
        lines=[
            order_pb2.ReturnLine(order_line_number=n, sku=skus[n], quantity_received=quantity)
            for n, quantity in received.items()
        ],
    )
    return return_events_pb2.ReturnReceived(
        order_return=order_return, receipt_id=f"rcpt-{return_id}"
    )


def ids(prefix: str) -> str:
    return new_id(prefix)
