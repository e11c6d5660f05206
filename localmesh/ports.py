"""Which port each process listens on: `make run`'s fixed ones, or free ones for tests."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from localmesh.services import (
    FIXED_PORTS,
    NATS_CLUSTER_PORTS,
    REPLICA_PORT_STEP,
    SANDBOX_CARRIER,
    ServiceSpec,
    instance_names,
    port_names,
)

PortKey = tuple[str, str]  # (owner, port name), e.g. ("gateway", "http")


class PortsBusy(RuntimeError):
    """A fixed port is taken, most likely by another mesh or an older run still up."""


@dataclass(frozen=True)
class PortPlan:
    ports: Mapping[PortKey, int]

    def of(self, owner: str, name: str) -> int:
        return self.ports[(owner, name)]


def port_keys(
    services: Iterable[ServiceSpec],
    *,
    with_postgres: bool,
    with_sandbox_carrier: bool = False,
    replicas: int = 1,
    nats_nodes: int = 1,
) -> list[PortKey]:
    """Every port of the mesh; a service's replicas and the NATS nodes are owners of their own
    (`order-2`, `nats-3`: localmesh.services.instance_name)."""
    keys: list[PortKey] = []
    for node in instance_names("nats", nats_nodes):
        keys += [(node, "client"), (node, "monitor")]
        if nats_nodes > 1:
            keys.append((node, "cluster"))
    if with_postgres:
        keys.append(("postgres", "sql"))
    if with_sandbox_carrier:
        keys.append((SANDBOX_CARRIER, "http"))
    for spec in services:
        for owner in instance_names(spec.name, replicas):
            keys += [(owner, name) for name in port_names(spec)]
    return keys


def fixed_port(key: PortKey) -> int:
    """`make run`'s port for `key`: a service's replica n gets its first replica's port plus
    (n - 1) * REPLICA_PORT_STEP (order's gRPC: 50052, 50152, ...)."""
    if key in FIXED_PORTS:
        return FIXED_PORTS[key]
    if key in NATS_CLUSTER_PORTS:
        return NATS_CLUSTER_PORTS[key]
    owner, name = key
    service, _, index = owner.rpartition("-")
    if index.isdigit() and int(index) > 1 and (service, name) in FIXED_PORTS:
        return FIXED_PORTS[(service, name)] + (int(index) - 1) * REPLICA_PORT_STEP
    raise KeyError(f"no fixed port for {owner} {name}")


def fixed_plan(keys: Iterable[PortKey]) -> PortPlan:
    return PortPlan({key: fixed_port(key) for key in keys})


def free_plan(keys: Iterable[PortKey], host: str = "127.0.0.1") -> PortPlan:
    """Distinct free ports: every probe socket stays bound until all are picked."""
    chosen: dict[PortKey, int] = {}
    with contextlib.ExitStack() as probes:
        for key in keys:
            probe = probes.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            probe.bind((host, 0))
            chosen[key] = int(probe.getsockname()[1])
    return PortPlan(chosen)


def busy(plan: PortPlan, host: str = "127.0.0.1") -> list[str]:
    """`owner/name:port` of every planned port something already listens on."""
    taken = []
    for (owner, name), port in plan.ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.2)
            if probe.connect_ex((host, port)) == 0:
                taken.append(f"{owner} {name} port {port}")
    return taken
