"""One chaos run: a replica mesh, a REST workload, the nemesis, a quiet period, the checker.

    python -m localmesh.chaos.run --duration 150 --seed 1 --out test-artifacts/chaos

1. Start a mesh on PostgreSQL with `replicas` processes per service and a 3-node JetStream
   cluster, each service replica in a supplementary group of its own (for netcut), the sandbox
   carrier as its own process pushing scans through the gateway.
2. Drive the workload over REST for `duration` seconds while the nemesis injects its schedule,
   sampling consumer lag and relay leadership every second.
3. Stop injecting, let the mesh settle (every accepted order terminal, or a timeout), gather the
   history through the services' public APIs and the streams, and check it.
4. Write the report (JSON, summary, plot) and stop the mesh. Exit status 0 only with zero
   violations and every planned fault injected.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import grpc
from crossdock.inventory.v1 import inventory_pb2
from crossdock.inventory.v1 import inventory_service_pb2 as inventory_svc
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inventory_grpc

from localmesh.chaos import netcut
from localmesh.chaos.checker import check
from localmesh.chaos.gather import gather, take_stock_baseline
from localmesh.chaos.history import AcceptedOrder
from localmesh.chaos.nemesis import ALL_KINDS, FaultKind, Nemesis, PlanSettings, Proc, plan
from localmesh.chaos.report import RunReport
from localmesh.chaos.workload import Workload, WorkloadSettings
from localmesh.mesh import Mesh, MeshRunner
from localmesh.options import MeshOptions
from localmesh.procs import Child
from localmesh.seed import DEMO_ITEMS, DEMO_WAREHOUSES

log = logging.getLogger(__name__)

# The pause fault freezes a replica this long past the ack_wait, so the server redelivers what
# it held to another replica while it is frozen.
PAUSE_PAST_ACK_WAIT_SECONDS = 5.0

_LEADER = re.compile(r"^crossdock_relay_leader\s+([0-9.]+)", re.MULTILINE)


@dataclass(frozen=True)
class ChaosSettings:
    seed: int = 1
    duration_seconds: float = 150.0
    rate_per_second: float = 4.0
    replicas: int = 2
    nats_nodes: int = 3
    settle_seconds: float = 180.0
    kinds: tuple[FaultKind, ...] = ALL_KINDS
    cut_seconds: float = 20.0
    gap_seconds: float = 6.0
    # The mesh's consumer ack_wait; the pause fault holds a replica frozen 5 s past it.
    ack_wait_seconds: float = 30.0
    out_dir: Path = Path("test-artifacts/chaos")
    data_dir: Path | None = None


T = TypeVar("T")


class OwnerThread:
    """Runs calls on the thread that started the mesh: a child's death signal is tied to the
    thread that spawned it (setpriv --pdeathsig), so a process restarted from a worker thread
    would be killed when that thread ends."""

    def __init__(self) -> None:
        self._requests: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...], Any]] = queue.Queue()

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._requests.put((function, args, future))
        return await asyncio.wrap_future(future)

    def serve_until(self, done: concurrent.futures.Future[Any]) -> None:
        while not done.done():
            try:
                function, args, future = self._requests.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                future.set_result(function(*args))
            except BaseException as error:  # handed to the caller, which reports it
                future.set_exception(error)


class MeshCluster:
    """The nemesis's view of a running chaos mesh (localmesh.chaos.nemesis.Cluster)."""

    def __init__(self, runner: MeshRunner, mesh: Mesh, owner: OwnerThread) -> None:
        self.runner = runner
        self.mesh = mesh
        self.owner = owner
        self._http: aiohttp.ClientSession | None = None

    # Services whose replicas the nemesis hits: the ones that consume or relay events.
    HIT = (
        "order",
        "inventory",
        "shipment",
        "billing",
        "carrier-adapter",
        "control-tower",
        "gateway",
    )

    def replicas(self) -> dict[str, Sequence[Proc]]:
        found: dict[str, Sequence[Proc]] = {}
        for service in self.HIT:
            names = self.mesh.instances.get(service, ())
            found[service] = [self._target(name) for name in names if self._alive(name)]
        return found

    def service_of(self, name: str) -> str:
        for service, names in self.mesh.instances.items():
            if name in names:
                return service
        raise KeyError(name)

    def nats_nodes(self) -> Sequence[Proc]:
        return [self._target(name) for name in self.runner.nats_node_names() if self._alive(name)]

    def group_of(self, proc: Proc) -> int:
        return self.runner.group_of(proc.label)

    @property
    def nats_ports(self) -> Sequence[int]:
        return self.runner.nats_client_ports()

    @property
    def postgres_port(self) -> int:
        return self.runner.postgres_port()

    def kill(self, proc: Proc) -> None:
        self.runner.kill(proc.label)

    async def restart(self, proc: Proc) -> float:
        return await self.owner.call(self.runner.respawn, proc.label)

    async def restart_postgres(self) -> float:
        return await self.owner.call(self.runner.restart_postgres_immediately)

    async def relay_leader(self, service: str) -> Proc | None:
        for name, leading in (await self.leadership(service)).items():
            if leading:
                return self._target(name)
        return None

    async def leadership(self, service: str) -> dict[str, bool]:
        """replica → whether it reports holding the relay's leadership (unreachable: False)."""
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
        found: dict[str, bool] = {}
        for name in self.mesh.instances.get(service, ()):
            url = self.mesh.instance_metrics_urls.get(name)
            if url is None or not self._alive(name):
                found[name] = False
                continue
            try:
                async with self._http.get(url) as answer:
                    match = _LEADER.search(await answer.text())
            except (aiohttp.ClientError, TimeoutError):
                match = None
            found[name] = bool(match and float(match.group(1)) == 1.0)
        return found

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    def _child(self, name: str) -> Child:
        return self.runner.child(name)

    def _alive(self, name: str) -> bool:
        try:
            return self._child(name).alive
        except KeyError:
            return False

    def _target(self, name: str) -> Proc:
        return Proc(name, self._child(name).pid)


