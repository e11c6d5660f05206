"""`make bench-reconcile` step 1: seed a stopped mesh's databases with N completed orders.

Each order is a whole order-to-cash history, written in every service's database through that
service's own domain and store code (bench/seed_history.py for order's, bench/seed_services.py
for the others'), so it reads back exactly like an order the mesh completed: order COMPLETED
with its lines, saga records and timeline; inventory's reservation CONSUMED by its pick (on
hand down by what shipped, reserved unchanged; a purchase-order receipt per batch and warehouse
brings the units in first); shipment DELIVERED with its packages, label, scans and tracking
number; carrier-adapter's label BOOKED under the shipment's id with the same tracking number;
billing's prices, freight and invoice, numbered from the gapless INV series. Batches of
`--batch` orders (1,000) commit as one transaction per service. Ids and figures come from
`--seed`: the same seed writes the same histories.

Times: completions spread over the past `--days` days up to 2 h ago, so every check's grace
has passed and event_flow's window (the last hour) holds none of their events; no outbox or
inbox rows are written then (event_flow would not compare them, the relays' retention would
purge them). `--recent` ends the spread 15 min ago instead (past every grace, inside
event_flow's window) and writes the events too (bench/seed_events.py): each in its producer's
outbox, sent at the instant it happened, and applied in every consuming service's inbox, so
event_flow compares the recent ones and finds them applied.

The data dir is a stopped local mesh's, or a fresh one: each database is migrated to its
service's schema first, and the demo items, warehouses and partner are created when missing
(bench/seed_prepare.py), so a mesh started there afterwards finds them. PostgreSQL meshes: pass
each service's URL with `--db-url service=URL` (order, inventory, shipment, carrier-adapter,
billing, gateway).

    .venv/bin/python bench/seed_orders.py --data-dir DIR [--orders 100000] [--seed 1]
        [--days 30] [--batch 1000] [--recent] [--db-url order=postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import seed_events, seed_prepare  # noqa: E402
from bench import seed_history as order_steps  # noqa: E402
from bench import seed_services as steps  # noqa: E402
from bench.seed_plan import (  # noqa: E402
    DEFAULT_SETTLED_FOR,
    RECENT_SETTLED_FOR,
    PlannedOrder,
    plan_orders,
)
from gateway.adapters.store import queries as gateway_queries  # noqa: E402
from gateway.auth import new_partner_id  # noqa: E402
from gateway.main import DEMO_PARTNER_NAME  # noqa: E402
from localmesh.environment import sqlite_url  # noqa: E402
from localmesh.mesh import MESH_FILE  # noqa: E402
from localmesh.services import BILLING, CARRIER_ADAPTER, GATEWAY, INVENTORY, ORDER, SHIPMENT  # noqa: E402
from services.kit.db import Database  # noqa: E402

T = TypeVar("T")
SEEDED_SERVICES = (ORDER, INVENTORY, SHIPMENT, CARRIER_ADAPTER, BILLING, GATEWAY)


@dataclass(frozen=True)
class SeedReport:
    orders: int
    seconds: float
    first_order_id: str
    last_order_id: str
    partner_id: str

    @property
    def per_second(self) -> float:
        return self.orders / self.seconds if self.seconds else 0.0


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def database_urls(data_dir: Path | None, overrides: Mapping[str, str]) -> dict[str, str]:
    """Each seeded service's database: an override, else the mesh's SQLite file in data_dir."""
    unknown = sorted(set(overrides) - {spec.name for spec in SEEDED_SERVICES})
    if unknown:
        raise ValueError(f"--db-url names unknown services: {', '.join(unknown)}")
    urls: dict[str, str] = {}
    for spec in SEEDED_SERVICES:
        if spec.name in overrides:
            urls[spec.name] = overrides[spec.name]
        elif data_dir is None:
            raise ValueError(f"no --data-dir and no --db-url for {spec.name}")
        else:
            urls[spec.name] = sqlite_url(data_dir, spec)
    return urls


def ensure_stopped(data_dir: Path) -> None:
    if (data_dir / MESH_FILE).exists():
        raise RuntimeError(
            f"a mesh is running on {data_dir} ({MESH_FILE} exists): stop it before seeding"
        )


async def seed(
    urls: Mapping[str, str],
    *,
    orders: int,
    seed_value: int,
    days: float,
    batch_size: int,
    recent: bool = False,
    progress: Callable[[int], None] | None = None,
) -> SeedReport:
    """Write `orders` completed histories; returns what was written and how fast."""
    if batch_size < 1:
        raise ValueError(f"batch must be at least 1 (got {batch_size})")
    await asyncio.to_thread(seed_prepare.migrate_all, urls)
    dbs = {name: Database(url, service=name) for name, url in urls.items()}
    try:
        await dbs[INVENTORY.name].run(seed_prepare.ensure_demo_catalog)
        partner_id = await dbs[GATEWAY.name].run(
            gateway_queries.ensure_partner_named, DEMO_PARTNER_NAME, new_partner_id(), time.time()
        )
        plan = plan_orders(
            orders,
            seed=seed_value,
            days=days,
            settled_for=RECENT_SETTLED_FOR if recent else DEFAULT_SETTLED_FOR,
        )
        started = time.perf_counter()
        first = last = ""
        written = 0
        for number, planned in enumerate(chunks(plan, batch_size)):
            batch = await _one_batch(dbs, planned, partner_id, seed_value, number)
            if recent:
                await _events(dbs, batch)
            first = first or batch[0].order.order_id
            last = batch[-1].order.order_id
            written += len(batch)
            if progress is not None:
                progress(written)
        return SeedReport(written, time.perf_counter() - started, first, last, partner_id)
    finally:
        for db in dbs.values():
            await db.close()


async def _one_batch(
    dbs: Mapping[str, Database],
    planned: Sequence[PlannedOrder],
    partner_id: str,
    seed_value: int,
    number: int,
) -> list[order_steps.History]:
    """One batch through the services in the mesh's own order, one transaction each."""
    batch = [order_steps.place(p, partner_id, seed_value) for p in planned]
    await dbs[INVENTORY.name].run(steps.write_inventory, batch, seed_value, number)
    for history in batch:
        order_steps.take_reservation_and_pick(history)
    await dbs[CARRIER_ADAPTER.name].run(steps.write_labels, batch)
    await dbs[SHIPMENT.name].run(steps.write_shipments, batch)
    await dbs[BILLING.name].run(steps.write_billing, batch)
    for history in batch:
        order_steps.complete(history)
    await dbs[ORDER.name].run(order_steps.write_orders, batch)
    return batch


