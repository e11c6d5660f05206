"""The gRPC server every crossdock service runs, and the `run_service` entry point.

`ServiceServer` is a grpc.aio server with the kit's interceptors (tracing first, then
ServiceInterceptor, applied to the registered handlers themselves unless further interceptors
must run inside it), standard health checking, reflection, and a graceful shutdown:

1. health → NOT_SERVING (and Watch streams end), so probes and balancers stop routing here;
2. stop accepting calls; in-flight calls get up to `grace_seconds` to finish;
3. shutdown hooks run in the order they were added (the event pipeline adds "flush the outbox"
   and "close consumers"), each within `hook_timeout_seconds`; a failing hook is logged and the
   others still run.

`run_service` wraps a service's `main`: logging, tracing, metrics endpoint, server, signals.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar, cast

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import Histogram

from services.kit import event_loop, gc_policy
from services.kit.config import ConfigError, ServiceConfig
from services.kit.db_wait import wait_for_database
from services.kit.health import NOT_SERVING, SERVING, DrainingHealthServicer
from services.kit.interceptors import GenericHandler, ServiceInterceptor, grpc_latency_histogram
from services.kit.logging import configure_logging
from services.kit.metrics import ServiceMetrics, serve_metrics
from services.kit.telemetry import grpc_server_interceptor, setup_telemetry, shutdown_telemetry

__all__ = ["ServiceServer", "ShutdownHook", "run_service"]

log = logging.getLogger(__name__)

# Clients balance round_robin over a headless Service's addresses (kit client), but gRPC only
# resolves DNS again when a connection closes: ending every connection after 5 minutes (with 30 s
# for calls in flight) makes clients find pods added by a scale-up within minutes.
CONNECTION_AGE_OPTIONS = [
    ("grpc.max_connection_age_ms", 5 * 60 * 1000),
    ("grpc.max_connection_age_grace_ms", 30 * 1000),
]

ShutdownHook = Callable[[], Awaitable[object]]
_ServicerT = TypeVar("_ServicerT")
_ConfigT = TypeVar("_ConfigT", bound=ServiceConfig)

_HEALTH_SERVICE = "grpc.health.v1.Health"


@dataclass(frozen=True)
class _Hook:
    name: str
    run: ShutdownHook


class ServiceServer:
    """A service's gRPC server: add servicers and hooks, `start()`, then `shutdown()`.

    Construct it inside the running event loop (grpc.aio binds the server to it).
    """

    def __init__(
        self,
        service: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        grace_seconds: float = 20.0,
        hook_timeout_seconds: float = 10.0,
        metrics: ServiceMetrics | None = None,
        latency: Histogram | None = None,
        tracer_provider: TracerProvider | None = None,
        interceptors: Sequence[grpc.aio.ServerInterceptor[Any, Any]] = (),
    ) -> None:
        """`latency` defaults to a histogram registered in `metrics`' registry; `interceptors`
        run after the kit's own (inside the correlation id and error mapping)."""
        self.service = service
        self.metrics = metrics
        self._address = f"{host}:{port}"
        self._grace_seconds = grace_seconds
        self._hook_timeout_seconds = hook_timeout_seconds
        if latency is None and metrics is not None:
            latency = grpc_latency_histogram(metrics.registry)
        chain: list[grpc.aio.ServerInterceptor[Any, Any]] = []
        if tracer_provider is not None:
            chain.append(grpc_server_interceptor(tracer_provider))  # outermost: spans see all
        kit = ServiceInterceptor(
            error_domain=f"{service}.crossdock",
            requests=metrics.grpc_requests if metrics is not None else None,
            latency=latency,
        )
        if interceptors:
            # They must run inside the kit's: it stays an interceptor, ahead of them.
            chain.append(kit)
            chain.extend(interceptors)
        self._server = grpc.aio.server(interceptors=chain, options=CONNECTION_AGE_OPTIONS)
        # Where servicers are registered: wrapping each handler once costs nothing per call,
        # where an interceptor costs grpc.aio's chain on every call (see interceptors.py).
        self._registrar: grpc.aio.Server = (
            self._server
            if interceptors
            else cast(grpc.aio.Server, _KitRegistrar(self._server, kit))
        )
        self.health = DrainingHealthServicer()
        self._service_names: list[str] = []
        self._hooks: list[_Hook] = []
        self._port: int | None = None
        self._stopping: asyncio.Task[bool] | None = None

    @classmethod
    def from_config(
        cls,
        config: ServiceConfig,
        *,
        metrics: ServiceMetrics | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> ServiceServer:
        """A server bound and timed as the service's configuration says."""
        return cls(
            config.service,
            host=config.bind_host,
            port=config.grpc_port,
            grace_seconds=config.shutdown_grace_seconds,
            hook_timeout_seconds=config.shutdown_hook_timeout_seconds,
            metrics=metrics,
            tracer_provider=tracer_provider,
        )

    @property
    def port(self) -> int:
        """The bound port (useful when configured with port 0); only after start()."""
        if self._port is None:
            raise RuntimeError("the server has not started")
        return self._port

    @property
    def draining(self) -> bool:
        """True once shutdown began (handlers doing long waits may check it and wrap up)."""
        return bool(self.health.draining)

    def add_servicer(
        self,
        add_to_server: Callable[[_ServicerT, grpc.aio.Server], None],
        servicer: _ServicerT,
        service: str | ServiceDescriptor,
    ) -> None:
        """Register a servicer, e.g.

        `server.add_servicer(order_service_pb2_grpc.add_OrderServiceServicer_to_server, api,
        order_service_pb2.DESCRIPTOR.services_by_name["OrderService"])`
        """
        if self._port is not None:
            raise RuntimeError("add servicers before start()")
        add_to_server(servicer, self._registrar)
        name = service if isinstance(service, str) else service.full_name
        self._service_names.append(name)

    def add_shutdown_hook(self, hook: ShutdownHook, *, name: str | None = None) -> None:
        """Run `await hook()` after in-flight calls drained; hooks run in the order added."""
        label = name or str(getattr(hook, "__qualname__", None) or repr(hook))
        self._hooks.append(_Hook(label, hook))

    async def start(self) -> int:
        """Bind, start serving, report SERVING; returns the bound port."""
        if self._port is not None:
            raise RuntimeError("the server has already started")
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._registrar)
        reflection.enable_server_reflection(
            [*self._service_names, _HEALTH_SERVICE, reflection.SERVICE_NAME], self._registrar
        )
        # NOT_SERVING until the port is open, so an early probe never sees a false SERVING.
        for name in ("", *self._service_names):
            await self.health.set(name, NOT_SERVING)
        port = self._server.add_insecure_port(self._address)
        if port == 0:
            raise RuntimeError(f"could not bind the gRPC server to {self._address}")
        await self._server.start()
        self._port = port
        for name in ("", *self._service_names):
            await self.health.set(name, SERVING)
        log.info(
            "gRPC server serving", extra={"grpc_port": port, "grpc_services": self._service_names}
        )
        return port

    async def shutdown(self) -> bool:
        """Drain and run the hooks; True when every hook succeeded. Safe to call twice."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._shutdown())
        return await asyncio.shield(self._stopping)

    async def _shutdown(self) -> bool:
        log.info(
            "shutting down: draining in-flight calls", extra={"grace_seconds": self._grace_seconds}
        )
        await self.health.drain()
        await self._server.stop(self._grace_seconds)
        log.info("gRPC server stopped; running shutdown hooks", extra={"hooks": len(self._hooks)})
        ok = True
        for hook in self._hooks:
            try:
                await asyncio.wait_for(hook.run(), timeout=self._hook_timeout_seconds)
            except TimeoutError:
                ok = False
                log.error(
                    "shutdown hook %s timed out",
                    hook.name,
                    extra={"timeout_seconds": self._hook_timeout_seconds},
                )
            except Exception:
                ok = False
                log.exception("shutdown hook %s failed", hook.name)
        log.info("shutdown complete", extra={"clean": ok})
        return ok


class _KitRegistrar:
    """Stands in for the grpc.aio server where generated code registers a servicer's handlers,
    and registers them wrapped by the kit's ServiceInterceptor."""

    def __init__(self, server: grpc.aio.Server, kit: ServiceInterceptor) -> None:
        self._server = server
        self._kit = kit

    def add_generic_rpc_handlers(self, handlers: Sequence[GenericHandler]) -> None:
        self._server.add_generic_rpc_handlers(
            [self._kit.wrap_generic_handler(handler) for handler in handlers]
        )

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        # grpc-stubs predates add_registered_method_handlers (grpcio 1.62).
        self._server.add_registered_method_handlers(  # type: ignore[attr-defined]
            service, self._kit.wrap_method_handlers(service, handlers)
        )


