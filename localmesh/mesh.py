"""Start and stop a whole local mesh: PostgreSQL (optional), nats-server, services, gateway.

Before anything starts, every setting each service will get is checked by that service's own
config class (localmesh.preflight): a bad one stops the launch with ConfigError and no process
started. Start order (each wave starts once the previous one is ready): PostgreSQL, nats-server,
the sandbox carrier (when it runs as its own process), the schema registry, inventory +
carrier-adapter + billing + control-tower, order + shipment, the gateway; then the demo data and
the warehouse simulator. Stop is the reverse, wave by wave, each with a bounded wait before
SIGKILL. One thread owns the children (their death signal is tied to it).

With MeshOptions.replicas = N (PostgreSQL only) each wave starts every service's first process,
then, once those are ready, its N - 1 others, each on its own ports; clients get every
replica's address. With nats_cluster = 3, three nats-servers form a JetStream cluster, and the
services start once it has a meta leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from localmesh import credentials as kept_secrets
from localmesh import environment as envs
from localmesh.nats_binary import find_nats_server
from localmesh.natsconf import ADMIN_USER, ClusterNode, nats_users, render_nats_config
from localmesh.options import MeshOptions
from localmesh.ports import PortPlan, PortsBusy, busy, fixed_plan, free_plan, port_keys
from localmesh.postgres import LocalPostgres
from localmesh.preflight import check_settings
from localmesh.probes import (
    StartFailed,
    grpc_serving,
    http_ready,
    jetstream_meta_leader,
    up_for,
    wait_ready,
)
from localmesh.procs import Child, spawn, stop_together
from localmesh.seed import seed_demo_data
from localmesh.services import REPO_ROOT, SANDBOX_CARRIER, ServiceSpec, instance_name
from services.kit.config import env_prefix_for

Report = Callable[[str], None]
# MeshOptions.process_groups: process k runs with supplementary group CHAOS_GROUP_BASE + k.
CHAOS_GROUP_BASE = 47_100
MESH_FILE = "mesh.json"


@dataclass(frozen=True)
class Mesh:
    """Where everything of a running mesh answers, and the credentials to call it."""

    data_dir: Path
    db: str
    gateway_url: str
    admin_url: str
    admin_token: str
    demo_api_key: str
    registry_url: str
    grpc_targets: Mapping[str, str]
    metrics_urls: Mapping[str, str]
    nats_url: str  # without credentials
    nats_admin_url: str  # as the unrestricted `admin` user: can read every stream
    nats_monitor_url: str
    db_urls: Mapping[str, str]
    pids: Mapping[str, int]
    log_dir: Path
    services: tuple[str, ...] = field(default=())
    # The sandbox carrier's API when it runs as its own process (MeshOptions.sandbox_process).
    sandbox_carrier_url: str = ""
    # The demo operator's key: the operator console on admin_url, scopes ops:read and ops:act.
    demo_operator_key: str = ""
    # Several processes per service (MeshOptions.replicas): the fields above name the first
    # replica's endpoints (grpc_targets: every replica's, as a gRPC `ipv4:` list); these, each.
    replicas: int = 1
    instances: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # service → processes
    instance_grpc_targets: Mapping[str, str] = field(default_factory=dict)  # process → host:port
    instance_metrics_urls: Mapping[str, str] = field(default_factory=dict)  # process → /metrics
    gateway_urls: tuple[str, ...] = ()
    # Every NATS node (MeshOptions.nats_cluster); nats_url is the first's.
    nats_urls: tuple[str, ...] = ()
    nats_monitor_urls: tuple[str, ...] = ()

    @property
    def docs_url(self) -> str:
        return self.gateway_url + "/docs"

    @property
    def openapi_url(self) -> str:
        return self.gateway_url + "/openapi.json"

    @property
    def console_url(self) -> str:
        """The operator console (sign in with demo_operator_key)."""
        return self.admin_url + "/console"

    def to_json(self) -> dict[str, object]:
        values = asdict(self)
        values["data_dir"], values["log_dir"] = str(self.data_dir), str(self.log_dir)
        return values


class MeshRunner:
    """Owns the child processes of one mesh; start() and stop() run on the same thread."""

    def __init__(
        self,
        options: MeshOptions,
        *,
        report: Report | None = None,
        abort: threading.Event | None = None,
    ) -> None:
        self.options = options
        self.data_dir = options.data_dir.resolve()
        self.log_dir = self.data_dir / "logs"
        self.report: Report = report or (lambda _line: None)
        self.abort = abort
        self.groups: list[list[Child]] = []  # in start order
        # For restarts (a chaos run's nemesis): how each process was started and how its
        # readiness is probed, by process name.
        self._launches: dict[str, tuple[list[str], dict[str, str]]] = {}
        self._probes: dict[str, Callable[[], bool]] = {}
        self._process_groups: dict[str, int] = {}
        self._postgres_cluster: LocalPostgres | None = None
        self._nats_nodes: list[tuple[str, int]] = []  # (process name, client port)
        self._lock_file: int | None = None

    # -- start ------------------------------------------------------------------------------

    def start(self) -> Mesh:
        options, started = self.options, time.monotonic()
        deadline = started + options.startup_timeout_seconds
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock()
        services = options.services()
        postgres_needed = options.db == "postgres" and any(
            spec.name not in options.db_urls for spec in services
        )
        plan = self._plan(services, postgres_needed)
        credentials = kept_secrets.load(
            self.data_dir,
            [spec.name for spec in services] + [ADMIN_USER],
            demo_api_key=options.demo_api_key,
        )
        cluster = self._postgres(plan) if postgres_needed else None
        postgres_urls = (
            {spec.name: cluster.url(spec.db_name) for spec in services} if cluster else {}
        )
        ctx = envs.MeshContext(
            options=options,
            plan=plan,
            credentials=credentials,
            db_urls=envs.resolve_db_urls(options, services, postgres_urls),
            running=frozenset(spec.name for spec in services),
        )
        # Raises ConfigError naming every bad variable; nothing is started or kept before this.
        check_settings(
            [
                (spec, self._service_environ(spec, ctx, instance))
                for spec in services
                for instance in ctx.instances(spec.name)
            ]
        )
        kept_secrets.keep(self.data_dir, credentials)
        shape = f"{options.db}"
        if options.replicas > 1:
            shape += f", {options.replicas} replicas per service"
        if options.nats_cluster > 1:
            shape += f", {options.nats_cluster}-node JetStream cluster"
        self.report(f"starting the local mesh ({shape}) in {self.data_dir}")
        if cluster is not None:
            self._start_postgres(cluster, services, deadline)
        self._start_nats(ctx, deadline)
        if options.sandbox_process:
            self._start_sandbox_carrier(ctx, deadline)
        for wave in sorted({spec.wave for spec in services}):
            self._start_wave([spec for spec in services if spec.wave == wave], ctx, deadline)
        if options.seed_demo_data:
            seeded = seed_demo_data(ctx.grpc_target("inventory"))
            self.report(
                f"demo data: {seeded.items_created} items and {seeded.locations_created} "
                "warehouses created (the rest already there), stock receipts in place"
            )
        if options.warehouse_simulator:
            command = envs.warehouse_sim_command(ctx)
            child = self._spawn("warehouse-sim", command, envs.child_environ(os.environ, {}))
            self.groups.append([child])
            wait_ready(child, up_for(child, 0.5), deadline=deadline, abort=self.abort)
        mesh = self._describe(ctx, services)
        path = self.data_dir / MESH_FILE
        # Written aside, then renamed: whoever waits for mesh.json (`make demo`, tests) never
        # reads it half written. 0600: it holds the demo keys.
        partial = path.with_name(path.name + ".partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            json.dump(mesh.to_json(), out, indent=2)
        os.replace(partial, path)
        self.report(f"mesh ready in {time.monotonic() - started:.1f}s")
        return mesh

    def _lock(self) -> None:
        descriptor = os.open(self.data_dir / "mesh.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise RuntimeError(
                f"another mesh is running on {self.data_dir} (stop it with Ctrl-C first)"
            ) from None
        self._lock_file = descriptor

    def _plan(self, services: tuple[ServiceSpec, ...], postgres: bool) -> PortPlan:
        keys = port_keys(
            services,
            with_postgres=postgres,
            with_sandbox_carrier=self.options.sandbox_process,
            replicas=self.options.replicas,
            nats_nodes=self.options.nats_cluster,
        )
        if self.options.ports == "free":
            return free_plan(keys, self.options.host)
        plan = fixed_plan(keys)
        taken = busy(plan, self.options.host)
        if taken:
            raise PortsBusy("ports already in use: " + ", ".join(taken))
        return plan

    def _spawn(self, name: str, command: list[str], environ: Mapping[str, str]) -> Child:
        self.report(f"starting {name}")
        self._launches[name] = (list(command), dict(environ))
        extra_groups: tuple[int, ...] = ()
        if self.options.process_groups:
            gid = self._process_groups.setdefault(
                name, CHAOS_GROUP_BASE + len(self._process_groups)
            )
            extra_groups = (gid,)
        return spawn(
            name,
            command,
            env=environ,
            log_path=self.log_dir / f"{name}.log",
            cwd=REPO_ROOT,
            extra_groups=extra_groups,
        )

    @staticmethod
    def _service_environ(
        spec: ServiceSpec, ctx: envs.MeshContext, instance: str | None = None
    ) -> dict[str, str]:
        """The whole environment a service process gets (checked first, then started with)."""
        own = envs.service_env(spec, ctx, instance)
        return envs.child_environ(os.environ, own, env_prefix_for(spec.name))

    def _postgres(self, plan: PortPlan) -> LocalPostgres:
        return LocalPostgres(
            self.data_dir / "postgres",
            host=self.options.host,
            port=plan.of("postgres", "sql"),
            # Each process has its own connection pool (services.kit.db: up to ~10).
            max_connections=200 * self.options.replicas,
        )

    def _start_postgres(
        self, cluster: LocalPostgres, services: tuple[ServiceSpec, ...], deadline: float
    ) -> None:
        if cluster.initdb():
            self.report(f"created a PostgreSQL cluster in {cluster.datadir}")
        self.report("starting postgres")
        child = cluster.spawn(self.log_dir / "postgres.log", REPO_ROOT)
        self.groups.append([child])
        self._postgres_cluster = cluster
        wait_ready(child, cluster.accepting, deadline=deadline, abort=self.abort)
        cluster.ensure_databases(spec.db_name for spec in services)

    def _start_nats(self, ctx: envs.MeshContext, deadline: float) -> None:
        """One nats-server, or a cluster's nodes (started together: each waits for its routes)."""
        nodes = ctx.nats_nodes
        users = nats_users(sorted(ctx.running), ctx.credentials.nats_passwords)
        binary = find_nats_server()
        group: list[Child] = []
        self.groups.append(group)
        for index, node in enumerate(nodes, start=1):
            # A cluster's stores live apart from the single server's: its streams are R3.
            nats_dir = self.data_dir / ("nats" if len(nodes) == 1 else f"nats-cluster/node-{index}")
            nats_dir.mkdir(parents=True, exist_ok=True)
            cluster = (
                ClusterNode(
                    server_name=f"crossdock-local-{index}",
                    route_port=ctx.plan.of(node, "cluster"),
                    peer_route_ports=tuple(
                        ctx.plan.of(peer, "cluster") for peer in nodes if peer != node
                    ),
                )
                if len(nodes) > 1
                else None
            )
            text = render_nats_config(
                host=ctx.host,
                client_port=ctx.plan.of(node, "client"),
                monitor_port=ctx.plan.of(node, "monitor"),
                store_dir=nats_dir / "jetstream",
                users=users,
                cluster=cluster,
            )
            config = nats_dir / "nats.conf"
            descriptor = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as out:
                out.write(text)
            name = instance_name("nats-server", index)
            command = [binary, "-c", str(config)]
            group.append(self._spawn(name, command, envs.child_environ(os.environ, {})))
        monitors = [f"http://{ctx.host}:{ctx.plan.of(node, 'monitor')}" for node in nodes]
        for child, monitor, node in zip(group, monitors, nodes, strict=True):
            ready = http_ready(monitor + "/healthz?js-enabled-only=true")
            self._probes[child.name] = ready
            self._nats_nodes.append((child.name, ctx.plan.of(node, "client")))
            wait_ready(child, ready, deadline=deadline, abort=self.abort)
        if len(nodes) > 1:
            # Streams are created by the services at start: R3 needs a meta leader every node
            # agrees on, else stream creation fails.
            ready = jetstream_meta_leader(monitors, len(nodes))
            wait_ready(group[0], ready, deadline=deadline, abort=self.abort)
            self.report(f"JetStream cluster of {len(nodes)} nodes has a meta leader")

    def _start_sandbox_carrier(self, ctx: envs.MeshContext, deadline: float) -> None:
        """Before carrier-adapter, which books with it; its pushes wait for the gateway (a
        failed push is retried on its next tick)."""
        environ = envs.child_environ(os.environ, envs.sandbox_carrier_env(ctx))
        child = self._spawn(SANDBOX_CARRIER, envs.sandbox_carrier_command(ctx), environ)
        self.groups.append([child])
        ready = http_ready(ctx.sandbox_carrier_url + "/healthz")
        wait_ready(child, ready, deadline=deadline, abort=self.abort)

    def _start_wave(self, wave: list[ServiceSpec], ctx: envs.MeshContext, deadline: float) -> None:
        """The wave's services, then their other replicas once the first ones are ready: the
        first replica migrates its database, the others find it migrated."""
        # One group: the wave's processes stop together.
        group: list[Child] = []
        self.groups.append(group)
        first = [(spec, spec.name) for spec in wave]
        others = [(spec, instance) for spec in wave for instance in ctx.instances(spec.name)[1:]]
        for part in (first, others):
            self._start_processes(part, group, ctx, deadline)

    def _start_processes(
        self,
        processes: list[tuple[ServiceSpec, str]],
        group: list[Child],
        ctx: envs.MeshContext,
        deadline: float,
    ) -> None:
        """Start these processes at once, into `group`; each is probed on its own port."""
        children: list[Child] = []
        for spec, instance in processes:
            environ = self._service_environ(spec, ctx, instance)
            children.append(self._spawn(instance, envs.service_command(spec), environ))
            group.append(children[-1])
        for (spec, instance), child in zip(processes, children, strict=True):
            if spec.serves_grpc:
                ready = grpc_serving(ctx.instance_target(instance))
            else:
                ready = http_ready(f"http://{ctx.host}:{ctx.plan.of(instance, 'http')}/healthz")
            self._probes[child.name] = ready  # a respawn waits for the same readiness
            wait_ready(child, ready, deadline=deadline, abort=self.abort)
            self.report(f"{instance} ready")

    def _describe(self, ctx: envs.MeshContext, services: tuple[ServiceSpec, ...]) -> Mesh:
        host, plan = ctx.host, ctx.plan
        return Mesh(
            data_dir=self.data_dir,
            db=self.options.db,
            gateway_url=f"http://{host}:{plan.of('gateway', 'http')}",
            admin_url=f"http://{host}:{plan.of('gateway', 'admin')}",
            admin_token=ctx.credentials.admin_token,
            demo_api_key=ctx.credentials.demo_api_key,
            registry_url=f"http://{host}:{plan.of('schema-registry', 'http')}",
            grpc_targets={s.name: ctx.grpc_target(s.name) for s in services if s.serves_grpc},
            metrics_urls={
                s.name: f"http://{host}:{plan.of(s.name, 'metrics')}/metrics" for s in services
            },
            nats_url=f"nats://{host}:{plan.of('nats', 'client')}",
            nats_admin_url=ctx.admin_nats_url,
            nats_monitor_url=f"http://{host}:{plan.of('nats', 'monitor')}",
            db_urls=dict(ctx.db_urls),
            pids={child.name: child.pid for group in self.groups for child in group},
            log_dir=self.log_dir,
            services=tuple(spec.name for spec in services),
            sandbox_carrier_url=ctx.sandbox_carrier_url if self.options.sandbox_process else "",
            demo_operator_key=ctx.credentials.demo_operator_key,
            replicas=self.options.replicas,
            instances={s.name: ctx.instances(s.name) for s in services},
            instance_grpc_targets={
                instance: ctx.instance_target(instance)
                for s in services
                if s.serves_grpc
                for instance in ctx.instances(s.name)
            },
            instance_metrics_urls={
                instance: f"http://{host}:{plan.of(instance, 'metrics')}/metrics"
                for s in services
                for instance in ctx.instances(s.name)
            },
            gateway_urls=tuple(
                f"http://{host}:{plan.of(instance, 'http')}"
                for instance in ctx.instances("gateway")
            ),
            nats_urls=tuple(f"nats://{host}:{plan.of(n, 'client')}" for n in ctx.nats_nodes),
            nats_monitor_urls=tuple(
                f"http://{host}:{plan.of(n, 'monitor')}" for n in ctx.nats_nodes
            ),
        )

    # -- while running and stop -------------------------------------------------------------

    def child(self, name: str) -> Child:
        """The running process of that name (KeyError if the mesh has none)."""
        for group in self.groups:
            for child in group:
                if child.name == name:
                    return child
        raise KeyError(name)

    def kill(self, name: str) -> None:
        """kill -9 one process (a chaos fault) and reap it."""
        child = self.child(name)
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)
        child.wait(10)

    def respawn(self, name: str, timeout: float = 90.0) -> float:
        """Start a killed process again exactly as before; seconds until it is ready."""
        old = self.child(name)
        if old.alive:
            raise RuntimeError(f"{name} is still running")
        command, environ = self._launches[name]
        started = time.monotonic()
        new = self._spawn(name, command, environ)
        for group in self.groups:
            for index, child in enumerate(group):
                if child is old:
                    group[index] = new
        probe = self._probes.get(name, up_for(new, 0.5))
        wait_ready(new, probe, deadline=started + timeout, abort=self.abort)
        return time.monotonic() - started

    def group_of(self, name: str) -> int:
        """The supplementary group a process runs in (MeshOptions.process_groups)."""
        return self._process_groups[name]

    def nats_node_names(self) -> list[str]:
        return [name for name, _port in self._nats_nodes]

    def nats_client_ports(self) -> list[int]:
        return [port for _name, port in self._nats_nodes]

    def postgres_port(self) -> int:
        if self._postgres_cluster is None:
            raise RuntimeError("this mesh runs no PostgreSQL of its own")
        return self._postgres_cluster.port

    def restart_postgres_immediately(self, timeout: float = 60.0) -> float:
        """PostgreSQL's immediate shutdown (SIGQUIT: what `pg_ctl stop -m immediate` sends; no
        checkpoint, every connection cut, crash recovery at the next start), then started
        again; seconds until it accepts connections. The server stays this mesh's child."""
        cluster = self._postgres_cluster
        if cluster is None:
            raise RuntimeError("this mesh runs no PostgreSQL of its own")
        old = self.child("postgres")
        started = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(old.pid, signal.SIGQUIT)
        if not old.wait(30):
            os.kill(old.pid, signal.SIGKILL)
            old.wait(10)
        new = cluster.spawn(self.log_dir / "postgres.log", REPO_ROOT)
        for group in self.groups:
            for index, child in enumerate(group):
                if child is old:
                    group[index] = new
        wait_ready(new, cluster.accepting, deadline=started + timeout, abort=self.abort)
        return time.monotonic() - started

    def exited(self) -> list[Child]:
        """Children that are no longer running."""
        return [child for group in self.groups for child in group if not child.alive]

    def stop(self) -> None:
        """Stop in reverse start order, one wave at a time; SIGKILL what overstays."""
        for group in reversed(self.groups):
            running = [child for child in group if child.alive]
            if running:
                self.report("stopping " + ", ".join(child.name for child in running))
            killed = stop_together(group, self.options.stop_timeout_seconds)
            if killed:
                self.report("killed (did not stop in time): " + ", ".join(killed))
        self.groups.clear()
        if self._lock_file is None:
            return  # never owned the data dir: its mesh.json belongs to another mesh
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / MESH_FILE).unlink()
        os.close(self._lock_file)
        self._lock_file = None