@dataclass
class LagSampler:
    """Every second: total consumer pending (+ ack pending) across the cluster, from /jsz."""

    monitor_url: str
    samples: list[tuple[float, int]] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        params = {"accounts": "true", "consumers": "true"}
        timeout = aiohttp.ClientTimeout(total=3)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while not stop.is_set():
                try:
                    async with http.get(self.monitor_url + "/jsz", params=params) as answer:
                        found = await answer.json(content_type=None)
                    self.samples.append((time.time(), _pending(found)))
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    pass  # the node may be the one the nemesis killed; the next sample says
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)

    def catch_up(self, healed: float, before: float) -> float | None:
        """Seconds from `healed` until the lag is back to what it was just before the fault
        (at least 50), or None if it never was within the samples."""
        earlier = [lag for at, lag in self.samples if before - 5 <= at <= before]
        normal = max(50, 2 * max(earlier, default=0))
        for at, lag in self.samples:
            if at >= healed and lag <= normal:
                return at - healed
        return None


async def wait_until_quiet(
    monitor_url: str, *, quiet_seconds: float = 5.0, timeout_seconds: float = 90.0
) -> float:
    """Wait until nothing moves: no consumer has a message pending or unacked, and no stream
    grew, for `quiet_seconds` in a row. Orders being terminal is not enough: a cancelled order's
    pick may still be confirmed and restocked after it. Returns the seconds waited."""
    started = time.monotonic()
    params = {"accounts": "true", "consumers": "true"}
    last: tuple[int, int] | None = None
    since = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        while time.monotonic() - started < timeout_seconds:
            try:
                async with http.get(monitor_url + "/jsz", params=params) as answer:
                    found = await answer.json(content_type=None)
                now = (_pending(found), _messages(found))
            except (aiohttp.ClientError, TimeoutError, ValueError):
                now = (-1, -1)
            if now != last or now[0] != 0:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_seconds:
                break
            await asyncio.sleep(0.5)
    return time.monotonic() - started


def _messages(jsz: dict[str, object]) -> int:
    total = 0
    for account in jsz.get("account_details", []) or []:  # type: ignore[attr-defined]
        for stream in account.get("stream_detail", []) or []:
            total += int(stream.get("state", {}).get("last_seq", 0))
    return total


