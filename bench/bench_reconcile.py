"""`make bench-reconcile` step 2: every reconciliation check over a seeded mesh, under load.

A benchmark: it prints numbers, and fails only when the seeded histories are not consistent
(a check that finds drift in them, or a check that fails, means the seeder or the check is
wrong, and the timings would be of the wrong work). Given a data dir seeded by
bench/seed_orders.py (stopped), it starts the local mesh there (as bench/bench_lifecycle.py does:
free ports, fast sandbox, the gateway's rate limits lifted) and waits until it is idle (after a
restart the sandbox carrier pushes again the scans of every label of the last 30 days, seeded
ones included; `settle_seconds` says how long that took), then:

1. drives partner REST orders open loop at `--rate` per second (bench/lifecycle_probes.py's
   OrderDriver: each request fired at its planned instant, latency counted from that instant)
   for `--warmup` s (longer than a lifecycle, so the window is steady), then a `--baseline`
   window;
2. at the end of the baseline, while the same rate continues, runs every check once through
   the tower's RunReconciliation RPC (report-only, one call per check, in the registry's
   order), and stops driving when the last check answers: that span is the "during" window;
3. waits up to `--drain` s for the orders of both windows to complete.

Reported:
- per check: items scanned, findings (drifts; must be 0 for seeded histories), duration as the
  tower measured it, error;
- for the baseline and the during window: orders offered and accepted, REST accept latency
  p50/p99 (planned instant to the 201), placed -> completed p50/p99 (the OrderPlaced and
  OrderCompleted events' ce-time, from a plain NATS subscription) and how many completed;
- per process: CPU (user + system, children included) as a share of one core over each window,
  and peak RSS sampled every second (the tower's is the one the checks move).

Results go to `--out` (JSON) and a printed table. Exit code 1 when a check failed or found
drift (`--allow-findings` keeps 0, for runs over a mesh that is not a fresh seed).

    .venv/bin/python bench/bench_reconcile.py --data-dir DIR [--rate 10] [--warmup 45]
        [--baseline 60] [--drain 120] [--out FILE] [--expect-orders N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.bench_lifecycle import UNLIMITED_GATEWAY, restock  # noqa: E402
from bench.lifecycle_probes import (  # noqa: E402
    BacklogProbe,
    EventRecorder,
    OrderDriver,
    ProcessMeter,
    cpu_delta,
)
from bench.lifecycle_stats import percentile  # noqa: E402
from bench.reconcile_runs import CheckRun, check_names, run_checks  # noqa: E402
from localmesh import MeshOptions, launch  # noqa: E402

DRIVER = "bench-driver"
RECONCILE_ENABLED = "CROSSDOCK_CONTROL_TOWER_RECONCILE_ENABLED"
TOWER = "control-tower"
# The driver plans its arrivals a slice at a time, so the load can stop when the checks end.
SLICE_SECONDS = 2.0
# Written in the data dir by a run: a second run there would place no new orders.
MARKER = "bench-reconcile.ran"
# Backlog (consumer lag + unsent outbox rows) below which the mesh counts as idle.
QUIET_BACKLOG = 5


def default_out() -> Path:
    return REPO / "bench" / "results" / "reconcile.json"


class Load:
    """Open-loop orders at a fixed rate from `start` until stop(), a slice at a time."""

    def __init__(self, driver: OrderDriver, rate: float, on_accepted: Any) -> None:
        self._driver, self._rate, self._on_accepted = driver, rate, on_accepted
        self._stopping = asyncio.Event()
        self._slices: list[asyncio.Task[None]] = []
        self._runner: asyncio.Task[None] | None = None

    def start(self, start_wall: float) -> None:
        self._runner = asyncio.create_task(self._run(start_wall))

    async def _run(self, start_wall: float) -> None:
        at = start_wall
        while not self._stopping.is_set():
            self._slices.append(
                asyncio.create_task(
                    self._driver.offer(self._rate, SLICE_SECONDS, self._on_accepted, at)
                )
            )
            at += SLICE_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), max(0.0, at - time.time()))

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner
        await asyncio.gather(*self._slices)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000.0, 1)


def window_latencies(
    attempts: Iterable[Mapping[str, Any]],
    placed: Mapping[str, float],
    completed: Mapping[str, float],
    start: float,
    end: float,
) -> dict[str, Any]:
    """The orders planned in [start, end): accepted, accept p50/p99, placed -> completed."""
    inside = [a for a in attempts if start <= a["planned_at"] < end]
    accepted = [a for a in inside if a.get("status") == 201]
    accept = [a["latency"] for a in accepted if a.get("latency") is not None]
    lifecycles = [
        completed[a["order_id"]] - placed[a["order_id"]]
        for a in accepted
        if a["order_id"] in completed and a["order_id"] in placed
    ]
    return {
        "seconds": round(end - start, 1),
        "offered": len(inside),
        "accepted": len(accepted),
        "accept_p50_ms": _ms(percentile(accept, 50)),
        "accept_p99_ms": _ms(percentile(accept, 99)),
        "completed": len(lifecycles),
        "placed_to_completed_p50_s": percentile(lifecycles, 50),
        "placed_to_completed_p99_s": percentile(lifecycles, 99),
    }


def _cpu_share(
    before: Mapping[str, float], after: Mapping[str, float], seconds: float
) -> dict[str, float]:
    return {
        name: round(used / seconds, 3) for name, used in sorted(cpu_delta(before, after).items())
    }


async def _sample_rss(meter: ProcessMeter, stop: asyncio.Event) -> None:
    while not stop.is_set():
        meter.sample_rss()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def _wait_completed(
    orders: Iterable[str], completed: Mapping[str, float], seconds: float
) -> None:
    wanted = set(orders)
    deadline = time.time() + seconds
    while time.time() < deadline and not wanted <= completed.keys():
        await asyncio.sleep(1.0)


async def settle(probe: BacklogProbe, *, quiet_seconds: float, limit_seconds: float) -> float:
    """Wait until no consumer lags and no outbox row waits for `quiet_seconds` in a row (at most
    `limit_seconds`); returns how long it took. After a restart the sandbox carrier pushes again
    the scans of every label booked in the last 30 days, and each service catches up on its
    streams: the windows must not measure that."""
    started = time.time()
    quiet_since: float | None = None
    while time.time() - started < limit_seconds:
        lag, _ = await probe.jetstream()
        waiting = lag + await asyncio.to_thread(probe.outbox_backlog)
        now = time.time()
        if waiting > QUIET_BACKLOG:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= quiet_seconds:
            break
        await asyncio.sleep(1.0)
    return time.time() - started


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.update(UNLIMITED_GATEWAY)  # the launcher passes CROSSDOCK_GATEWAY_* through
    # The measured run is the only one: the tower's schedule would run every check at start
    # (a check new to the database runs at once), in the warm-up and baseline.
    os.environ[RECONCILE_ENABLED] = "false"
    options = MeshOptions(
        data_dir=args.data_dir,
        ports="free",
        fast=True,
        log_level=args.log_level,
        # A mesh over 100,000 seeded orders on a busy machine may take longer than the default.
        startup_timeout_seconds=args.startup_timeout,
    )
    print(f"starting the mesh on {args.data_dir} ...", flush=True)
    async with launch(options) as mesh:
        (args.data_dir / MARKER).write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))
        probe = BacklogProbe(mesh.nats_monitor_url, mesh.db_urls)
        try:
            settled = await settle(probe, quiet_seconds=5.0, limit_seconds=args.settle)
        finally:
            await probe.close()
        print(f"mesh idle after {settled:.0f} s", flush=True)
        checks = check_names()
        # Enough stock for the windows, however long the checks take (an hour at most).
        await restock(mesh, int(args.rate * (args.warmup + args.baseline + 3600)) + 100)
        recorder = EventRecorder()
        await recorder.start(mesh.nats_admin_url)
        meter = ProcessMeter({**mesh.pids, DRIVER: os.getpid()}, alone=frozenset({DRIVER}))
        driver = OrderDriver(mesh.gateway_url, mesh.demo_api_key)
        load = Load(driver, args.rate, lambda order_id: None)
        stop_sampling = asyncio.Event()
        sampler = asyncio.create_task(_sample_rss(meter, stop_sampling))
        try:
            start = time.time() + 1.0
            load.start(start)
            baseline_start = start + args.warmup
            print(f"driving {args.rate}/s: warm-up {args.warmup} s, baseline {args.baseline} s")
            await asyncio.sleep(max(0.0, baseline_start - time.time()))
            cpu_baseline_start = meter.cpu_seconds()
            meter.reset_peaks()
            checks_start = baseline_start + args.baseline
            await asyncio.sleep(max(0.0, checks_start - time.time()))
            cpu_checks_start = meter.cpu_seconds()
            peak_baseline = dict(meter.peak_rss)
            meter.reset_peaks()
            checks_start = time.time()
            print(f"running {len(checks)} checks under load ...", flush=True)
            runs = await run_checks(mesh.grpc_targets[TOWER], checks)
            checks_end = time.time()
            cpu_checks_end = meter.cpu_seconds()
            peak_during = dict(meter.peak_rss)
            await load.stop()
            windowed = [
                a["order_id"]
                for a in driver.attempts
                if a.get("status") == 201 and a["planned_at"] >= baseline_start
            ]
            print(f"checks done in {checks_end - checks_start:.1f} s; draining ...", flush=True)
            await _wait_completed(windowed, recorder.times.completed, args.drain)
        finally:
            stop_sampling.set()
            await sampler
            await driver.close()
            await recorder.stop()
        times = recorder.times
        return {
            "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(start)),
            "data_dir": str(args.data_dir),
            "rate": args.rate,
            "settle_seconds": round(settled, 1),
            "checks": [run.to_json() for run in runs],
            "checks_seconds": round(checks_end - checks_start, 2),
            "baseline": window_latencies(
                driver.attempts, times.placed, times.completed, baseline_start, checks_start
            ),
            "during": window_latencies(
                driver.attempts, times.placed, times.completed, checks_start, checks_end
            ),
            "cpu_share": {
                "baseline": _cpu_share(
                    cpu_baseline_start, cpu_checks_start, checks_start - baseline_start
                ),
                "during": _cpu_share(cpu_checks_start, cpu_checks_end, checks_end - checks_start),
            },
            "peak_rss_mb": {
                "baseline": {n: round(v / 2**20, 1) for n, v in sorted(peak_baseline.items())},
                "during": {n: round(v / 2**20, 1) for n, v in sorted(peak_during.items())},
            },
        }


def verdict(runs: Iterable[CheckRun]) -> list[str]:
    """Why the seeded histories are not consistent: each check that failed or found drift."""
    return [
        f"{run.check}: " + (f"failed: {run.error}" if run.error else f"{run.drifts} findings")
        for run in runs
        if run.error or run.drifts
    ]


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}{unit}"
    return f"{value:,}{unit}"


def render(result: Mapping[str, Any]) -> str:
    lines = [f"{'check':<24}{'scanned':>10}{'findings':>10}{'seconds':>10}  error"]
    for run in result["checks"]:
        lines.append(
            f"{run['check']:<24}{run['scanned']:>10,}{run['drifts']:>10,}"
            f"{run['seconds']:>10.2f}  {run['error'] or '-'}"
        )
    lines.append(f"all checks: {result['checks_seconds']:.1f} s under {result['rate']}/s")
    lines.append("")
    lines.append(
        f"{'window':<10}{'s':>7}{'accepted':>10}{'accept p50':>12}{'accept p99':>12}"
        f"{'done':>7}{'p->c p50':>10}{'p->c p99':>10}"
    )
    for name in ("baseline", "during"):
        w = result[name]
        lines.append(
            f"{name:<10}{w['seconds']:>7}{w['accepted']:>6}/{w['offered']:<3}"
            f"{_fmt(w['accept_p50_ms'], ' ms'):>12}{_fmt(w['accept_p99_ms'], ' ms'):>12}"
            f"{w['completed']:>7}{_fmt(w['placed_to_completed_p50_s'], ' s'):>10}"
            f"{_fmt(w['placed_to_completed_p99_s'], ' s'):>10}"
        )
    lines.append("")
    lines.append(
        f"{'process':<20}{'cpu base':>10}{'cpu during':>12}{'rss base MB':>13}{'rss during MB':>15}"
    )
    cpu, rss = result["cpu_share"], result["peak_rss_mb"]
    for name in sorted(cpu["during"]):
        lines.append(
            f"{name:<20}{cpu['baseline'].get(name, 0.0):>10.2f}{cpu['during'][name]:>12.2f}"
            f"{_fmt(rss['baseline'].get(name)):>13}{_fmt(rss['during'].get(name)):>15}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="a seeded, stopped mesh")
    parser.add_argument("--rate", type=float, default=10.0, help="orders/s offered throughout")
    parser.add_argument("--warmup", type=float, default=45.0)
    parser.add_argument("--baseline", type=float, default=60.0)
    parser.add_argument("--drain", type=float, default=120.0)
    parser.add_argument(
        "--settle", type=float, default=1800.0, help="at most this long for an idle mesh first"
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON results file")
    parser.add_argument("--expect-orders", type=int, default=0, help="orders seeded (recorded)")
    parser.add_argument("--allow-findings", action="store_true")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--startup-timeout", type=float, default=300.0, help="seconds")
    args = parser.parse_args(argv)
    for name in ("rate", "baseline"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} must be positive (got {getattr(args, name)})")
    for name in ("warmup", "drain", "settle"):
        if getattr(args, name) < 0:
            parser.error(f"--{name} must not be negative (got {getattr(args, name)})")
    if not args.data_dir.is_dir():
        parser.error(f"--data-dir {args.data_dir} is not a directory (seed it first)")
    args.data_dir = args.data_dir.resolve()
    if (args.data_dir / MARKER).exists():
        # The driver's external order ids restart at BENCH-0000001: on a mesh that has them,
        # CreateOrder answers with the old orders and nothing new is measured.
        parser.error(
            f"{args.data_dir} was benchmarked before: seed a fresh one (make bench-reconcile does)"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = asyncio.run(measure(args))
    result["seeded_orders"] = args.expect_orders
    problems = verdict(CheckRun(**run) for run in result["checks"])
    result["consistent"] = not problems
    out = args.out or default_out()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(render(result))
    print(f"results: {out}")
    if problems:
        print("NOT CONSISTENT: " + "; ".join(problems), file=sys.stderr)
        return 0 if args.allow_findings else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
