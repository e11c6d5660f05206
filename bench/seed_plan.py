"""What a seeded order is: its lines, warehouse and the instants of its lifecycle, drawn from a
seed. Pure values; bench/seed_services.py writes them through each service's own code.

Every order is the common case the mesh completes: 1-3 lines of the demo items, all reserved at
one warehouse that stocks them, picked in full into one shipment, booked with the sandbox
carrier, delivered, invoiced on delivery. Its instants step through the lifecycle from placement
to completion (minutes for the warehouse, a day or two in transit).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from localmesh.seed import CURRENCY, DEMO_ITEMS, DEMO_WAREHOUSES, DemoItem, DemoWarehouse

ITEMS = {item.sku: item for item in DEMO_ITEMS}
WAREHOUSES = {warehouse.location_id: warehouse for warehouse in DEMO_WAREHOUSES}
# Completions end this long before the seeding: outside event_flow's default window (1 h) and
# past every check's grace (10 min), so the mesh judges them as settled history.
DEFAULT_SETTLED_FOR = timedelta(hours=2)
# A "recent" seed ends here instead: past every check's grace, inside event_flow's window.
RECENT_SETTLED_FOR = timedelta(minutes=15)


@dataclass(frozen=True)
class PlannedLine:
    line_number: int
    sku: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True)
class Lifecycle:
    """The instants of one order's history, in order."""

    placed: datetime
    reserved: datetime
    picked: datetime
    manifested: datetime
    picked_up: datetime
    in_transit: datetime
    delivered: datetime

    @property
    def invoiced(self) -> datetime:
        return self.delivered + timedelta(milliseconds=150)


@dataclass(frozen=True)
class PlannedOrder:
    index: int
    external_order_id: str
    location_id: str
    lines: tuple[PlannedLine, ...]
    at: Lifecycle
    freight: Decimal
    customer_id: str

    @property
    def warehouse(self) -> DemoWarehouse:
        return WAREHOUSES[self.location_id]

    def item(self, sku: str) -> DemoItem:
        return ITEMS[sku]


def _lifecycle(rng: random.Random, completed: datetime) -> Lifecycle:
    """Back from the completion: transit 1-3 days, pick 2-30 min, reserve in a second."""
    delivered = completed - timedelta(milliseconds=150)
    in_transit = delivered - timedelta(hours=rng.uniform(20, 60))
    picked_up = in_transit - timedelta(hours=rng.uniform(1, 6))
    manifested = picked_up - timedelta(hours=rng.uniform(1, 4))
    picked = manifested - timedelta(seconds=rng.uniform(1, 5))
    reserved = picked - timedelta(minutes=rng.uniform(2, 30))
    placed = reserved - timedelta(milliseconds=rng.uniform(20, 400))
    return Lifecycle(placed, reserved, picked, manifested, picked_up, in_transit, delivered)


def plan_orders(
    count: int, *, seed: int, days: float, settled_for: timedelta, now: datetime | None = None
) -> Iterator[PlannedOrder]:
    """`count` orders completed between `days` ago and `settled_for` ago, oldest first."""
    if count < 1:
        raise ValueError(f"count must be at least 1 (got {count})")
    if days <= 0:
        raise ValueError(f"days must be positive (got {days})")
    now = now or datetime.now(UTC)
    end = now - settled_for
    span = timedelta(days=days)
    if span <= settled_for:
        raise ValueError(f"days ({days}) must reach further back than {settled_for}")
    start = end - span + settled_for
    step = (end - start) / count
    rng = random.Random(seed)
    locations: Sequence[str] = sorted(WAREHOUSES)
    for index in range(count):
        location_id = rng.choice(locations)
        stocked = sorted(WAREHOUSES[location_id].stock)
        skus = rng.sample(stocked, rng.randint(1, min(3, len(stocked))))
        lines = tuple(
            PlannedLine(
                number,
                sku,
                rng.randint(1, 3),
                Decimal(ITEMS[sku].unit_price_cents).scaleb(-2),
            )
            for number, sku in enumerate(skus, start=1)
        )
        completed = start + step * index + step * rng.random()
        yield PlannedOrder(
            index=index,
            external_order_id=f"seed-{seed}-{index:07d}",
            location_id=location_id,
            lines=lines,
            at=_lifecycle(rng, completed),
            freight=Decimal(rng.randint(499, 2499)).scaleb(-2),
            customer_id=f"cust-{rng.randint(1, 5000):05d}",
        )


def currency() -> str:
    return CURRENCY