def _pending(jsz: dict[str, object]) -> int:
    total = 0
    for account in jsz.get("account_details", []) or []:  # type: ignore[attr-defined]
        for stream in account.get("stream_detail", []) or []:
            if stream.get("name") == "DLQ":
                continue
            for consumer in stream.get("consumer_detail", []) or []:
                total += int(consumer.get("num_pending", 0))
                total += int(consumer.get("num_ack_pending", 0))
    return total


async def _watch_failover(
    cluster: MeshCluster, nemesis: Nemesis, stop: asyncio.Event, found: list[float]
) -> None:
    """After each kill of a relay leader: seconds from the kill until another replica (or the
    restarted one) reports the leadership."""
    seen = 0
    while not stop.is_set():
        await asyncio.sleep(0.2)
        for service, killed_at in nemesis.leader_kills[seen:]:
            seen += 1
            while time.time() - killed_at < 60:
                if any((await cluster.leadership(service)).values()):
                    found.append(time.time() - killed_at)
                    break
                await asyncio.sleep(0.2)


async def _drive(
    settings: ChaosSettings, runner: MeshRunner, mesh: Mesh, owner: OwnerThread
) -> tuple[Workload, Nemesis, LagSampler, list[float]]:
    cluster = MeshCluster(runner, mesh, owner)
    faults = plan(
        PlanSettings(
            seed=settings.seed,
            duration_seconds=settings.duration_seconds,
            kinds=settings.kinds,
            cut_seconds=settings.cut_seconds,
            gap_seconds=settings.gap_seconds,
            pause_seconds=settings.ack_wait_seconds + PAUSE_PAST_ACK_WAIT_SECONDS,
        )
    )
    nemesis = Nemesis(cluster, faults)
    workload = Workload(
        mesh.gateway_urls or (mesh.gateway_url,),
        mesh.demo_api_key,
        WorkloadSettings(
            rate_per_second=settings.rate_per_second,
            duration_seconds=settings.duration_seconds,
            seed=settings.seed,
        ),
    )
    sampler = LagSampler(mesh.nats_monitor_urls[0] if mesh.nats_monitor_urls else "")
    failovers: list[float] = []
    stop = asyncio.Event()
    started = time.monotonic()
    background = [
        asyncio.create_task(sampler.run(stop)),
        asyncio.create_task(_watch_failover(cluster, nemesis, stop, failovers)),
    ]
    try:
        await asyncio.gather(workload.run(), nemesis.run(started))
        await workload.settle(settings.settle_seconds)
        if sampler.monitor_url:
            await wait_until_quiet(sampler.monitor_url)
    finally:
        stop.set()
        await asyncio.gather(*background, return_exceptions=True)
        await cluster.close()
    return workload, nemesis, sampler, failovers


def restock(mesh: Mesh, settings: ChaosSettings) -> None:
    """Receive enough of every demo item in each warehouse for every order the run may place
    (3 lines of 3 units at most), as a purchase order would: the run tests faults, not stock."""
    quantity = int(settings.rate_per_second * settings.duration_seconds * 9) + 100
    with grpc.insecure_channel(mesh.grpc_targets["inventory"]) as channel:
        stub = inventory_grpc.InventoryServiceStub(channel)
        for warehouse in DEMO_WAREHOUSES:
            stub.ReceiveStock(
                inventory_svc.ReceiveStockRequest(
                    location_id=warehouse.location_id,
                    source=inventory_pb2.RECEIPT_SOURCE_PURCHASE_ORDER,
                    source_reference=f"CHAOS-{settings.seed}-{warehouse.location_id}",
                    lines=[
                        inventory_svc.ReceiptLineInput(sku=item.sku, quantity=quantity)
                        for item in DEMO_ITEMS
                    ],
                    idempotency_key=f"chaos-{settings.seed}-{warehouse.location_id}",
                ),
                timeout=60,
            )


def chaos_options(data_dir: Path, settings: ChaosSettings) -> MeshOptions:
    """The mesh a chaos run needs: replicas on PostgreSQL, the cluster, processes in groups."""
    return MeshOptions(
        data_dir=data_dir,
        ports="free",
        db="postgres",
        replicas=settings.replicas,
        nats_cluster=settings.nats_nodes,
        sandbox_process=True,
        process_groups=True,
        # Parcels travel a 2-day route in ~3 s: orders complete within the run.
        sandbox_time_scale=57600,
        startup_timeout_seconds=300.0,
        consumer_ack_wait_seconds=settings.ack_wait_seconds,
    )


