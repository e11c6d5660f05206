"""Which quote a shop-and-book label is booked at: the cheapest that meets the service level,
the caller's carrier preference breaking ties (pure rules, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from services.carrier_adapter.domain.model import RateQuote, ServiceLevel

__all__ = ["choose_quote", "meets"]

# How fast each level is: a faster service meets a slower level.
_SPEED = {
    ServiceLevel.ECONOMY: 1,
    ServiceLevel.STANDARD: 2,
    ServiceLevel.EXPEDITED: 3,
    ServiceLevel.OVERNIGHT: 4,
}
# A quote with no promise ranks after every promise.
_NO_PROMISE = 1_000


def meets(offered: ServiceLevel | None, requested: ServiceLevel | None) -> bool:
    """Whether a service of level `offered` meets `requested` (None: standard, the contract's
    default); a service of no known level meets none."""
    if offered is None:
        return False
    return _SPEED[offered] >= _SPEED[requested or ServiceLevel.STANDARD]


def choose_quote(
    quotes: Sequence[RateQuote],
    requested: ServiceLevel | None,
    preference: Sequence[str] = (),
) -> RateQuote | None:
    """The quote to book among `quotes` (in GetRates order, cheapest first), or None when none
    meets the level: the cheapest that meets it, then the earlier carrier in `preference`, then
    the shorter promise, then the earlier in GetRates order (whose rate ids increase in that
    order, so this is the quote shipment chose from GetRates by rate id)."""
    rank = {carrier: i for i, carrier in enumerate(preference)}
    best: tuple[Decimal, int, int, int] | None = None
    chosen: RateQuote | None = None
    for position, quote in enumerate(quotes):
        if not meets(quote.service_level, requested):
            continue
        days = quote.transit_days or 0
        key = (
            quote.total_charge.amount,
            rank.get(quote.carrier, len(rank)),
            days if days > 0 else _NO_PROMISE,
            position,
        )
        if best is None or key < best:
            best, chosen = key, quote
    return chosen
