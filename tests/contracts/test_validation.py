"""protovalidate rules in the contracts reject bad requests and name the violating fields.

Each service gets a realistic valid request (which must pass, so the rules are not simply
rejecting everything) and invalid variants whose violations must name exactly the bad fields.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from crossdock.billing.v1 import billing_service_pb2 as billing
from crossdock.carrier.v1 import carrier_pb2, carrier_service_pb2
from crossdock.common.v1 import common_pb2
from crossdock.inventory.v1 import inventory_pb2
from crossdock.inventory.v1 import inventory_service_pb2 as inventory
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as order
from crossdock.registry.v1 import registry_pb2
from crossdock.registry.v1 import registry_service_pb2 as registry
from crossdock.shipment.v1 import shipment_service_pb2 as shipment
from google.protobuf.message import Message

from services.kit.validation import violations_of

ULID = "01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"


def _usd(units: int, nanos: int = 0) -> common_pb2.Money:
    return common_pb2.Money(currency_code="USD", units=units, nanos=nanos)


def _address() -> common_pb2.Address:
    return common_pb2.Address(
        name="Ada Lovelace",
        lines=["12 Dock Road"],
        city="Portland",
        region="OR",
        postal_code="97201",
        country_code="US",
    )


def _create_order() -> order.CreateOrderRequest:
    return order.CreateOrderRequest(
        partner_id=f"ptn_{ULID}",
        order=order.OrderInput(
            external_order_id="PO-1001",
            customer=common_pb2.PartyRef(party_id="C-77", name="Ada Lovelace"),
            ship_to=_address(),
            currency_code="USD",
            lines=[order.OrderLineInput(sku="SKU-1", quantity=2, unit_price=_usd(19, 990000000))],
        ),
    )


def _reserve() -> inventory.ReserveStockRequest:
    return inventory.ReserveStockRequest(
        order_id=f"ord_{ULID}",
        location_id="WH-EAST",
        lines=[inventory.ReserveLine(order_line_number=1, sku="SKU-1", quantity=3)],
        policy=inventory_pb2.RESERVATION_POLICY_PARTIAL,
        idempotency_key="order-1-reserve",
    )


def _rates() -> carrier_service_pb2.GetRatesRequest:
    return carrier_service_pb2.GetRatesRequest(
        ship_from=_address(),
        ship_to=_address(),
        parcels=[
            carrier_pb2.Parcel(
                weight=common_pb2.Weight(value=1.2, unit=common_pb2.WEIGHT_UNIT_KILOGRAM),
                dimensions=common_pb2.Dimensions(
                    length=30, width=20, height=10, unit=common_pb2.DIMENSION_UNIT_CENTIMETER
                ),
            )
        ],
    )


def _register() -> registry.RegisterSchemaRequest:
    return registry.RegisterSchemaRequest(
        subject="crossdock.order.placed.v1",
        message_name="crossdock.events.v1.OrderPlaced",
        file_descriptor_set=b"\n\x00",
    )


def _violated_fields(message: Message) -> set[str]:
    """Field paths named by the violations, e.g. {"order.lines[0].quantity"}; "" is the message."""
    return {v.field or "<message>" for v in violations_of(message)}


VALID: list[Callable[[], Message]] = [
    _create_order,
    _reserve,
    _rates,
    _register,
    lambda: shipment.GetShipmentRequest(shipment_id=f"shp_{ULID}"),
    lambda: billing.ListInvoicesRequest(partner_id=f"ptn_{ULID}", page_size=100),
]


@pytest.mark.parametrize("build", VALID, ids=lambda b: type(b()).__name__)
def test_valid_requests_pass(build: Callable[[], Message]) -> None:
    assert violations_of(build()) == []


def _mutate(build: Callable[[], Message], change: Callable[[Message], None]) -> Message:
    message = build()
    change(message)
    return message


INVALID: list[tuple[str, Callable[[], Message], set[str]]] = [
    (
        "order: missing ship-to, zero quantity, bad currency",
        lambda: _mutate(
            _create_order,
            lambda m: (
                m.order.ClearField("ship_to"),
                setattr(m.order.lines[0], "quantity", 0),
                setattr(m.order, "currency_code", "usd"),
            ),
        ),
        # "order": the lines are still in USD, so the currency-consistency rule fires too.
        {"order", "order.ship_to", "order.lines[0].quantity", "order.currency_code"},
    ),
    (
        "order: bad partner id and empty lines",
        lambda: _mutate(
            _create_order,
            lambda m: (setattr(m, "partner_id", "partner-1"), m.order.ClearField("lines")),
        ),
        {"partner_id", "order.lines"},
    ),
    (
        "order: bad country code in the address",
        lambda: _mutate(_create_order, lambda m: setattr(m.order.ship_to, "country_code", "USA")),
        {"order.ship_to.country_code"},
    ),
    (
        "order: line in another currency breaks the order-level rule",
        lambda: _mutate(
            _create_order,
            lambda m: m.order.lines[0].unit_price.CopyFrom(
                common_pb2.Money(currency_code="EUR", units=1)
            ),
        ),
        {"order"},  # a message-level rule on OrderInput names the message path
    ),
    (
        "order: page size above the bound",
        lambda: order.ListOrdersRequest(page_size=501),
        {"page_size"},
    ),
    (
        "order: malformed order id",
        lambda: order.GetOrderRequest(order_id="12345"),
        {"order_id"},
    ),
    (
        "order: return line with no disposition or reason",
        lambda: order.CreateReturnRequest(
            order_id=f"ord_{ULID}",
            order_return=order.ReturnInput(
                lines=[order.ReturnLineInput(order_line_number=1, quantity=1)]
            ),
        ),
        {"order_return.lines[0].disposition", "order_return.lines[0].reason"},
    ),
    (
        "inventory: negative quantity and bad location",
        lambda: _mutate(
            _reserve,
            lambda m: (setattr(m.lines[0], "quantity", -1), setattr(m, "location_id", "wh east")),
        ),
        {"lines[0].quantity", "location_id"},
    ),
    (
        "inventory: adjustment of zero with no reason",
        lambda: inventory.AdjustStockRequest(
            sku="SKU-1", location_id="WH-EAST", quantity_delta=0, idempotency_key="adjust-0001"
        ),
        {"quantity_delta", "reason"},
    ),
    (
        "inventory: unknown SKU format in availability",
        lambda: inventory.GetAvailabilityRequest(skus=["ok-sku", "bad sku!"]),
        {"skus[1]"},
    ),
    (
        "shipment: malformed shipment id",
        lambda: shipment.GetTrackingRequest(shipment_id="shp_123"),
        {"shipment_id"},
    ),
    (
        "billing: page size negative and bad order filter",
        lambda: billing.ListInvoicesRequest(page_size=-1, order_id="ord_x"),
        {"page_size", "order_id"},
    ),
    (
        "carrier: no parcels and a negative weight",
        lambda: _mutate(
            _rates,
            lambda m: (
                setattr(m.parcels[0].weight, "value", -2.0),
                m.ClearField("ship_to"),
            ),
        ),
        {"parcels[0].weight.value", "ship_to"},
    ),
    (
        "carrier: booking with a short idempotency key",
        lambda: carrier_service_pb2.BookLabelRequest(
            idempotency_key="k",
            rate_id=f"rte_{ULID}",
            ship_from=_address(),
            ship_to=_address(),
            parcels=_rates().parcels,
        ),
        {"idempotency_key"},
    ),
    (
        "registry: bad subject and empty descriptor set",
        lambda: _mutate(
            _register,
            lambda m: (
                setattr(m, "subject", "Order Placed"),
                setattr(m, "file_descriptor_set", b""),
            ),
        ),
        {"subject", "file_descriptor_set"},
    ),
    (
        "registry: setting the unspecified mode",
        lambda: registry.SetConfigRequest(
            compatibility=registry_pb2.COMPATIBILITY_MODE_UNSPECIFIED
        ),
        {"compatibility"},
    ),
]


@pytest.mark.parametrize(("case", "build", "fields"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_requests_name_the_violating_fields(
    case: str, build: Callable[[], Message], fields: set[str]
) -> None:
    assert _violated_fields(build()) == fields, case


def test_money_sign_rule_is_enforced() -> None:
    mixed = common_pb2.Money(currency_code="USD", units=1, nanos=-5)
    assert [(v.field, v.rule_id) for v in violations_of(mixed)] == [("", "money.sign")]


def test_order_status_enum_is_not_accepted_as_input() -> None:
    # Server-owned fields such as status do not exist on OrderInput at all.
    assert "status" not in order.OrderInput.DESCRIPTOR.fields_by_name
    assert "order_id" not in order.OrderInput.DESCRIPTOR.fields_by_name
    assert order_pb2.Order.DESCRIPTOR.fields_by_name["status"] is not None
