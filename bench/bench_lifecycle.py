"""`make bench-lifecycle`: open-loop order lifecycles through the partner REST API, swept over
offered rates, against raw NATS and raw SQLite (or PostgreSQL) measured in the same run.

A benchmark, not a test: it prints numbers and never fails on them. It starts the local mesh as
`make run` does (localmesh: every service its own process on its own database, nats-server with
per-service users, the warehouse simulator), with the sandbox carrier as its own process
(`tools/sandbox_carrier.py`, called over HTTP, pushing through the gateway's carrier route like a
remote carrier: its simulation is not carrier-adapter's CPU), and the gateway's per-partner rate
limits lifted. Then:

1. Ceilings: raw JetStream `publish_async` msgs/s and raw sqlite3 commits/s (WAL,
   synchronous=FULL), plus raw PostgreSQL commits/s with `--db postgres` (bench/ceilings.py).
2. For each offered rate R (`--rates`), orders (the demo's 1-3 line sample orders) are POSTed to
   /v1/orders with the demo partner's key, one every 1/R s, open loop: a scheduler fires each at
   its planned instant in its own task, whatever earlier requests are doing (one aiohttp
   session, up to `--connections` at once). `--warmup` s first (the sandbox's transit makes a
   lifecycle take ~25-40 s in fast mode: the warm-up must exceed it for the window to be
   steady), then the measured `--window` s, then up to `--drain` s for the rate's orders to
   finish.

What each column means, and how it is computed:

- completed/s: OrderCompleted events whose ce-time falls in the window, / window. An order is
  COMPLETED when every line is delivered and invoiced.
- sustained: every backlog below stays flat over the window AND ≥ 99% of requests got 201.
  Every `--sample-interval` s the bench samples (a) consumer lag: Σ num_pending + num_ack_pending
  of every durable JetStream consumer, from nats-server's monitoring endpoint /jsz; (b) outbox
  backlog: Σ over the services' databases of outbox rows with sent_at IS NULL; (c) orders in
  flight: accepted at this rate and not completed. A backlog "grows" when the least-squares
  slope of its window samples exceeds max(0.5, 0.02 * R) items/s and two of its standard errors
  (so one spike is noise, a steady climb is not; bench/lifecycle_stats.py); the table prints
  first → last, the slope ± its standard error, the limit and a few samples of each. With fewer
  than 10 samples in the window (a short smoke run) there is no verdict: "n/a".
- REST accept p50/p99: from the request's planned instant (not its actual send, so a late
  scheduler cannot hide queueing) to the 201 answer.
- hops p50/p99, from the events' CloudEvents `ce-time` (set when the producer commits the state
  change with its outbox row; every process shares this machine's clock), recorded by a plain
  NATS subscription: placed → reserved (OrderPlaced → each StockReserved of the order), picked →
  label booked (PickCompleted → ShipmentManifested of the shipment built from that pick),
  delivered → invoice posted (ShipmentDelivered → InvoicePosted of that shipment). No hop spans
  the carrier's simulated transit or the warehouse's pick delay, so they are net of both by
  construction. Also reported: placed → completed, and "lifecycle net of waits": placed →
  completed minus the warehouse (OrderReleased → first PickCompleted) and the carrier transit
  (ShipmentManifested → ShipmentDelivered), for single-shipment orders. Only orders placed in
  the window count. (The order timeline, GET /v1/orders/{id}/timeline, stamps entries when the
  order service *applies* each event, so it adds consumer lag; the event times do not.)
- CPU ms per lifecycle, per process: psutil user + system CPU (children included: PostgreSQL's
  backends) at the window's start and end, / lifecycles completed in the window. "crossdock" is
  the services, the gateway, the registry, nats-server and PostgreSQL; the warehouse simulator,
  the sandbox carrier and this driver are listed apart (stand-ins and the load generator).
- peak RSS MB, per process: the largest RSS sampled during the rate (largest process of its
  tree); the kernel's VmHWM of each process over the whole run is in the JSON.
- events per lifecycle: messages added to the domain streams during the window / completed.

Results go to `--out` (JSON) and a printed table; `--plot` writes the PNG (docs/ by default).
The sweep runs on one mesh, rates in the order given; stragglers of a rate are drained before
the next starts.

    .venv/bin/python bench/bench_lifecycle.py [--rates 20,40,60,80,100,150] [--window 60]
        [--warmup 45] [--db sqlite|postgres] [--out FILE] [--plot [PNG]]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from crossdock.inventory.v1 import inventory_pb2 as inv  # noqa: E402
from crossdock.inventory.v1 import inventory_service_pb2 as inv_svc  # noqa: E402
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inv_grpc  # noqa: E402

from bench.ceilings import raw_postgres_rate, raw_publish_rate, raw_sqlite_rate  # noqa: E402
from bench.lifecycle_probes import (  # noqa: E402
    BacklogProbe,
    EventRecorder,
    OperationsProbe,
    OrderDriver,
    ProcessMeter,
    cpu_delta,
    operations_per_lifecycle,
    stuck_stages,
)
from bench.lifecycle_stats import BacklogSample, render_report, summarize  # noqa: E402
from localmesh import Mesh, MeshOptions, launch  # noqa: E402
from localmesh.seed import DEMO_ITEMS, DEMO_WAREHOUSES  # noqa: E402
from services.kit import gc_policy  # noqa: E402

DRIVER = "bench-driver"
STAND_INS = ("warehouse-sim", "sandbox-carrier")
IDLE_SECONDS = 5.0
# A load test is not partner abuse: lift the gateway's per-partner and per-carrier buckets.
UNLIMITED_GATEWAY = {
    f"CROSSDOCK_GATEWAY_{name}": "1000000"
    for name in (
        "READ_RATE_PER_SECOND",
        "READ_BURST",
        "WRITE_RATE_PER_SECOND",
        "WRITE_BURST",
        "PUSH_RATE_PER_SECOND",
        "PUSH_BURST",
    )
}
MAX_UNITS_PER_LINE = 3  # localmesh.demo.sample_order: 1-3 lines of 1-3 units


def default_out(db: str) -> Path:
    return REPO / "bench" / "results" / f"lifecycle-{db}.json"


def default_plot(db: str) -> Path:
    name = "bench-lifecycle.png" if db == "sqlite" else f"bench-lifecycle-{db}.png"
    return REPO / "docs" / name


async def restock(mesh: Mesh, orders: int) -> None:
    """Enough of every item in each warehouse for every order the sweep will place."""
    quantity = MAX_UNITS_PER_LINE * orders
    async with grpc.aio.insecure_channel(mesh.grpc_targets["inventory"]) as channel:
        stub = inv_grpc.InventoryServiceStub(channel)
        for warehouse in DEMO_WAREHOUSES:
            await stub.ReceiveStock(
                inv_svc.ReceiveStockRequest(
                    location_id=warehouse.location_id,
                    source=inv.RECEIPT_SOURCE_PURCHASE_ORDER,
                    source_reference=f"BENCH-{warehouse.location_id}",
                    lines=[
                        inv_svc.ReceiptLineInput(sku=item.sku, quantity=quantity)
                        for item in DEMO_ITEMS
                    ],
                    idempotency_key=f"bench-{time.time_ns()}-{warehouse.location_id}",
                ),
                timeout=60,
            )


async def sleep_until(wall: float) -> None:
    await asyncio.sleep(max(0.0, wall - time.time()))


class Sweep:
    def __init__(self, mesh: Mesh, args: argparse.Namespace) -> None:
        self.mesh, self.args = mesh, args
        self.recorder = EventRecorder()
        self.probe = BacklogProbe(mesh.nats_monitor_url, mesh.db_urls)
        self.meter = ProcessMeter({**mesh.pids, DRIVER: os.getpid()}, alone=frozenset({DRIVER}))
        self.driver = OrderDriver(mesh.gateway_url, mesh.demo_api_key, connections=args.connections)
        self.crossdock = [n for n in mesh.pids if n not in STAND_INS]
        self.operations = OperationsProbe(
            {n: u for n, u in mesh.metrics_urls.items() if n in self.crossdock}
        )

    async def start(self) -> None:
        await self.recorder.start(self.mesh.nats_admin_url)

    async def close(self) -> None:
        await self.recorder.stop()
        await self.probe.close()
        await self.driver.close()

    async def idle_burn(self) -> dict[str, float]:
        """CPU ms per second each process burns with no orders (polls, heartbeats)."""
        before = self.meter.cpu_seconds()
        await asyncio.sleep(IDLE_SECONDS)
        spent = cpu_delta(before, self.meter.cpu_seconds())
        return {name: 1000.0 * seconds / IDLE_SECONDS for name, seconds in spent.items()}

    def start_profilers(self, rate: float) -> list[subprocess.Popen[bytes]]:
        """py-spy on every crossdock process for the window (`--profile DIR`): where CPU goes."""
        if not self.args.profile:
            return []
        self.args.profile.mkdir(parents=True, exist_ok=True)
        suffix = "svg" if self.args.profile_format == "flamegraph" else "txt"
        # py-spy cannot unwind C frames without pausing the process, so --native trades the
        # non-blocking sampler for the C stacks that Python frames alone hide.
        sampling = ["--native"] if self.args.profile_native else ["--nonblocking"]
        return [
            subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("py-spy")),
                    "record",
                    "--pid",
                    str(self.mesh.pids[name]),
                    "--duration",
                    str(int(self.args.window)),
                    "--rate",
                    "67",
                    *sampling,
                    # Only the thread holding the GIL (Python CPU, not waits), or every running
                    # thread by name (also grpc's core threads and sqlite3 work done without it).
                    *(["--threads"] if self.args.profile_all_threads else ["--gil"]),
                    "--format",
                    self.args.profile_format,
                    "--output",
                    str(self.args.profile / f"{name}-{rate:g}.{suffix}"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name in self.crossdock
            if name not in ("nats-server", "postgres")
        ]

    async def one_rate(self, rate: float) -> dict[str, Any]:
        args = self.args
        accepted: list[str] = []
        samples: list[BacklogSample] = []
        events = self.recorder.times
        self.meter.reset_peaks()
        # Orders of earlier rates still open (a drain that timed out): their work and their
        # completions fall in this window too.
        carried_over = sum(
            1
            for a in self.driver.attempts
            if "order_id" in a and a["order_id"] not in events.completed
        )
        start = time.time() + 0.2
        window = (start + args.warmup, start + args.warmup + args.window)
        first_attempt = len(self.driver.attempts)
        offering = asyncio.create_task(
            self.driver.offer(rate, args.warmup + args.window, accepted.append, start)
        )

        async def sample_forever() -> None:
            while True:
                in_flight = sum(1 for order in accepted if order not in events.completed)
                try:
                    sample, _ = await self.probe.sample(in_flight)
                    samples.append(sample)
                except Exception as error:  # a missed sample is reported, not fatal
                    print(f"  sample failed: {error!r}", file=sys.stderr)
                self.meter.sample_rss()
                await asyncio.sleep(args.sample_interval)

        sampler = asyncio.create_task(sample_forever())
        await sleep_until(window[0])
        profilers = self.start_profilers(rate)
        cpu_before, (_, messages_before) = self.meter.cpu_seconds(), await self.probe.jetstream()
        operations_before = await self.operations.read()
        await sleep_until(window[1])
        cpu_after, (_, messages_after) = self.meter.cpu_seconds(), await self.probe.jetstream()
        operations_after = await self.operations.read()
        in_flight = sum(1 for order in accepted if order not in events.completed)
        samples.append((await self.probe.sample(in_flight))[0])
        sampler.cancel()
        for profiler in profilers:
            await asyncio.to_thread(profiler.wait)
        await offering
        window_orders = [
            a["order_id"]
            for a in self.driver.attempts[first_attempt:]
            if "order_id" in a and window[0] <= a["planned_at"] < window[1]
        ]
        drained_by = time.time() + args.drain
        while time.time() < drained_by and any(o not in events.completed for o in accepted):
            await asyncio.sleep(0.5)
        report = summarize(
            offered_rate=rate,
            window=window,
            attempts=self.driver.attempts[first_attempt:],
            events=events,
            window_orders=window_orders,
            samples=samples,
            cpu_seconds=cpu_delta(cpu_before, cpu_after),
            crossdock_processes=self.crossdock,
            peak_rss_bytes=dict(self.meter.peak_rss),
            events_published=messages_after - messages_before,
            cores=os.cpu_count() or 1,
        )
        # Completions in the window come from orders placed a lifecycle earlier: only when the
        # warm-up covers a lifecycle are they orders offered at this rate (a steady state).
        lifecycle_p99 = report["hops_ms"]["lifecycle"]["p99"]
        report["warmup_covers_lifecycle"] = (
            lifecycle_p99 is not None and args.warmup * 1000.0 >= lifecycle_p99
        )
        report["carried_over_in_flight"] = carried_over
        report["operations_per_lifecycle"] = operations_per_lifecycle(
            operations_before, operations_after, events.completed_between(*window)
        )
        report["drain"] = {
            "accepted": len(accepted),
            "completed": sum(1 for order in accepted if order in events.completed),
            "not_completed_by_last_milestone": stuck_stages(events, accepted),
            "seconds": round(time.time() - window[1], 1),
        }
        return report


def _finite(value: Any) -> Any:
    """NaN and infinities become null: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