def run(settings: ChaosSettings) -> RunReport:
    """Start a chaos mesh, run on it, stop it."""
    if not netcut.available():
        raise SystemExit("the chaos run needs iptables as root (tools/install_system_deps.sh)")
    data_dir = settings.data_dir or Path(tempfile.mkdtemp(prefix="crossdock-chaos-"))
    # As root PostgreSQL runs as `postgres`, which must reach the data dir.
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o755)
    runner = MeshRunner(
        chaos_options(data_dir, settings), report=lambda line: log.info("mesh: %s", line)
    )
    try:
        mesh = runner.start()
        return run_on(runner, mesh, settings)
    finally:
        runner.stop()


def run_on(runner: MeshRunner, mesh: Mesh, settings: ChaosSettings) -> RunReport:
    """One chaos run on a running chaos mesh (started with chaos_options, on this thread)."""
    netcut.clear_all()
    try:
        restock(mesh, settings)
        # The baseline reads positions and the stream's last sequence: both must already
        # include the receipts (published by inventory's relay after its commit), or the
        # receipts would count twice.
        if mesh.nats_monitor_urls:
            asyncio.run(wait_until_quiet(mesh.nats_monitor_urls[0]))
        baseline = take_stock_baseline(mesh)
        # The workload and the nemesis run on their own thread's loop; this thread, which owns
        # the mesh's children, serves their restarts.
        owner = OwnerThread()
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="chaos") as pool:
            driven = pool.submit(asyncio.run, _drive(settings, runner, mesh, owner))
            owner.serve_until(driven)
            workload, nemesis, sampler, failovers = driven.result()
    finally:
        netcut.clear_all()
    history = gather(mesh, baseline)
    accepted = tuple(
        AcceptedOrder(order_id, key) for order_id, key in sorted(workload.log.accepted.items())
    )
    history = replace(history, accepted=accepted)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    (settings.out_dir / "chaos-history.json").write_text(history.to_json())
    catch_ups = [
        value
        for record in nemesis.records
        if record.healed and (value := sampler.catch_up(record.healed, record.started)) is not None
    ]
    report = RunReport(
        seed=settings.seed,
        duration_seconds=settings.duration_seconds,
        shape={
            "replicas": settings.replicas,
            "nats nodes": settings.nats_nodes,
            "db": "postgres",
            "rate/s": settings.rate_per_second,
        },
        workload=workload.log,
        faults=nemesis.records,
        verdict=check(history),
        recoveries={"relay leader failover": failovers, "consumer catch-up": catch_ups},
        notes=[f"planned {len(nemesis.faults)} faults, injected {len(nemesis.records)}"],
    )
    report.write(settings.out_dir)
    return report


def parse_args(argv: list[str] | None = None) -> ChaosSettings:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duration", type=float, default=150.0, help="seconds of workload")
    parser.add_argument("--rate", type=float, default=4.0, help="orders per second offered")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--settle", type=float, default=180.0, help="max seconds to settle")
    parser.add_argument("--cut", type=float, default=20.0, help="seconds a replica is cut off")
    parser.add_argument("--gap", type=float, default=6.0, help="seconds between faults")
    parser.add_argument(
        "--ack-wait", type=float, default=30.0, help="the consumers' ack_wait, in seconds"
    )
    parser.add_argument("--out", type=Path, default=Path("test-artifacts/chaos"))
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--kinds", default=",".join(ALL_KINDS), help="comma-separated fault kinds")
    args = parser.parse_args(argv)
    kinds = tuple(FaultKind(kind.strip()) for kind in args.kinds.split(",") if kind.strip())
    return ChaosSettings(
        seed=args.seed,
        duration_seconds=args.duration,
        rate_per_second=args.rate,
        replicas=args.replicas,
        settle_seconds=args.settle,
        cut_seconds=args.cut,
        gap_seconds=args.gap,
        ack_wait_seconds=args.ack_wait,
        kinds=kinds,
        out_dir=args.out,
        data_dir=args.data_dir,
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    report = run(parse_args(argv))
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
