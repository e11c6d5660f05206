"""Rate shopping: the cheapest quote that meets the order's service level.

A faster service meets a slower level (overnight meets expedited). Among equally cheap quotes
the configured carrier preference decides, then the shorter promise, then the rate id so the
choice is stable across retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from services.shipment.domain.model import ServiceLevel

# UNSPECIFIED means standard (the contract's documented default).
_SPEED = {
    ServiceLevel.UNSPECIFIED: 2,
    ServiceLevel.ECONOMY: 1,
    ServiceLevel.STANDARD: 2,
    ServiceLevel.EXPEDITED: 3,
    ServiceLevel.OVERNIGHT: 4,
}


@dataclass(frozen=True)
class Quote:
    rate_id: str
    carrier: str
    service_level: ServiceLevel
    amount: Decimal
    currency: str
    transit_days: int = 0


def meets(offered: ServiceLevel, requested: ServiceLevel) -> bool:
    return _SPEED[offered] >= _SPEED[requested] and offered != ServiceLevel.UNSPECIFIED


def choose(
    quotes: Sequence[Quote], requested: ServiceLevel, preference: Sequence[str] = ()
) -> Quote | None:
    """The quote to book, or None when no quote meets the level."""
    eligible = [q for q in quotes if meets(q.service_level, requested)]
    if not eligible:
        return None
    rank = {carrier: i for i, carrier in enumerate(preference)}

    def key(q: Quote) -> tuple[Decimal, int, int, str]:
        promise = q.transit_days if q.transit_days > 0 else 1_000
        return (q.amount, rank.get(q.carrier, len(rank)), promise, q.rate_id)

    return min(eligible, key=key)
