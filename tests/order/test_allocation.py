"""The allocation planner: single location first, then a deterministic split."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from services.order.domain import BackorderPolicy, HeldLine, plan_allocation, release_now
from tests.order.support import EAST, NORTH, WEST

DEMAND = (HeldLine(1, "WIDGET", 4), HeldLine(2, "GADGET", 2))


def _plan_summary(plan: object) -> list[tuple[str, list[tuple[int, int]]]]:
    return [
        (r.location_id, [(h.line_number, h.quantity) for h in r.lines])
        for r in plan.reservations  # type: ignore[attr-defined]
    ]


def test_one_location_that_fills_everything_wins_over_a_split() -> None:
    availability = {
        "WIDGET": {EAST: 4, WEST: 100},
        "GADGET": {EAST: 0, WEST: 2, NORTH: 9},
    }
    plan = plan_allocation(DEMAND, availability)
    assert plan.single_location
    assert _plan_summary(plan) == [(WEST, [(1, 4), (2, 2)])]


def test_ties_between_complete_locations_go_to_the_fuller_then_the_lower_id() -> None:
    fuller = plan_allocation(DEMAND, {"WIDGET": {EAST: 4, WEST: 9}, "GADGET": {EAST: 2, WEST: 2}})
    assert _plan_summary(fuller)[0][0] == WEST
    equal = plan_allocation(DEMAND, {"WIDGET": {WEST: 5, EAST: 5}, "GADGET": {WEST: 2, EAST: 2}})
    assert _plan_summary(equal)[0][0] == EAST


def test_caller_rank_comes_first() -> None:
    availability = {"WIDGET": {EAST: 4, WEST: 9}, "GADGET": {EAST: 2, WEST: 2}}
    plan = plan_allocation(DEMAND, availability, location_rank={EAST: 0, WEST: 1})
    assert _plan_summary(plan)[0][0] == EAST


def test_split_takes_the_location_covering_most_first() -> None:
    availability = {"WIDGET": {EAST: 1, WEST: 3, NORTH: 4}, "GADGET": {EAST: 2}}
    plan = plan_allocation(DEMAND, availability)
    # NORTH covers 4 units, EAST 3, WEST 3: NORTH first; EAST then covers the gadgets.
    assert _plan_summary(plan) == [(EAST, [(2, 2)]), (NORTH, [(1, 4)])]
    assert plan.shortfalls == ()


def test_split_ties_go_to_the_fuller_location_then_the_lower_id() -> None:
    availability = {"WIDGET": {EAST: 3, WEST: 1, NORTH: 1}, "GADGET": {EAST: 0, WEST: 2}}
    plan = plan_allocation(DEMAND, availability)
    # EAST and WEST both cover 3 units and hold 3 of the SKUs: the lower id goes first.
    assert _plan_summary(plan) == [(EAST, [(1, 3)]), (WEST, [(1, 1), (2, 2)])]


def test_what_no_location_has_is_a_shortfall() -> None:
    plan = plan_allocation(DEMAND, {"WIDGET": {EAST: 1}, "GADGET": {}})
    assert _plan_summary(plan) == [(EAST, [(1, 1)])]
    assert plan.shortfalls == (HeldLine(1, "WIDGET", 3), HeldLine(2, "GADGET", 2))


def test_release_now_respects_the_backorder_policy() -> None:
    assert release_now(BackorderPolicy.SHIP_AVAILABLE, units_still_open=3)
    assert not release_now(BackorderPolicy.SHIP_COMPLETE, units_still_open=3)
    assert release_now(BackorderPolicy.SHIP_COMPLETE, units_still_open=0)


SKUS = ("A", "B", "C")
LOCATIONS = ("L1", "L2", "L3", "L4")
demand_strategy = st.lists(st.integers(0, 12), min_size=3, max_size=3).map(
    lambda qs: [
        HeldLine(n, sku, q) for n, (sku, q) in enumerate(zip(SKUS, qs, strict=True), start=1)
    ]
)
availability_strategy = st.dictionaries(
    st.sampled_from(SKUS),
    st.dictionaries(st.sampled_from(LOCATIONS), st.integers(-2, 15)),
    max_size=3,
)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(demand=demand_strategy, availability=availability_strategy, seed=st.integers(0, 2**16))
def test_plans_are_feasible_complete_and_deterministic(
    demand: list[HeldLine], availability: dict[str, dict[str, int]], seed: int
) -> None:
    plan = plan_allocation(demand, availability)
    planned: dict[tuple[str, str], int] = {}
    per_line = {d.line_number: 0 for d in demand}
    for reservation in plan.reservations:
        for held in reservation.lines:
            planned[(held.sku, reservation.location_id)] = (
                planned.get((held.sku, reservation.location_id), 0) + held.quantity
            )
            per_line[held.line_number] += held.quantity
    for (sku, location), units in planned.items():
        assert units <= max(0, availability.get(sku, {}).get(location, 0))
    for line in plan.shortfalls:
        per_line[line.line_number] += line.quantity
    assert per_line == {d.line_number: d.quantity for d in demand}
    # Never short while some location still has the SKU unplanned.
    for line in plan.shortfalls:
        for location, units in availability.get(line.sku, {}).items():
            assert planned.get((line.sku, location), 0) >= max(0, units)
    # One location per reservation, and the same plan whatever the input order.
    assert len({r.location_id for r in plan.reservations}) == len(plan.reservations)
    shuffled = {
        sku: dict(random.Random(seed).sample(list(per.items()), len(per)))
        for sku, per in availability.items()
    }
    assert plan_allocation(list(reversed(demand)), shuffled) == plan
