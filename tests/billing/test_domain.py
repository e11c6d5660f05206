"""Billing's pure rules: invoice amounts, Decimal exactness, credit notes, numbers, policy."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.billing.domain import invoicing as inv
from services.kit.values import to_decimal, to_units_nanos

PRICES = {
    1: inv.OrderLinePrice(1, "SKU-A", Decimal("0.10")),
    2: inv.OrderLinePrice(2, "SKU-B", Decimal("19.99")),
}


def test_invoice_is_goods_lines_plus_one_freight_line() -> None:
    shipped = [
        inv.ShippedItem(2, "SKU-B", 1),
        inv.ShippedItem(1, "SKU-A", 3),
        inv.ShippedItem(2, "SKU-B", 2),  # a second package of the same order line
    ]
    lines = inv.invoice_lines(PRICES, shipped, Decimal("7.45"))
    assert [(x.kind, x.order_line_number, x.quantity) for x in lines] == [
        (inv.LineKind.GOODS, 1, 3),
        (inv.LineKind.GOODS, 2, 3),
        (inv.LineKind.FREIGHT, 0, 1),
    ]
    assert [x.line_number for x in lines] == [1, 2, 3]
    # 3 x 0.10 is exactly 0.30 in Decimal (0.30000000000000004 in float).
    assert lines[0].amount == Decimal("0.30")
    assert inv.total(lines) == Decimal("0.30") + Decimal("59.97") + Decimal("7.45")
    assert inv.total(lines) == Decimal("67.72")


def test_unpriced_order_line_is_refused() -> None:
    with pytest.raises(inv.PricesMissing):
        inv.invoice_lines(PRICES, [inv.ShippedItem(9, "SKU-Z", 1)], Decimal(0))


def test_final_freight_charge_wins_and_is_announced_only_when_it_differs() -> None:
    assert inv.freight_to_bill(Decimal("5.00"), None) == (Decimal("5.00"), False)
    assert inv.freight_to_bill(Decimal("5.00"), Decimal("6.10")) == (Decimal("6.10"), True)
    assert inv.freight_to_bill(Decimal("5.00"), Decimal("5.0")) == (Decimal("5.0"), False)
    assert inv.freight_to_bill(None, Decimal("4.00")) == (Decimal("4.00"), False)


def test_credit_lines_use_invoiced_prices_and_never_exceed_invoiced_quantity() -> None:
    invoiced = inv.invoice_lines(
        PRICES, [inv.ShippedItem(1, "SKU-A", 3), inv.ShippedItem(2, "SKU-B", 1)], Decimal("5")
    )
    credit = inv.credit_lines(
        invoiced, [inv.ShippedItem(2, "SKU-B", 5), inv.ShippedItem(1, "SKU-A", 1)]
    )
    assert [(x.order_line_number, x.quantity, x.unit_price) for x in credit] == [
        (1, 1, Decimal("0.10")),
        (2, 1, Decimal("19.99")),
    ]
    assert inv.total(credit) == Decimal("20.09")
    with pytest.raises(inv.PricesMissing):
        inv.credit_lines(invoiced, [inv.ShippedItem(7, "SKU-Q", 1)])
    # Two of the three SKU-A units were credited before: only one is left to credit.
    later = inv.credit_lines(invoiced, [inv.ShippedItem(1, "SKU-A", 3)], {1: 2})
    assert [(x.order_line_number, x.quantity) for x in later] == [(1, 1)]
    assert inv.credit_lines(invoiced, [inv.ShippedItem(1, "SKU-A", 1)], {1: 3}) == []


def test_numbers_and_policy() -> None:
    assert inv.format_number("INV", 2026, 1) == "INV-2026-000001"
    assert inv.format_number("CRN", 2026, 42) == "CRN-2026-000042"
    partners = frozenset({"ptn_A"})
    assert inv.policy_for("ptn_A", partners) is inv.InvoicePolicy.ON_SHIP
    assert inv.policy_for("ptn_B", partners) is inv.InvoicePolicy.ON_DELIVERY
    customers = frozenset({"CUST-9"})
    assert inv.policy_for("ptn_B", partners, "CUST-9", customers) is inv.InvoicePolicy.ON_SHIP
    assert inv.policy_for("ptn_B", partners, "CUST-1", customers) is inv.InvoicePolicy.ON_DELIVERY
    assert inv.policy_for("ptn_B", partners, "", customers) is inv.InvoicePolicy.ON_DELIVERY


@pytest.mark.parametrize(
    ("amount", "units", "nanos"),
    [("12.50", 12, 500_000_000), ("-0.75", 0, -750_000_000), ("-3.000000001", -3, -1), ("0", 0, 0)],
)
def test_money_round_trips_exactly(amount: str, units: int, nanos: int) -> None:
    assert to_units_nanos(Decimal(amount)) == (units, nanos)
    assert to_decimal(units, nanos) == Decimal(amount)


def test_sub_nano_money_is_refused() -> None:
    with pytest.raises(ValueError):
        to_units_nanos(Decimal("0.0000000001"))