def install_stop_signals(
    loop: asyncio.AbstractEventLoop,
    signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
) -> asyncio.Event:
    """An event set by the first SIGTERM/SIGINT.

    Later signals are logged and ignored: process managers often deliver two at once (Ctrl-C
    reaches the whole process group, then the manager forwards a SIGTERM), and the shutdown is
    bounded anyway by the grace period and the hook timeouts. SIGKILL remains the hard stop.
    """
    stop = asyncio.Event()

    def on_signal(signum: signal.Signals) -> None:
        if stop.is_set():
            log.info("%s received again; already shutting down", signum.name)
            return
        log.info("%s received", signum.name)
        stop.set()

    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    return stop


ServiceSetup = Callable[[ServiceServer, _ConfigT], Awaitable[None]]


def run_service(
    config: _ConfigT | type[_ConfigT],
    setup: ServiceSetup[_ConfigT],
    *,
    environ: Mapping[str, str] | None = None,
) -> NoReturn:
    """Run a service until SIGTERM/SIGINT, shut down gracefully, exit (0 when clean).

    `config` is the service's config class (read here from `environ`, default os.environ) or an
    already-read config. `setup(server, config)` builds the service: stores, servicers
    (`server.add_servicer`), relays and consumers with their shutdown hooks
    (`server.add_shutdown_hook`). The server's `metrics` is the service's ServiceMetrics,
    served on `config.metrics_port`. A bad configuration exits with code 2 after one JSON log
    line naming every offending variable.
    """
    if isinstance(config, type):
        try:
            config = config.from_env(environ)
        except ConfigError as error:
            configure_logging(config.service)
            log.error("invalid configuration", extra={"problems": error.problems})
            logging.shutdown()
            sys.exit(2)
    configure_logging(config.service, config.log_level)
    try:
        code = event_loop.run(_serve(config, setup))
    except Exception:
        log.exception("service %s failed", config.service)
        code = 1
    logging.shutdown()
    sys.exit(code)


