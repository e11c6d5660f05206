"""Freight refunded on returns, by policy: the pure arithmetic (services/billing/domain)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.billing.config import BillingConfig, partner_freight_refunds
from services.billing.domain import freight_refund as fr
from services.billing.domain import invoicing as inv
from services.kit.config import ConfigError

PRICES = {
    1: inv.OrderLinePrice(1, "SKU-A", Decimal("12.50")),
    2: inv.OrderLinePrice(2, "SKU-B", Decimal("0.10")),
}
PARTNER = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"


def invoice(freight: str, a: int = 3, b: int = 4) -> list[inv.Line]:
    """a x SKU-A and b x SKU-B, then the freight line."""
    shipped = [inv.ShippedItem(1, "SKU-A", a), inv.ShippedItem(2, "SKU-B", b)]
    return inv.invoice_lines(PRICES, shipped, Decimal(freight))


def credit_in_turn(
    policy: fr.FreightRefund,
    invoiced: Sequence[inv.Line],
    returns: Sequence[Sequence[inv.ShippedItem]],
    currency: str = "EUR",
) -> list[list[inv.Line]]:
    """Each return's credit-note lines, posted one after the other as app.post_credit_notes
    does: goods capped by earlier notes, then the freight refund line."""
    notes: list[list[inv.Line]] = []
    for returned in returns:
        earlier = [line for note in notes for line in note]
        credited: dict[int, int] = {}
        for line in earlier:
            if line.kind is inv.LineKind.GOODS:
                credited[line.order_line_number] = (
                    credited.get(line.order_line_number, 0) + line.quantity
                )
        goods = inv.credit_lines(invoiced, returned, credited)
        if not goods:
            continue
        refund = fr.freight_refund(policy, invoiced, earlier, goods, currency)
        notes.append(fr.with_freight_refund(goods, refund))
    return notes


def refunds(notes: Sequence[Sequence[inv.Line]]) -> list[Decimal]:
    return [
        sum((x.amount for x in note if x.kind is inv.LineKind.FREIGHT), Decimal(0))
        for note in notes
    ]


def test_three_partial_returns_refund_exactly_the_freight_proportionally() -> None:
    invoiced = invoice("10.00")  # 7 goods units: 10.00 / 7 is 1.428571...
    notes = credit_in_turn(
        fr.FreightRefund.PROPORTIONAL,
        invoiced,
        [
            [inv.ShippedItem(1, "SKU-A", 2)],
            [inv.ShippedItem(2, "SKU-B", 2)],
            [inv.ShippedItem(1, "SKU-A", 1), inv.ShippedItem(2, "SKU-B", 2)],
        ],
    )
    # Running shares rounded down: 2/7 -> 2.85, 4/7 -> 5.71, 7/7 -> 10.00 (the remainder).
    assert refunds(notes) == [Decimal("2.85"), Decimal("2.86"), Decimal("4.29")]
    assert sum(refunds(notes)) == Decimal("10.00")
    # The refund is its own line, after the goods, like the invoice's freight line.
    last = notes[2]
    assert [(x.line_number, x.kind, x.quantity) for x in last] == [
        (1, inv.LineKind.GOODS, 1),
        (2, inv.LineKind.GOODS, 2),
        (3, inv.LineKind.FREIGHT, 1),
    ]
    assert last[2].description == fr.REFUND_DESCRIPTION
    assert last[2].order_line_number == 0
    assert inv.total(last) == Decimal("12.50") + Decimal("0.20") + Decimal("4.29")


def test_proportional_refund_is_rounded_to_the_currencys_minor_unit() -> None:
    invoiced = invoice("1000", a=3, b=0)  # 3 units
    one_unit = [[inv.ShippedItem(1, "SKU-A", 1)]] * 3
    yen = credit_in_turn(fr.FreightRefund.PROPORTIONAL, invoiced, one_unit, "JPY")
    assert refunds(yen) == [Decimal(333), Decimal(333), Decimal(334)]
    dinar = credit_in_turn(fr.FreightRefund.PROPORTIONAL, invoiced, one_unit, "KWD")
    assert refunds(dinar) == [Decimal("333.333"), Decimal("333.333"), Decimal("333.334")]
    euro = credit_in_turn(fr.FreightRefund.PROPORTIONAL, invoiced, one_unit, "EUR")
    assert refunds(euro) == [Decimal("333.33"), Decimal("333.33"), Decimal("333.34")]
    assert fr.minor_unit_decimals("jpy") == 0
    assert fr.minor_unit_decimals("XYZ") == 2


def test_freight_finer_than_the_minor_unit_is_refunded_whole_by_the_last_note() -> None:
    invoiced = invoice("6.115", a=2, b=0)
    notes = credit_in_turn(
        fr.FreightRefund.PROPORTIONAL, invoiced, [[inv.ShippedItem(1, "SKU-A", 1)]] * 2
    )
    assert refunds(notes) == [Decimal("3.05"), Decimal("3.065")]


def test_full_refund_comes_whole_on_the_note_that_credits_the_last_unit() -> None:
    invoiced = invoice("7.45")
    notes = credit_in_turn(
        fr.FreightRefund.FULL,
        invoiced,
        [
            [inv.ShippedItem(2, "SKU-B", 4)],
            [inv.ShippedItem(1, "SKU-A", 2)],
            [inv.ShippedItem(1, "SKU-A", 5)],  # more than is left: one unit is credited
        ],
    )
    assert refunds(notes) == [Decimal(0), Decimal(0), Decimal("7.45")]
    assert [x.kind for x in notes[0]] == [inv.LineKind.GOODS]  # no zero freight line
    assert [(x.kind, x.quantity) for x in notes[2]] == [
        (inv.LineKind.GOODS, 1),
        (inv.LineKind.FREIGHT, 1),
    ]


def test_no_refund_under_none_or_without_freight() -> None:
    everything = [[inv.ShippedItem(1, "SKU-A", 3), inv.ShippedItem(2, "SKU-B", 4)]]
    for policy in fr.FreightRefund:
        notes = credit_in_turn(policy, invoice("0"), everything)
        assert [x.kind for x in notes[0]] == [inv.LineKind.GOODS] * 2
    notes = credit_in_turn(fr.FreightRefund.NONE, invoice("5.00"), everything)
    assert refunds(notes) == [Decimal(0)]


def test_never_more_than_the_freight_left_after_earlier_refunds() -> None:
    invoiced = invoice("10.00")
    goods = inv.credit_lines(invoiced, [inv.ShippedItem(1, "SKU-A", 3)])
    # An earlier note credited the 4 SKU-B units with 9.00 of freight (under another policy).
    earlier = [
        inv.Line(1, inv.LineKind.GOODS, 2, "SKU-B", "Return of SKU-B", 4, Decimal("0.10")),
        inv.Line(2, inv.LineKind.FREIGHT, 0, "", fr.REFUND_DESCRIPTION, 1, Decimal("9.00")),
    ]
    for policy in (fr.FreightRefund.PROPORTIONAL, fr.FreightRefund.FULL):
        assert fr.freight_refund(policy, invoiced, earlier, goods, "EUR") == Decimal("1.00")
    # All of the freight refunded already: nothing more, whatever is credited.
    earlier[1] = inv.Line(2, inv.LineKind.FREIGHT, 0, "", "", 1, Decimal("10.00"))
    for policy in fr.FreightRefund:
        assert fr.freight_refund(policy, invoiced, earlier, goods, "EUR") == Decimal(0)


def test_a_policy_switched_on_midway_refunds_only_the_later_units_share() -> None:
    invoiced = invoice("7.00")  # 7 units: 1.00 each
    first = credit_in_turn(fr.FreightRefund.NONE, invoiced, [[inv.ShippedItem(1, "SKU-A", 3)]])
    goods = inv.credit_lines(invoiced, [inv.ShippedItem(2, "SKU-B", 4)])
    refund = fr.freight_refund(fr.FreightRefund.PROPORTIONAL, invoiced, first[0], goods, "EUR")
    assert refund == Decimal("4.00")


@given(
    freight_minor=st.integers(min_value=0, max_value=10**9),
    decimals=st.sampled_from([("JPY", 0), ("EUR", 2), ("KWD", 3)]),
    a=st.integers(min_value=0, max_value=40),
    b=st.integers(min_value=1, max_value=40),
    cuts=st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=8),
)
def test_proportional_refunds_of_any_split_sum_to_the_freight_never_more(
    freight_minor: int,
    decimals: tuple[str, int],
    a: int,
    b: int,
    cuts: list[int],
) -> None:
    currency, places = decimals
    freight = Decimal(freight_minor).scaleb(-places)
    invoiced = inv.invoice_lines(
        PRICES, [inv.ShippedItem(1, "SKU-A", a), inv.ShippedItem(2, "SKU-B", b)], freight
    )
    billed = a + b
    # Returns of `cut` SKU-A units then SKU-B units, until every unit is back.
    returns: list[list[inv.ShippedItem]] = []
    left_a, left_b = a, b
    for cut in [*cuts, billed]:
        take_a = min(cut, left_a)
        take_b = min(cut - take_a, left_b)
        left_a, left_b = left_a - take_a, left_b - take_b
        returns.append([inv.ShippedItem(1, "SKU-A", take_a), inv.ShippedItem(2, "SKU-B", take_b)])
    notes = credit_in_turn(fr.FreightRefund.PROPORTIONAL, invoiced, returns, currency)
    paid = refunds(notes)
    assert sum(paid) == freight
    running, units = Decimal(0), 0
    minor = Decimal(1).scaleb(-places)
    for note, refund in zip(notes, paid, strict=True):
        assert refund >= 0
        assert refund == refund.quantize(minor)
        running += refund
        assert running <= freight
        units += sum(x.quantity for x in note if x.kind is inv.LineKind.GOODS)
        exact = freight * units / billed
        assert exact - minor < running <= exact  # within one minor unit of the exact share


def test_partner_policy_overrides_the_default() -> None:
    by_partner = {PARTNER: fr.FreightRefund.FULL}
    assert fr.refund_policy_for(PARTNER, fr.FreightRefund.NONE, by_partner) is fr.FreightRefund.FULL
    assert (
        fr.refund_policy_for("ptn_OTHER", fr.FreightRefund.PROPORTIONAL, by_partner)
        is fr.FreightRefund.PROPORTIONAL
    )


BASE_ENV = {
    "CROSSDOCK_BILLING_DB_URL": "sqlite://",
    "CROSSDOCK_BILLING_GRPC_PORT": "0",
    "CROSSDOCK_BILLING_METRICS_PORT": "0",
}


def test_settings_default_to_no_refund_and_read_per_partner_policies() -> None:
    settings = BillingConfig.from_env(BASE_ENV).billing_settings()
    assert settings.return_freight_refund is fr.FreightRefund.NONE
    assert settings.return_freight_refund_by_partner == {}
    other = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8Q"
    settings = BillingConfig.from_env(
        {
            **BASE_ENV,
            "CROSSDOCK_BILLING_RETURN_FREIGHT_REFUND": "proportional",
            "CROSSDOCK_BILLING_RETURN_FREIGHT_REFUND_BY_PARTNER": f" {PARTNER}=full, {other}=none",
        }
    ).billing_settings()
    assert settings.return_freight_refund is fr.FreightRefund.PROPORTIONAL
    assert settings.return_freight_refund_by_partner == {
        PARTNER: fr.FreightRefund.FULL,
        other: fr.FreightRefund.NONE,
    }


@pytest.mark.parametrize(
    "text",
    [f"{PARTNER}=half", f"{PARTNER}", "ptn_short=full", f"{PARTNER}=full,{PARTNER}=none"],
)
def test_malformed_per_partner_policies_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape("<partner id>=<none|proportional|full> pairs")):
        partner_freight_refunds(text)
    with pytest.raises(ConfigError) as caught:
        BillingConfig.from_env(
            {**BASE_ENV, "CROSSDOCK_BILLING_RETURN_FREIGHT_REFUND_BY_PARTNER": text}
        )
    assert "CROSSDOCK_BILLING_RETURN_FREIGHT_REFUND_BY_PARTNER" in str(caught.value)


def test_unknown_default_policy_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        BillingConfig.from_env({**BASE_ENV, "CROSSDOCK_BILLING_RETURN_FREIGHT_REFUND": "half"})
    assert "CROSSDOCK_BILLING_RETURN_FREIGHT_REFUND must be one of none, proportional, full" in str(
        caught.value
    )
