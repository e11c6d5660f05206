"""The allocation planner: which warehouse reserves which units of an order.

Rules, in order:
1. If one location can fill every line, use it: one shipment is cheaper than several.
2. Otherwise split greedily: repeatedly take the location covering the most still-unplanned
   units, until nothing more can be covered. This keeps the number of shipments small.
3. Whatever no location has is a shortfall; the saga backorders it (and holds or ships the
   rest according to the backorder policy, see `release_now`).

Ties are broken deterministically, so the same inputs always give the same plan:
caller rank (e.g. distance to the ship-to; lower first, unranked last), then the most available
units of the demanded SKUs (a fuller warehouse is less likely to lose a race for the last unit),
then location id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.order.domain.model import BackorderPolicy, HeldLine

# sku -> location id -> units available to promise
Availability = Mapping[str, Mapping[str, int]]

_UNRANKED = 1 << 30


@dataclass(frozen=True)
class PlannedReservation:
    """Units to reserve at one location."""

    location_id: str
    lines: tuple[HeldLine, ...]


@dataclass(frozen=True)
class AllocationPlan:
    """Reservations to request, one per location, and the units nobody has."""

    reservations: tuple[PlannedReservation, ...]
    shortfalls: tuple[HeldLine, ...]

    @property
    def single_location(self) -> bool:
        """True when the whole demand is planned from one location."""
        return len(self.reservations) == 1 and not self.shortfalls


def plan_allocation(
    demand: Sequence[HeldLine],
    availability: Availability,
    location_rank: Mapping[str, int] | None = None,
) -> AllocationPlan:
    """Plan reservations for `demand` (units per order line) against `availability`.

    Never plans more than a location has of a SKU, nor more than a line needs; planned plus
    shortfall always equals the demand of every line.
    """
    rank = location_rank or {}
    lines = sorted((d for d in demand if d.quantity > 0), key=lambda d: d.line_number)
    left = {
        (sku, location): max(0, units)
        for sku, per_location in availability.items()
        for location, units in per_location.items()
    }
    locations = sorted({location for _, location in left})

    def preference(location: str) -> tuple[int, int, str]:
        stock = sum(left.get((sku, location), 0) for sku in {d.sku for d in lines})
        return (rank.get(location, _UNRANKED), -stock, location)

    whole = [loc for loc in locations if _covers_all(lines, left, loc)]
    if whole:
        best = min(whole, key=preference)
        return AllocationPlan((PlannedReservation(best, tuple(lines)),), ())

    need = {d.line_number: d.quantity for d in lines}
    planned: list[PlannedReservation] = []
    while any(need.values()):
        coverage = {loc: _coverage(lines, need, left, loc) for loc in locations}
        best_units = max(coverage.values(), default=0)
        if best_units == 0:
            break
        best = min((loc for loc in locations if coverage[loc] == best_units), key=preference)
        taken = _take(lines, need, left, best)
        planned.append(PlannedReservation(best, taken))
        locations.remove(best)
    shortfalls = tuple(
        HeldLine(d.line_number, d.sku, need[d.line_number]) for d in lines if need[d.line_number]
    )
    return AllocationPlan(tuple(sorted(planned, key=lambda p: p.location_id)), shortfalls)


def release_now(policy: BackorderPolicy, units_still_open: int) -> bool:
    """Whether reserved units may go to the warehouse while `units_still_open` wait for stock.

    SHIP_AVAILABLE ships what is reserved; SHIP_COMPLETE holds its reservations (keeping the
    stock promised to it) until nothing is missing.
    """
    return units_still_open == 0 or policy is BackorderPolicy.SHIP_AVAILABLE


def _covers_all(lines: Sequence[HeldLine], left: Mapping[tuple[str, str], int], loc: str) -> bool:
    wanted: dict[str, int] = {}
    for d in lines:
        wanted[d.sku] = wanted.get(d.sku, 0) + d.quantity
    return bool(lines) and all(left.get((sku, loc), 0) >= units for sku, units in wanted.items())


def _coverage(
    lines: Sequence[HeldLine],
    need: Mapping[int, int],
    left: Mapping[tuple[str, str], int],
    loc: str,
) -> int:
    """Units of the remaining need `loc` could cover, serving lines in order."""
    stock: dict[str, int] = {}
    covered = 0
    for d in lines:
        have = stock.get(d.sku, left.get((d.sku, loc), 0))
        take = min(have, need[d.line_number])
        stock[d.sku] = have - take
        covered += take
    return covered


def _take(
    lines: Sequence[HeldLine],
    need: dict[int, int],
    left: dict[tuple[str, str], int],
    loc: str,
) -> tuple[HeldLine, ...]:
    taken = []
    for d in lines:
        take = min(left.get((d.sku, loc), 0), need[d.line_number])
        if take:
            left[(d.sku, loc)] -= take
            need[d.line_number] -= take
            taken.append(HeldLine(d.line_number, d.sku, take))
    return tuple(taken)
