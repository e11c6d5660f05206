"""The processes of a local mesh, in start order, and the ports `make run` gives them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ServiceSpec:
    """One crossdock process started with `python -m <module>`."""

    name: str  # the service name, as in ServiceConfig(service=...) and the NATS user
    module: str
    # Start wave: a wave starts once every process of the waves before it is ready.
    wave: int
    # Named listen ports besides metrics: "grpc", "http", "admin".
    ports: tuple[str, ...] = ("grpc",)
    # Env setting (without prefix) → the service whose gRPC target it names.
    targets: Mapping[str, str] = field(default_factory=dict)
    # Readers of settings outside the service's config class ("module:function", called with
    # the service's environment, raising ConfigError): the launcher runs them before any start.
    setting_checks: tuple[str, ...] = ()

    @property
    def serves_grpc(self) -> bool:
        return "grpc" in self.ports

    @property
    def db_name(self) -> str:
        """Its database's name (PostgreSQL) and SQLite file stem, as in deploy/k8s."""
        return self.name.replace("-", "_")


SCHEMA_REGISTRY = ServiceSpec(
    "schema-registry", "services.schema_registry.main", wave=0, ports=("grpc", "http")
)
INVENTORY = ServiceSpec("inventory", "services.inventory.main", wave=1)
CARRIER_ADAPTER = ServiceSpec(
    "carrier-adapter",
    "services.carrier_adapter.main",
    wave=1,
    setting_checks=("services.carrier_adapter.config:load_accounts",),
)
BILLING = ServiceSpec("billing", "services.billing.main", wave=1)
# Reads every stream; its only calls are the exceptions workbench's operator actions, through
# the owners' RPCs (channels connect on first use, so it need not wait for them to start).
CONTROL_TOWER = ServiceSpec(
    "control-tower",
    "services.control_tower.main",
    wave=1,
    targets={
        "SHIPMENT_TARGET": "shipment",
        "CARRIER_ADAPTER_TARGET": "carrier-adapter",
        # Redrives of the consuming services' dead letters (their DeadLetterService).
        "ORDER_TARGET": "order",
        "INVENTORY_TARGET": "inventory",
        "BILLING_TARGET": "billing",
    },
)
ORDER = ServiceSpec(
    "order",
    "services.order.main",
    wave=2,
    targets={"INVENTORY_TARGET": "inventory", "SHIPMENT_TARGET": "shipment"},
)
SHIPMENT = ServiceSpec(
    "shipment",
    "services.shipment.main",
    wave=2,
    targets={"INVENTORY_TARGET": "inventory", "CARRIER_ADAPTER_TARGET": "carrier-adapter"},
)
GATEWAY = ServiceSpec(
    "gateway",
    "gateway.main",
    wave=3,
    ports=("http", "admin"),
    targets={
        "ORDER_TARGET": "order",
        "INVENTORY_TARGET": "inventory",
        "SHIPMENT_TARGET": "shipment",
        "BILLING_TARGET": "billing",
        "CARRIER_TARGET": "carrier-adapter",
        # The operator console's timeline.
        "TOWER_TARGET": "control-tower",
    },
)
# Not a crossdock service: the stand-in for a remote carrier (tools/sandbox_carrier.py).
SANDBOX_CARRIER = "sandbox-carrier"

ALL_SERVICES = (
    SCHEMA_REGISTRY,
    INVENTORY,
    CARRIER_ADAPTER,
    BILLING,
    CONTROL_TOWER,
    ORDER,
    SHIPMENT,
    GATEWAY,
)

# `make run`'s ports: stable, so bookmarks and the README keep working across runs.
FIXED_PORTS: Mapping[tuple[str, str], int] = {
    ("nats", "client"): 4222,
    ("nats", "monitor"): 8222,
    ("postgres", "sql"): 5433,
    ("schema-registry", "grpc"): 50050,
    ("schema-registry", "http"): 8085,
    ("schema-registry", "metrics"): 9100,
    ("inventory", "grpc"): 50051,
    ("inventory", "metrics"): 9101,
    ("order", "grpc"): 50052,
    ("order", "metrics"): 9102,
    ("shipment", "grpc"): 50053,
    ("shipment", "metrics"): 9103,
    ("billing", "grpc"): 50054,
    ("billing", "metrics"): 9104,
    ("carrier-adapter", "grpc"): 50055,
    ("carrier-adapter", "metrics"): 9105,
    ("control-tower", "grpc"): 50056,
    ("control-tower", "metrics"): 9107,
    ("gateway", "http"): 8080,
    ("gateway", "admin"): 8081,
    ("gateway", "metrics"): 9106,
    # The sandbox carrier as its own process (MeshOptions.sandbox_process).
    (SANDBOX_CARRIER, "http"): 8086,
}


# A 3-node JetStream cluster (MeshOptions.nats_cluster): nodes 2 and 3 (node 1 is FIXED_PORTS'
# `nats`), and every node's route port.
NATS_CLUSTER_PORTS: Mapping[tuple[str, str], int] = {
    ("nats", "cluster"): 6222,
    ("nats-2", "client"): 4223,
    ("nats-2", "monitor"): 8223,
    ("nats-2", "cluster"): 6223,
    ("nats-3", "client"): 4224,
    ("nats-3", "monitor"): 8224,
    ("nats-3", "cluster"): 6224,
}

# Replica n of a service listens on its first replica's fixed ports + (n - 1) * this.
REPLICA_PORT_STEP = 100


def instance_name(owner: str, index: int) -> str:
    """Process `index` (1-based) of a service or of the NATS cluster: the first keeps the plain
    name (so a one-replica mesh is named as before), the others get `-<index>`."""
    if index < 1:
        raise ValueError(f"instance index starts at 1 (got {index})")
    return owner if index == 1 else f"{owner}-{index}"


def instance_names(owner: str, count: int) -> tuple[str, ...]:
    return tuple(instance_name(owner, index) for index in range(1, count + 1))


def mesh_services() -> tuple[ServiceSpec, ...]:
    """The services to start, in start order."""
    return ALL_SERVICES


def port_names(spec: ServiceSpec) -> tuple[str, ...]:
    """Every port a service listens on: its named ports and its Prometheus metrics."""
    return (*spec.ports, "metrics")
