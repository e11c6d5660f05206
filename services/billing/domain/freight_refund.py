"""Freight refunded on returns, by policy: pure arithmetic over an invoice and its credit notes.

A credit note for returned units may carry one freight line (kind FREIGHT, like the invoice's)
refunding part or all of the invoice's freight:

- `none`: never (the default);
- `proportional`: the invoice's freight * units credited / goods units the invoice billed. The
  share is taken on the running total of units credited and rounded down to the currency's minor
  unit, so each note refunds what its units add to that running total: a note is at most one
  minor unit off its exact share, and the note that completes the invoice refunds the remainder,
  so partial returns that together return everything refund exactly the freight;
- `full`: the whole freight, on the credit note that credits the invoice's last billed unit.

Whatever the policy, a note never refunds more than the invoice's freight minus the freight its
earlier credit notes refunded.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

from services.billing.domain.invoicing import Line, LineKind

REFUND_DESCRIPTION = "Freight refund"

# ISO 4217 currencies whose minor unit is not the cent; every other currency has 2 decimals.
# fmt: off
_DECIMALS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}
# fmt: on


class FreightRefund(enum.Enum):
    """How much of an invoice's freight the credit notes for its returned units refund."""

    NONE = "none"
    PROPORTIONAL = "proportional"
    FULL = "full"


def refund_policy_for(
    partner_id: str, default: FreightRefund, by_partner: Mapping[str, FreightRefund]
) -> FreightRefund:
    """The partner's own policy when it has one; the default otherwise."""
    return by_partner.get(partner_id, default)


def minor_unit_decimals(currency: str) -> int:
    """Decimals of the currency's minor unit (ISO 4217): JPY 0, EUR 2, KWD 3."""
    return _DECIMALS.get(currency.upper(), 2)


def _amount(lines: Iterable[Line], kind: LineKind) -> Decimal:
    return sum((x.amount for x in lines if x.kind is kind), Decimal(0))


def _units(lines: Iterable[Line]) -> int:
    return sum(x.quantity for x in lines if x.kind is LineKind.GOODS)


def _share(freight: Decimal, units: int, billed_units: int, decimals: int) -> Decimal:
    """freight * units / billed_units rounded down to the minor unit; all of it at the end.

    Integer division on Decimal is exact, so no context rounding creeps in before the floor.
    """
    if units >= billed_units:
        return freight
    minor_units = freight.scaleb(decimals) * units // billed_units
    return minor_units.scaleb(-decimals)


def freight_refund(
    policy: FreightRefund,
    invoiced: Sequence[Line],
    earlier_credits: Sequence[Line],
    credited: Sequence[Line],
    currency: str,
) -> Decimal:
    """The freight this credit note refunds (0 for none).

    `invoiced` are the invoice's lines, `earlier_credits` every line of its earlier credit
    notes, `credited` the goods lines of this note (already capped at what is left to credit).
    """
    freight = _amount(invoiced, LineKind.FREIGHT)
    left = freight - _amount(earlier_credits, LineKind.FREIGHT)
    billed_units = _units(invoiced)
    units_now = _units(credited)
    if policy is FreightRefund.NONE or left <= 0 or billed_units <= 0 or units_now <= 0:
        return Decimal(0)
    units_before = min(_units(earlier_credits), billed_units)
    units_after = min(units_before + units_now, billed_units)
    if policy is FreightRefund.FULL:
        return left if units_after == billed_units else Decimal(0)
    decimals = minor_unit_decimals(currency)
    share = _share(freight, units_after, billed_units, decimals) - _share(
        freight, units_before, billed_units, decimals
    )
    return max(Decimal(0), min(share, left))


def with_freight_refund(lines: list[Line], refund: Decimal) -> list[Line]:
    """The credit lines followed by one freight line for `refund`, when there is one."""
    if refund <= 0:
        return lines
    return [
        *lines,
        Line(len(lines) + 1, LineKind.FREIGHT, 0, "", REFUND_DESCRIPTION, 1, refund),
    ]
