"""Order validation rules and CreateOrder idempotency."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from services.order.domain import (
    BackorderPolicy,
    FulfillmentSaga,
    Money,
    ensure_same_request,
    input_differences,
    order_fingerprint,
    order_violations,
    validate_order,
)
from services.order.domain.errors import InvalidArgument, OrderReplayMismatch
from tests.order.support import CATALOG, PARTNER, SHIP_TO, Clock, order_input, with_line


def _fields(order: object) -> list[str]:
    return [v.field for v in order_violations(order, CATALOG)]  # type: ignore[arg-type]


def test_a_good_order_has_no_violations() -> None:
    validate_order(order_input(("WIDGET", 2), ("GADGET", 1)), CATALOG)


def test_skus_must_exist_and_be_active() -> None:
    order = order_input(("WIDGET", 1), ("NOPE", 1), ("OLD", 1))
    violations = order_violations(order, CATALOG)
    assert [(v.field, v.rule_id) for v in violations] == [
        ("order.lines[1].sku", "sku_exists"),
        ("order.lines[2].sku", "sku_active"),
    ]


def test_quantities_must_be_positive() -> None:
    order = order_input(("WIDGET", 0), ("GADGET", -3))
    assert _fields(order) == ["order.lines[0].quantity", "order.lines[1].quantity"]


def test_ship_to_must_be_complete() -> None:
    order = replace(
        order_input(("WIDGET", 1)),
        ship_to=replace(SHIP_TO, name=" ", lines=(), postal_code="", country_code="gb"),
    )
    assert _fields(order) == [
        "order.ship_to.name",
        "order.ship_to.postal_code",
        "order.ship_to.lines[0]",
        "order.ship_to.country_code",
    ]


def test_every_price_must_be_in_the_order_currency() -> None:
    order = with_line(
        order_input(("WIDGET", 1), ("GADGET", 1)), 1, unit_price=Money("EUR", Decimal(1))
    )
    violations = order_violations(order, CATALOG)
    assert [(v.field, v.rule_id) for v in violations] == [
        ("order.lines[1].unit_price.currency_code", "order.currency_consistent")
    ]


def test_a_sku_may_appear_once_and_an_order_needs_lines() -> None:
    assert _fields(order_input(("WIDGET", 1), ("WIDGET", 2))) == ["order.lines[1].sku"]
    assert _fields(order_input()) == ["order.lines"]


def test_place_rejects_an_invalid_order_with_every_violation() -> None:
    with pytest.raises(InvalidArgument) as caught:
        FulfillmentSaga().place(
            order_id="ord_1",
            partner_id=PARTNER,
            order_input=order_input(("NOPE", 0)),
            catalog=CATALOG,
            ctx=Clock().ctx(),
        )
    assert [v.field for v in caught.value.violations] == [
        "order.lines[0].quantity",
        "order.lines[0].sku",
    ]


def test_the_same_request_has_the_same_fingerprint() -> None:
    first = order_input(("WIDGET", 2))
    # Re-serialised prices ("2.5" vs "2.50") are still the same request.
    again = with_line(first, 0, unit_price=Money("USD", Decimal("2.5")))
    assert order_fingerprint(PARTNER, first) == order_fingerprint(PARTNER, again)
    assert order_fingerprint(PARTNER, first) != order_fingerprint("ptn_other", first)


def test_replaying_create_order_returns_or_explains() -> None:
    placed = FulfillmentSaga().place(
        order_id="ord_1",
        partner_id=PARTNER,
        order_input=order_input(("WIDGET", 2), ("GADGET", 1)),
        catalog=CATALOG,
        ctx=Clock().ctx(),
    )
    ensure_same_request(placed.order, PARTNER, order_input(("WIDGET", 2), ("GADGET", 1)))

    changed = replace(
        with_line(order_input(("WIDGET", 2), ("GADGET", 1)), 1, quantity=5),
        ship_to=replace(SHIP_TO, city="Paris"),
        backorder_policy=BackorderPolicy.SHIP_COMPLETE,
    )
    with pytest.raises(OrderReplayMismatch) as caught:
        ensure_same_request(placed.order, PARTNER, changed)
    differences = ["order.backorder_policy", "order.lines[1].quantity", "order.ship_to.city"]
    assert caught.value.metadata["differences"] == ",".join(differences)
    assert caught.value.metadata["order_id"] == "ord_1"
    assert caught.value.resource_name == "ord_1"


def test_differences_name_whole_lists_when_lengths_differ() -> None:
    assert input_differences(
        order_input(("WIDGET", 1)), order_input(("WIDGET", 1), ("GADGET", 1))
    ) == ["order.lines"]