async def run(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.update(UNLIMITED_GATEWAY)  # the launcher passes CROSSDOCK_GATEWAY_* through
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="crossdock-bench-"))
    if not args.data_dir:
        # mkdtemp's 0700 would lock out the `postgres` user a root run starts PostgreSQL as.
        data_dir.chmod(0o711)
    options = MeshOptions(
        data_dir=data_dir,
        ports="free",
        db=args.db,
        fast=True,
        sandbox_process=args.sandbox == "process",
        log_level=args.log_level,
    )
    print(f"starting the mesh ({args.db}, sandbox {args.sandbox}) in {data_dir} ...", flush=True)
    started = time.strftime("%Y-%m-%d %H:%M")
    async with launch(options) as mesh:
        ceilings = {"raw JetStream publish_async msgs": await raw_publish_rate(mesh.nats_admin_url)}
        ceilings["raw sqlite3 commits (WAL, FULL)"] = raw_sqlite_rate(data_dir)
        if args.db == "postgres":
            ceilings["raw PostgreSQL commits"] = await asyncio.to_thread(
                raw_postgres_rate, mesh.db_urls["order"]
            )
        print("ceilings: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in ceilings.items()), flush=True)
        await restock(mesh, int(sum(r * (args.warmup + args.window) for r in rates)) + 100)
        sweep = Sweep(mesh, args)
        await sweep.start()
        try:
            idle = await sweep.idle_burn()
            reports = []
            for rate in rates:
                print(f"rate {rate:g}/s: {args.warmup:g} s warm-up, {args.window:g} s window")
                # The driver's own full collections (earlier rates' records) would stall its loop
                # and show as REST latency: freeze what it holds before each rate.
                gc_policy.settle_heap()
                report = await sweep.one_rate(rate)
                reports.append(report)
                print(
                    f"  completed {report['completed_per_s']:.1f}/s, sustained "
                    f"{ {True: 'yes', False: 'NO', None: 'n/a'}[report['sustained']] }, REST p99 "
                    f"{report['rest_accept_ms']['p99'] or float('nan'):.0f} ms, crossdock CPU "
                    f"{report['crossdock_cpu_ms_per_lifecycle']:.1f} ms/lifecycle",
                    flush=True,
                )
                if not report["warmup_covers_lifecycle"]:
                    print(
                        f"  note: the {args.warmup:g} s warm-up is shorter than the p99 lifecycle "
                        "(or none completed): the window is not in steady state",
                        flush=True,
                    )
        finally:
            await sweep.close()
        high_water = {n: ProcessMeter.high_water_rss(p) / 2**20 for n, p in mesh.pids.items()}
    if not args.keep_data and not args.data_dir:
        shutil.rmtree(data_dir, ignore_errors=True)
    per_lifecycle = [r["events_per_lifecycle"] for r in reports]
    per_lifecycle = [v for v in per_lifecycle if v and math.isfinite(v)]
    if per_lifecycle:
        events = statistics.median(per_lifecycle)
        ceilings["NATS ceiling, lifecycles (raw msgs / events per lifecycle)"] = (
            ceilings["raw JetStream publish_async msgs"] / events
        )
    return {
        "meta": {
            "started": started,
            "db": args.db,
            "sandbox": args.sandbox,
            "cores": os.cpu_count(),
            "rates": rates,
            "warmup_s": args.warmup,
            "window_s": args.window,
            "sample_interval_s": args.sample_interval,
            "crossdock_processes": [n for n in high_water if n not in STAND_INS],
            "stand_ins": [n for n in STAND_INS if n in high_water],
            "vm_hwm_mb": high_water,
        },
        "ceilings": ceilings,
        "idle_cpu_ms_per_s": idle,
        "rates": reports,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rates", default="20,40,60,80,100,150", help="offered orders/s")
    parser.add_argument("--window", type=float, default=60.0, help="measured seconds per rate")
    parser.add_argument("--warmup", type=float, default=45.0, help="seconds before the window")
    parser.add_argument("--drain", type=float, default=60.0, help="max seconds after a rate")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--sandbox",
        choices=["process", "in-process"],
        default="process",
        help="the sandbox carrier as its own process (default), or inside carrier-adapter",
    )
    parser.add_argument("--out", type=Path, help="JSON results (default bench/results/...)")
    parser.add_argument(
        "--plot",
        nargs="?",
        const="",
        type=str,
        help="write the PNG (default docs/bench-lifecycle[-postgres].png)",
    )
    parser.add_argument("--sample-interval", type=float, default=2.0, help="backlog sampling s")
    parser.add_argument("--connections", type=int, default=512, help="HTTP connections at most")
    parser.add_argument("--log-level", default="INFO", help="the mesh processes' log level")
    parser.add_argument("--data-dir", help="where the mesh runs (default: a temporary dir)")
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy each Python process over each window into this directory",
    )
    parser.add_argument(
        "--profile-format",
        choices=["flamegraph", "raw"],
        default="flamegraph",
        help="SVG flame graphs, or collapsed stacks (text) to rank functions",
    )
    parser.add_argument(
        "--profile-native",
        action="store_true",
        help="include C frames (grpc's Cython core, uvloop, sqlite3); pauses each sample briefly",
    )
    parser.add_argument(
        "--profile-all-threads",
        action="store_true",
        help="sample every running thread, named, instead of the one holding the GIL",
    )
    parser.add_argument("--keep-data", action="store_true", help="keep the temporary data dir")
    return parser.parse_args(argv)


async def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    report = await run(args)
    out = args.out or default_out(args.db)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_finite(report), indent=1) + "\n")
    print()
    print(render_report(report))
    print(f"\nresults: {out}")
    if args.plot is not None:
        from bench.lifecycle_plot import plot_sweep

        target = Path(args.plot) if args.plot else default_plot(args.db)
        plot_sweep(report, target)
        print(f"plot: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
