"""Each process's environment, assembled from the options, the port plan and the secrets.

Pure functions: no process is started here, so tests can check every variable against the
services' own ServiceConfig declarations.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from localmesh.credentials import Credentials
from localmesh.natsconf import ADMIN_USER, user_url, user_urls
from localmesh.options import DEMO_KEY_ENV, MeshOptions
from localmesh.ports import PortPlan
from localmesh.services import SANDBOX_CARRIER, ServiceSpec, instance_names
from services.kit.config import env_prefix_for

# The sandbox carrier in fast mode: its clock runs MeshOptions.sandbox_time_scale times real
# time; no random exceptions or returns, so every demo order reaches invoiced.
FAST_SANDBOX = {
    "ACCOUNT_SANDBOX_EXCEPTION_RATE": "0",
    "ACCOUNT_SANDBOX_RETURN_RATE": "0",
    "SANDBOX_PUSH_INTERVAL_SECONDS": "0.5",
}


def fast_sandbox(options: MeshOptions) -> dict[str, str]:
    return FAST_SANDBOX | {"ACCOUNT_SANDBOX_TIME_SCALE": f"{options.sandbox_time_scale:g}"}


# tools.sandbox_carrier reads the webhook secret it signs with from here.
SANDBOX_SECRET_ENV = "CROSSDOCK_SANDBOX_CARRIER_WEBHOOK_SECRET"
# A local mesh should stop within seconds on Ctrl-C, not a cluster's 20 s drain.
LOCAL_SHUTDOWN = {"SHUTDOWN_GRACE_SECONDS": "3", "SHUTDOWN_HOOK_TIMEOUT_SECONDS": "4"}


@dataclass(frozen=True)
class MeshContext:
    options: MeshOptions
    plan: PortPlan
    credentials: Credentials
    db_urls: Mapping[str, str]  # service → SQLAlchemy URL, overrides applied
    running: frozenset[str]  # names of the services in this mesh

    @property
    def host(self) -> str:
        return self.options.host

    def instances(self, service: str) -> tuple[str, ...]:
        """The process names (and port owners) of a service's replicas: `order`, `order-2`."""
        return instance_names(service, self.options.replicas)

    @property
    def nats_nodes(self) -> tuple[str, ...]:
        return instance_names("nats", self.options.nats_cluster)

    def instance_target(self, instance: str) -> str:
        """One replica's gRPC address."""
        return f"{self.host}:{self.plan.of(instance, 'grpc')}"

    def grpc_target(self, service: str) -> str:
        """What a client of `service` dials: its one address, or every replica's as a gRPC
        `ipv4:` list that the kit's channels balance round_robin (services.kit.client)."""
        addresses = [self.instance_target(instance) for instance in self.instances(service)]
        return addresses[0] if len(addresses) == 1 else "ipv4:" + ",".join(addresses)

    def nats_url(self, user: str) -> str:
        """Every NATS node's URL for `user`: a client fails over between them."""
        password = self.credentials.nats_passwords[user]
        ports = [self.plan.of(node, "client") for node in self.nats_nodes]
        return user_urls(self.host, ports, user, password)

    @property
    def admin_nats_url(self) -> str:
        """The first node only: one URL any NATS client (or the CLI) takes as it is; the
        cluster's other nodes serve the same streams."""
        password = self.credentials.nats_passwords[ADMIN_USER]
        return user_url(self.host, self.plan.of("nats", "client"), ADMIN_USER, password)

    @property
    def sandbox_carrier_url(self) -> str:
        return f"http://{self.host}:{self.plan.of(SANDBOX_CARRIER, 'http')}"


def sqlite_url(data_dir: Path, spec: ServiceSpec) -> str:
    return f"sqlite:///{data_dir.resolve() / (spec.db_name + '.db')}"


def resolve_db_urls(
    options: MeshOptions, services: Sequence[ServiceSpec], postgres_url_of: Mapping[str, str]
) -> dict[str, str]:
    """Per service: its override, else its PostgreSQL database, else its SQLite file."""
    urls = {}
    for spec in services:
        if spec.name in options.db_urls:
            urls[spec.name] = options.db_urls[spec.name]
        elif options.db == "postgres":
            urls[spec.name] = postgres_url_of[spec.name]
        else:
            urls[spec.name] = sqlite_url(options.data_dir, spec)
    return urls