# Once its shutdown is done a process must end: a task that ignores its cancellation, or a
# non-daemon thread blocked on a peer that went away at the same moment (NATS stopping beside
# it), would otherwise keep it alive: an orphan beside a local mesh, a pod waiting for SIGKILL.
EXIT_DEADLINE_SECONDS = 10.0


def _exit_by_deadline(seconds: float = EXIT_DEADLINE_SECONDS) -> None:
    """Force the process out (code 1) if it is still running `seconds` from now."""

    def force() -> None:
        stuck = [
            thread.name
            for thread in threading.enumerate()
            if not thread.daemon and thread is not threading.main_thread()
        ]
        log.error(
            "still running %.0f s after shutdown; exiting now", seconds, extra={"threads": stuck}
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(1)

    timer = threading.Timer(seconds, force)
    timer.daemon = True  # a process that ends by itself does not wait for it
    timer.start()


async def _serve(config: _ConfigT, setup: ServiceSetup[_ConfigT]) -> int:
    stop = install_stop_signals(asyncio.get_running_loop())
    log.info("starting", extra={"config": config.public_view()})
    tracer_provider = setup_telemetry(config.service)
    metrics = ServiceMetrics(config.service)
    metrics_endpoint = serve_metrics(metrics, host=config.bind_host, port=config.metrics_port)
    server = ServiceServer.from_config(config, metrics=metrics, tracer_provider=tracer_provider)
    clean = False
    try:
        try:
            await wait_for_database(
                config.db_url, timeout_seconds=config.startup_database_wait_seconds, stop=stop
            )
            if not stop.is_set():
                await setup(server, config)
            if not stop.is_set():
                await server.start()
                gc_policy.settle_heap()
                log.info(
                    "ready", extra={"grpc_port": server.port, "metrics_port": metrics_endpoint.port}
                )
                await stop.wait()
        finally:
            # Also after a failed setup: hooks close whatever setup had already opened.
            clean = await server.shutdown()
    finally:
        _exit_by_deadline()
        await asyncio.to_thread(metrics_endpoint.close)
        shutdown_telemetry()
    return 0 if clean else 1
