"""The nemesis: a seeded schedule of faults, and the hands that inject them into a running mesh.

`plan` turns (seed, duration, kinds) into a schedule fixed before the run starts, so a seed
replays the same faults at the same moments against the same kinds of targets. `Nemesis` walks
the schedule against a `Cluster` (the chaos mesh's processes and servers) and records what it
did and when, for the report. Each fault ends by itself: a killed process is restarted, a cut
is healed, a stopped process continued, even when the run is interrupted.

Kinds (issue "scale out ... prove it under faults"):
- kill_replica: kill -9 a random replica of a random service, restart it after a pause;
- kill_nats_node: kill -9 one node of the JetStream cluster, restart it;
- restart_postgres: `pg_ctl restart -m immediate` (every connection dies, no checkpoint);
- cut_nats / cut_postgres: one replica cannot reach NATS (then PostgreSQL) for a while;
- pause_consumer: SIGSTOP a replica past the consumers' ack_wait, then SIGCONT;
- kill_relay_leader: kill -9 the replica that holds a service's relay leadership.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from localmesh.chaos import netcut

log = logging.getLogger(__name__)


class FaultKind(StrEnum):
    KILL_REPLICA = "kill_replica"
    KILL_NATS_NODE = "kill_nats_node"
    RESTART_POSTGRES = "restart_postgres"
    CUT_NATS = "cut_nats"
    CUT_POSTGRES = "cut_postgres"
    PAUSE_CONSUMER = "pause_consumer"
    KILL_RELAY_LEADER = "kill_relay_leader"


ALL_KINDS: tuple[FaultKind, ...] = tuple(FaultKind)


@dataclass(frozen=True)
class Fault:
    """One planned fault: at `at` seconds after the start, held for `hold` seconds (the pause
    before a restart, a cut's or a stop's length), against the `pick`-th candidate target."""

    at: float
    kind: FaultKind
    hold: float
    pick: int


@dataclass
class FaultRecord:
    kind: str
    target: str
    started: float  # epoch seconds
    healed: float = 0.0
    # Seconds from healing until the target answered again (a restarted replica's readiness, a
    # NATS node back in the cluster, PostgreSQL accepting); 0 when nothing was restarted.
    recovery_seconds: float = 0.0
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Proc:
    """One process the nemesis may hit, by the name the mesh gave it ("order-2", a NATS node)."""

    label: str
    pid: int


class Cluster(Protocol):
    """What the nemesis needs from a running chaos mesh."""

    def replicas(self) -> dict[str, Sequence[Proc]]:
        """service → its live replicas (services that have consumers or a relay)."""

    def nats_nodes(self) -> Sequence[Proc]: ...

    def group_of(self, proc: Proc) -> int:
        """The supplementary group the replica runs with (for netcut)."""

    @property
    def nats_ports(self) -> Sequence[int]: ...

    @property
    def postgres_port(self) -> int: ...

    def kill(self, proc: Proc) -> None:
        """kill -9, and reap it."""

    async def restart(self, proc: Proc) -> float:
        """Start the killed process again with the same command; seconds until it is ready."""

    async def restart_postgres(self) -> float:
        """pg_ctl restart -m immediate; seconds until it accepts connections again."""

    async def relay_leader(self, service: str) -> Proc | None:
        """The replica holding the service's relay leadership now, if one does."""


@dataclass(frozen=True)
class PlanSettings:
    seed: int = 0
    duration_seconds: float = 150.0
    kinds: tuple[FaultKind, ...] = ALL_KINDS
    # The first fault waits for the workload to warm up; faults never overlap: each starts
    # `gap` seconds after the previous one healed.
    warmup_seconds: float = 10.0
    gap_seconds: float = 6.0
    cut_seconds: float = 20.0
    # SIGSTOP longer than the consumers' ack_wait (30 s by default; the run sets it from the
    # mesh's): the server redelivers the stopped replica's in-flight messages to another one
    # while it is frozen.
    pause_seconds: float = 35.0
    restart_after_seconds: float = 3.0