def service_settings(
    spec: ServiceSpec, ctx: MeshContext, instance: str | None = None
) -> dict[str, str]:
    """The settings of one process of the service (`instance`, default its first), without the
    CROSSDOCK_<SERVICE>_ prefix. Replicas differ only in their listen ports."""
    plan, host = ctx.plan, ctx.host
    owner = instance or spec.name
    values = {
        "DB_URL": ctx.db_urls[spec.name],
        "NATS_URL": ctx.nats_url(spec.name),
        "LOG_LEVEL": ctx.options.log_level,
        # One migrator per database (Alembic takes no lock): the first replica, which the
        # launcher starts before the others (localmesh.mesh).
        "MIGRATE_ON_START": "true" if owner == spec.name else "false",
        **LOCAL_SHUTDOWN,
    }
    if ctx.options.nats_cluster > 1:
        values["STREAM_REPLICAS"] = str(ctx.options.nats_cluster)
    if spec.name != "schema-registry":
        values["SCHEMA_REGISTRY_TARGET"] = ctx.grpc_target("schema-registry")
    if ctx.options.consumer_ack_wait_seconds is not None:
        # Read by the services that consume events; the others have no such setting.
        values["CONSUMER_ACK_WAIT_SECONDS"] = str(ctx.options.consumer_ack_wait_seconds)
    for setting, target in spec.targets.items():
        values[setting] = ctx.grpc_target(target) if target in ctx.running else ""
    if spec.name == "gateway":
        values |= {
            "HTTP_HOST": host,
            "HTTP_PORT": str(plan.of(owner, "http")),
            "ADMIN_HOST": host,
            "ADMIN_PORT": str(plan.of(owner, "admin")),
            "ADMIN_TOKEN": ctx.credentials.admin_token,
            "DEMO_OPERATOR_KEY": ctx.credentials.demo_operator_key,
            "BIND_HOST": host,
            "METRICS_PORT": str(plan.of(owner, "metrics")),
            # A laptop's webhook receivers live on localhost or the LAN; production keeps the
            # default (private destinations refused).
            "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        }
        return values
    values |= {
        "BIND_HOST": host,
        "GRPC_PORT": str(plan.of(owner, "grpc")),
        "METRICS_PORT": str(plan.of(owner, "metrics")),
    }
    if spec.name == "schema-registry":
        values |= {"HTTP_HOST": host, "HTTP_PORT": str(plan.of(owner, "http"))}
    if spec.name == "carrier-adapter":
        values |= {
            "CARRIER_ACCOUNTS": "sandbox",
            "ACCOUNT_SANDBOX_WEBHOOK_SECRET": ctx.credentials.sandbox_webhook_secret,
            "SANDBOX_PUSH": "direct",
        }
        if ctx.options.sandbox_process:
            # The simulation, its clock and its pushes are the sandbox process's.
            values |= {"ACCOUNT_SANDBOX_ENDPOINT": ctx.sandbox_carrier_url, "SANDBOX_PUSH": "off"}
        elif ctx.options.fast:
            values |= fast_sandbox(ctx.options)
    return values


def service_env(spec: ServiceSpec, ctx: MeshContext, instance: str | None = None) -> dict[str, str]:
    """The CROSSDOCK_* variables the launcher sets for one process of a service."""
    prefix = env_prefix_for(spec.name)
    settings = service_settings(spec, ctx, instance)
    env = {prefix + name: value for name, value in settings.items()}
    if spec.name == "gateway":
        env[DEMO_KEY_ENV] = ctx.credentials.demo_api_key
    return env


def service_command(spec: ServiceSpec) -> list[str]:
    return [sys.executable, "-m", spec.module]


def warehouse_sim_command(ctx: MeshContext) -> list[str]:
    """The simulator confirms picks and, once a return parcel is delivered, receives its goods
    (after a short dock delay; damaged at the mesh's return damage rate)."""
    fast = ctx.options.fast
    return [
        sys.executable,
        "-m",
        "tools.warehouse_sim",
        "--inventory",
        ctx.grpc_target("inventory"),
        "--order",
        ctx.grpc_target("order"),
        "--shipment",
        ctx.grpc_target("shipment"),
        "--delay",
        "0.5" if fast else "5",
        "--return-delay",
        "0.5" if fast else "30",
        "--damage-rate",
        str(ctx.options.return_damage_rate),
        "--poll",
        "0.5",
    ]


def sandbox_carrier_command(ctx: MeshContext) -> list[str]:
    """The sandbox carrier process (MeshOptions.sandbox_process): in fast mode with the same
    clock and rates FAST_SANDBOX gives the in-process one; it pushes to the gateway's carrier
    route, the way a real carrier's webhooks arrive."""
    plan, host = ctx.plan, ctx.host
    command = [
        sys.executable,
        "-m",
        "tools.sandbox_carrier",
        "--host",
        host,
        "--port",
        str(plan.of(SANDBOX_CARRIER, "http")),
        "--push-url",
        f"http://{host}:{plan.of('gateway', 'http')}/v1/carriers/sandbox/webhooks",
        "--journal",
        str(ctx.options.data_dir.resolve() / "sandbox-carrier.jsonl"),
        "--log-level",
        ctx.options.log_level,
    ]
    if ctx.options.fast:
        command += [
            "--time-scale",
            fast_sandbox(ctx.options)["ACCOUNT_SANDBOX_TIME_SCALE"],
            "--exception-rate",
            FAST_SANDBOX["ACCOUNT_SANDBOX_EXCEPTION_RATE"],
            "--return-rate",
            FAST_SANDBOX["ACCOUNT_SANDBOX_RETURN_RATE"],
            "--push-interval",
            FAST_SANDBOX["SANDBOX_PUSH_INTERVAL_SECONDS"],
        ]
    return command


def sandbox_carrier_env(ctx: MeshContext) -> dict[str, str]:
    """Its secret travels in the environment, never on a command line `ps` shows."""
    return {SANDBOX_SECRET_ENV: ctx.credentials.sandbox_webhook_secret}


# services.kit.faults.FAULT_FILE_ENV (the launcher imports no service code).
FAULT_FILE_ENV = "CROSSDOCK_FAULT_FILE"


def child_environ(
    base: Mapping[str, str], own: Mapping[str, str], prefix: str = ""
) -> dict[str, str]:
    """The parent's environment with the process's own settings on top.

    The parent's settings under the process's own `prefix` pass through (tuning knobs such as
    CROSSDOCK_ORDER_PICK_TIMEOUT_SECONDS); other CROSSDOCK_* variables are dropped, so a setting
    meant for one service (or a stray CROSSDOCK_NATS_URL) never leaks into another. The kit's
    fault file (services.kit.faults, tests only) reaches every process: its spec names the point.
    """
    kept = {
        key: value
        for key, value in base.items()
        if not key.startswith("CROSSDOCK_")
        or (prefix and key.startswith(prefix))
        or key == FAULT_FILE_ENV
    }
    kept["PYTHONUNBUFFERED"] = "1"
    return kept | dict(own)