async def _events(dbs: Mapping[str, Database], batch: Sequence[order_steps.History]) -> None:
    """The batch's events sent by their producers and applied by their consumers."""
    applied: dict[str, list[str]] = {}
    for producer in seed_events.MAPPERS:
        raised = [item for history in batch for item in history.raised[producer]]
        found = await dbs[producer].run(seed_events.publish, producer, raised)
        for consumer, ids in found.items():
            applied.setdefault(consumer, []).extend(ids)
    for consumer, ids in applied.items():
        await dbs[consumer].run(seed_events.apply, consumer, ids)


def _db_url(text: str) -> tuple[str, str]:
    name, sep, url = text.partition("=")
    if not sep or not name or not url:
        raise argparse.ArgumentTypeError(f"expected service=URL, got {text!r}")
    return name, url


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, help="a stopped local mesh's data dir")
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=float, default=30.0, help="spread completions this far")
    parser.add_argument("--batch", type=int, default=1000, help="orders per transaction")
    parser.add_argument("--recent", action="store_true", help="end 15 min ago, with events")
    parser.add_argument("--db-url", type=_db_url, action="append", default=[])
    args = parser.parse_args(argv)
    if args.orders < 1:
        parser.error(f"--orders must be at least 1 (got {args.orders})")
    if args.batch < 1:
        parser.error(f"--batch must be at least 1 (got {args.batch})")
    if args.days <= 0:
        parser.error(f"--days must be positive (got {args.days})")
    if args.data_dir is None and not args.db_url:
        parser.error("give --data-dir or every service's --db-url")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    data_dir: Path | None = args.data_dir.resolve() if args.data_dir else None
    if data_dir is not None:
        ensure_stopped(data_dir)
    urls = database_urls(data_dir, dict(args.db_url))
    step = max(args.batch, args.orders // 20)
    reported = [0]

    def progress(written: int) -> None:
        if written - reported[0] >= step or written == args.orders:
            reported[0] = written
            print(f"  {written:,} / {args.orders:,} orders", flush=True)

    report = asyncio.run(
        seed(
            urls,
            orders=args.orders,
            seed_value=args.seed,
            days=args.days,
            batch_size=args.batch,
            recent=args.recent,
            progress=progress,
        )
    )
    print(
        f"seeded {report.orders:,} completed orders in {report.seconds:.1f} s "
        f"({report.per_second:,.0f}/s) for partner {report.partner_id}: "
        f"{report.first_order_id} .. {report.last_order_id}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