def plan(settings: PlanSettings) -> list[Fault]:
    """Faults in a fixed order that cycles through the kinds, shuffled per cycle by the seed,
    packed into the duration. A short run gets one of each kind it has time for."""
    rng = random.Random(settings.seed)
    holds = {
        FaultKind.CUT_NATS: settings.cut_seconds,
        FaultKind.CUT_POSTGRES: settings.cut_seconds,
        FaultKind.PAUSE_CONSUMER: settings.pause_seconds,
    }
    faults: list[Fault] = []
    at = settings.warmup_seconds
    while True:
        cycle = list(settings.kinds)
        rng.shuffle(cycle)
        added = False
        for kind in cycle:
            hold = holds.get(kind, settings.restart_after_seconds)
            if at + hold > settings.duration_seconds:
                continue
            faults.append(Fault(round(at, 3), kind, hold, rng.randrange(1 << 16)))
            at += hold + settings.gap_seconds
            added = True
        if not added:
            return faults


@dataclass
class Nemesis:
    cluster: Cluster
    faults: list[Fault]
    records: list[FaultRecord] = field(default_factory=list)
    # (service, when) of each relay leader killed, as it is killed: failover is timed from
    # there, while the killed replica is still restarting.
    leader_kills: list[tuple[str, float]] = field(default_factory=list)

    async def run(self, started_monotonic: float) -> list[FaultRecord]:
        """Inject each fault at its time (relative to `started_monotonic`)."""
        for fault in self.faults:
            await asyncio.sleep(max(0.0, started_monotonic + fault.at - time.monotonic()))
            log.info("fault %s (hold %.0f s) at t+%.0f s", fault.kind.value, fault.hold, fault.at)
            try:
                record = await self.inject(fault)
                log.info("fault %s on %s healed", record.kind, record.target or "-")
            except Exception as error:  # a fault that could not be injected is reported
                log.exception("fault %s failed", fault.kind)
                record = FaultRecord(
                    fault.kind.value, "", time.time(), note=f"not injected: {error}"
                )
            self.records.append(record)
        return self.records

    async def inject(self, fault: Fault) -> FaultRecord:
        kind = fault.kind
        if kind is FaultKind.KILL_REPLICA:
            return await self._kill_and_restart(self._pick_replica(fault), fault.hold, kind)
        if kind is FaultKind.KILL_NATS_NODE:
            nodes = self.cluster.nats_nodes()
            return await self._kill_and_restart(nodes[fault.pick % len(nodes)], fault.hold, kind)
        if kind is FaultKind.KILL_RELAY_LEADER:
            services = sorted(self.cluster.replicas())
            service = services[fault.pick % len(services)]
            leader = await self.cluster.relay_leader(service)
            if leader is None:
                return FaultRecord(kind.value, service, time.time(), note="no relay leader found")
            return await self._kill_and_restart(leader, fault.hold, kind, service)
        if kind is FaultKind.RESTART_POSTGRES:
            started = time.time()
            recovery = await self.cluster.restart_postgres()
            return FaultRecord(kind.value, "postgres", started, time.time(), recovery)
        if kind in (FaultKind.CUT_NATS, FaultKind.CUT_POSTGRES):
            proc = self._pick_replica(fault)
            ports = (
                list(self.cluster.nats_ports)
                if kind is FaultKind.CUT_NATS
                else [self.cluster.postgres_port]
            )
            started = time.time()
            with netcut.cut(self.cluster.group_of(proc), ports):
                await asyncio.sleep(fault.hold)
            return FaultRecord(kind.value, proc.label, started, time.time())
        if kind is FaultKind.PAUSE_CONSUMER:
            proc = self._pick_replica(fault)
            started = time.time()
            _signal(proc, signal.SIGSTOP)
            try:
                await asyncio.sleep(fault.hold)
            finally:
                _signal(proc, signal.SIGCONT)
            return FaultRecord(kind.value, proc.label, started, time.time())
        raise ValueError(f"unknown fault kind {kind}")

    def _pick_replica(self, fault: Fault) -> Proc:
        replicas = self.cluster.replicas()
        procs = [proc for service in sorted(replicas) for proc in replicas[service]]
        if not procs:
            raise RuntimeError("no live replica to hit")
        return procs[fault.pick % len(procs)]

    async def _kill_and_restart(
        self, proc: Proc, hold: float, kind: FaultKind, leader_of: str = ""
    ) -> FaultRecord:
        started = time.time()
        label = proc.label
        self.cluster.kill(proc)
        if leader_of:
            self.leader_kills.append((leader_of, started))
        await asyncio.sleep(hold)
        healed = time.time()
        recovery = await self.cluster.restart(proc)
        return FaultRecord(kind.value, label, started, healed, recovery)


def _signal(proc: Proc, number: signal.Signals) -> None:
    try:
        os.kill(proc.pid, number)
    except ProcessLookupError:
        log.warning("%s is gone; %s not sent", proc.label, number.name)