@contextlib.contextmanager
def start_mesh(
    options: MeshOptions,
    *,
    report: Report | None = None,
    abort: threading.Event | None = None,
) -> Iterator[Mesh]:
    """Run a mesh for the duration of the `with` block (blocking; call from one thread)."""
    runner = MeshRunner(options, report=report, abort=abort)
    try:
        yield runner.start()
    finally:
        runner.stop()


@contextlib.asynccontextmanager
async def launch(
    options: MeshOptions,
    *,
    report: Report | None = None,
    abort: threading.Event | None = None,
) -> AsyncIterator[Mesh]:
    """`async with launch(options) as mesh:` the same, from asyncio (a thread owns the mesh)."""
    loop = asyncio.get_running_loop()
    started: asyncio.Future[Mesh] = loop.create_future()
    finished: asyncio.Future[None] = loop.create_future()
    release = threading.Event()
    abort = abort or threading.Event()

    def settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)

    def own() -> None:
        error: BaseException | None = None
        try:
            with start_mesh(options, report=report, abort=abort) as mesh:
                loop.call_soon_threadsafe(settle, started, mesh, None)
                release.wait()
        except BaseException as exc:  # handed to the awaiting side
            error = exc
        loop.call_soon_threadsafe(settle, started, None, error or StartFailed("mesh stopped"))
        loop.call_soon_threadsafe(settle, finished, None, error)

    thread = threading.Thread(target=own, name="localmesh", daemon=False)
    thread.start()
    try:
        yield await started
    finally:
        abort.set()
        release.set()
        with contextlib.suppress(Exception):
            await asyncio.shield(finished)
        await asyncio.to_thread(thread.join)
