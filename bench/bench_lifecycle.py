"""`make bench-lifecycle`: full order lifecycles per second through the whole mesh, against raw
NATS and raw SQLite measured in the same run.

A benchmark, not a test: it prints numbers and never fails on them. It starts the local mesh
exactly as `make run` does (localmesh: every service its own process on its own SQLite file,
nats-server with per-service users, the warehouse simulator, the sandbox carrier in fast mode),
then:

1. measures raw JetStream `publish_async` (windows of 500, acks awaited per window) on a scratch
   stream of the same nats-server, and raw sqlite3 commits (WAL, synchronous=FULL) in the same
   data directory: the ceilings everything else is compared with;
2. places N orders over gRPC (CreateOrder, C in flight) and timestamps each OrderCompleted as it
   is published (a plain NATS subscription, so measuring costs the mesh nothing);
3. counts the events the run published, per lifecycle.

A lifecycle here is placed → reserved → released → picked → packed → rated → labelled →
scanned (pickup, hubs, out for delivery, delivered) → invoiced → completed. The sandbox carrier
simulates transit time even in fast mode, so every order waits a few seconds that cost no CPU;
"capacity" discounts the shortest lifecycle seen (that floor), "throughput" does not.

    .venv/bin/python bench/bench_lifecycle.py [--orders 400] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc
import nats
from nats.js.api import StreamConfig

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from crossdock.common.v1 import common_pb2  # noqa: E402
from crossdock.events.v1 import order_events_pb2  # noqa: E402
from crossdock.inventory.v1 import inventory_pb2 as inv  # noqa: E402
from crossdock.inventory.v1 import inventory_service_pb2 as inv_svc  # noqa: E402
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inv_grpc  # noqa: E402
from crossdock.order.v1 import order_pb2  # noqa: E402
from crossdock.order.v1 import order_service_pb2 as order_svc  # noqa: E402
from crossdock.order.v1 import order_service_pb2_grpc as order_grpc  # noqa: E402

from localmesh import Mesh, MeshOptions, launch  # noqa: E402
from localmesh.seed import DEMO_ITEMS, DEMO_WAREHOUSES  # noqa: E402
from services.kit.streams import DOMAIN_STREAMS  # noqa: E402

PARTNER = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"
COMPLETED = "crossdock.order.completed.v1"
IDLE_SECONDS = 5.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def raw_publish_rate(nats_url: str, messages: int = 20_000) -> float:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="BENCHRAW", subjects=["benchraw.>"]))
    payload = bytes(200)
    started = time.perf_counter()
    for window in range(0, messages, 500):
        acks = [
            await js.publish_async(f"benchraw.{i % 64}", payload)
            for i in range(window, min(window + 500, messages))
        ]
        await asyncio.gather(*acks)
    elapsed = time.perf_counter() - started
    await js.delete_stream("BENCHRAW")
    await nc.close()
    return messages / elapsed


def raw_sqlite_rate(directory: Path, transactions: int = 2_000) -> float:
    conn = sqlite3.connect(directory / "bench-raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body BLOB)")
    started = time.perf_counter()
    for _ in range(transactions):
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t (body) VALUES (?)", (bytes(200),))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return transactions / elapsed


async def stream_total(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    total = 0
    for stream in DOMAIN_STREAMS.values():
        with contextlib.suppress(nats.js.errors.NotFoundError):
            total += (await js.stream_info(stream)).state.messages
    await nc.close()
    return total


async def restock(mesh: Mesh, orders: int) -> None:
    """Enough stock for every order (two units of each item per order) in each warehouse."""
    async with grpc.aio.insecure_channel(mesh.grpc_targets["inventory"]) as channel:
        stub = inv_grpc.InventoryServiceStub(channel)
        for warehouse in DEMO_WAREHOUSES:
            await stub.ReceiveStock(
                inv_svc.ReceiveStockRequest(
                    location_id=warehouse.location_id,
                    source=inv.RECEIPT_SOURCE_PURCHASE_ORDER,
                    source_reference=f"BENCH-{warehouse.location_id}",
                    lines=[
                        inv_svc.ReceiptLineInput(sku=item.sku, quantity=2 * orders)
                        for item in DEMO_ITEMS
                    ],
                    idempotency_key=f"bench-{time.time_ns()}-{warehouse.location_id}",
                ),
                timeout=30,
            )


def order_request(n: int) -> order_svc.CreateOrderRequest:
    item = DEMO_ITEMS[n % len(DEMO_ITEMS)]
    return order_svc.CreateOrderRequest(
        partner_id=PARTNER,
        order=order_svc.OrderInput(
            external_order_id=f"BENCH-{n:06d}",
            customer=common_pb2.PartyRef(party_id=f"CUST-{n % 97}", name="Bench"),
            ship_to=common_pb2.Address(
                name="Bench Customer",
                lines=["1 Main St"],
                city="Austin",
                region="TX",
                postal_code="73301",
                country_code="US",
            ),
            lines=[
                order_svc.OrderLineInput(
                    sku=item.sku,
                    quantity=1,
                    unit_price=common_pb2.Money(
                        currency_code="USD",
                        units=item.unit_price_cents // 100,
                        nanos=(item.unit_price_cents % 100) * 10_000_000,
                    ),
                )
            ],
            currency_code="USD",
            backorder_policy=order_pb2.BACKORDER_POLICY_SHIP_AVAILABLE,
        ),
    )


async def run_lifecycles(mesh: Mesh, orders: int, concurrency: int, timeout: float) -> dict:
    completed_at: dict[str, float] = {}
    placed_at: dict[str, float] = {}
    nc = await nats.connect(mesh.nats_admin_url)

    async def on_completed(msg: nats.aio.msg.Msg) -> None:
        event = order_events_pb2.OrderCompleted.FromString(msg.data)
        completed_at.setdefault(event.order_id, time.perf_counter())

    await nc.subscribe(COMPLETED, cb=on_completed)
    slots = asyncio.Semaphore(concurrency)
    async with grpc.aio.insecure_channel(mesh.grpc_targets["order"]) as channel:
        stub = order_grpc.OrderServiceStub(channel)

        async def place(n: int) -> None:
            async with slots:
                sent = time.perf_counter()
                answer = await stub.CreateOrder(order_request(n), timeout=30)
                placed_at[answer.order.order_id] = sent

        started = time.perf_counter()
        await asyncio.gather(*(place(n) for n in range(orders)))
        placing = time.perf_counter() - started
        deadline = time.monotonic() + timeout
        while len(set(placed_at) & set(completed_at)) < orders and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    await nc.close()
    done = {o: completed_at[o] - placed_at[o] for o in placed_at if o in completed_at}
    last = max((completed_at[o] for o in done), default=started)
    latencies = sorted(done.values())
    return {
        "placed": len(placed_at),
        "completed": len(done),
        "placing_seconds": placing,
        "wall_seconds": last - started,
        "latency_min": latencies[0] if latencies else float("nan"),
        "latency_p50": statistics.median(latencies) if latencies else float("nan"),
        "latency_p95": latencies[int(0.95 * (len(latencies) - 1))] if latencies else float("nan"),
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data_dir = Path(tempfile.mkdtemp(prefix="crossdock-bench-"))
    print(f"starting the mesh in {data_dir} ...", flush=True)
    async with launch(MeshOptions(data_dir=data_dir, ports="free", fast=True)) as mesh:
        raw_pub = await raw_publish_rate(mesh.nats_admin_url)
        raw_tx = raw_sqlite_rate(data_dir)
        await restock(mesh, args.orders)
        before = await stream_total(mesh.nats_admin_url)
        # What the mesh burns doing nothing (polls, heartbeats), to tell it from real work.
        idle_start = {name: cpu_seconds(pid) for name, pid in mesh.pids.items()}
        await asyncio.sleep(IDLE_SECONDS)
        idle = {n: (cpu_seconds(p) - idle_start[n]) / IDLE_SECONDS for n, p in mesh.pids.items()}
        busy_start = {name: cpu_seconds(pid) for name, pid in mesh.pids.items()}
        started = time.perf_counter()
        result = await run_lifecycles(mesh, args.orders, args.concurrency, args.timeout)
        busy_seconds = time.perf_counter() - started
        await asyncio.sleep(2)  # let trailing events (late scans) land before counting
        events = (await stream_total(mesh.nats_admin_url)) - before
        cpu = {n: cpu_seconds(p) - busy_start[n] for n, p in mesh.pids.items()}
    completed = result["completed"]
    per_lifecycle = events / max(completed, 1)
    throughput = completed / result["wall_seconds"]
    processing = result["wall_seconds"] - result["latency_min"]
    capacity = completed / processing if processing > 0 else float("nan")
    nats_ceiling = raw_pub / per_lifecycle
    sqlite_ceiling = raw_tx / per_lifecycle
    print()
    print(f"orders placed / completed         {result['placed']} / {completed}")
    print(f"placing (CreateOrder, {args.concurrency} in flight) {result['placing_seconds']:.1f} s")
    print(
        f"lifecycle latency min/p50/p95     {result['latency_min']:.1f} / "
        f"{result['latency_p50']:.1f} / {result['latency_p95']:.1f} s"
    )
    print(f"events published per lifecycle    {per_lifecycle:.1f}")
    print()
    print(f"{'measure':44} {'per s':>10} {'ratio':>8}")
    print(f"{'raw JetStream publish_async (msgs)':44} {raw_pub:10.0f}")
    print(f"{'raw sqlite3 commits (WAL, FULL)':44} {raw_tx:10.0f}")
    print(f"{'NATS ceiling: raw msgs / events per lifecycle':44} {nats_ceiling:10.1f}")
    print(f"{'SQLite ceiling: raw commits / events per lc':44} {sqlite_ceiling:10.1f}")
    print(
        f"{'lifecycle throughput (completed / wall)':44} {throughput:10.1f} "
        f"{throughput / nats_ceiling:8.3f}"
    )
    print(
        f"{'lifecycle capacity (minus transit floor)':44} {capacity:10.1f} "
        f"{capacity / nats_ceiling:8.3f}"
    )
    print("ratios are against the NATS ceiling; the target is 200 lifecycles/s on 2 cores")
    print()
    print("CPU per process during the lifecycles, and net of its idle burn (where the time goes):")
    print(f"  {'process':24} {'cpu s':>7} {'idle %':>7} {'net ms/lifecycle':>17}")
    for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
        net = max(seconds - idle[name] * busy_seconds, 0.0)
        print(
            f"  {name:24} {seconds:7.1f} {100 * idle[name]:7.1f} "
            f"{1000 * net / max(completed, 1):17.1f}"
        )
    total = sum(cpu.values())
    print(f"  {'all':24} {total:7.1f}   over {busy_seconds:.1f} s wall on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
