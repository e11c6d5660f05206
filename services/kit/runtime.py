"""The event side of a service, assembled in one call: database, NATS, streams, relay, consumers.

A service's `setup(server, config)` calls `start_events(...)` once. It wires the pieces the way
every crossdock service needs them and registers their shutdown hooks on the server in the order
DESIGN.md asks for: stop consuming, flush the outbox, close NATS, close the database. It also
connects tracing: outbox rows remember the request's span, the relay publishes in a PRODUCER
span, and consumers handle in a CONSUMER span, so one trace runs caller → gRPC → outbox →
consumer.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from nats.aio.client import Client as NATS
from opentelemetry.sdk.trace import TracerProvider

from services.kit import bus, outbox
from services.kit.consumer import ConsumerSettings, EventConsumer
from services.kit.db import Database
from services.kit.handlers import HandlerRegistry
from services.kit.metrics import ServiceMetrics
from services.kit.migrations import migrate
from services.kit.relay import OutboxRelay, RelaySettings
from services.kit.streams import StreamSettings, ensure_streams
from services.kit.telemetry import consumer_span, inject_trace_headers, producer_span


@dataclass
class EventRuntime:
    """What `start_events` built; the service keeps it to run units of work (`db.run`)."""

    db: Database
    nc: NATS
    relay: OutboxRelay
    consumers: list[EventConsumer] = field(default_factory=list)

    async def stop_consumers(self) -> None:
        await asyncio.gather(*(consumer.stop() for consumer in self.consumers))

    async def close(self, flush_timeout: float = 5.0) -> None:
        """Stop consuming, publish what is pending, then close NATS and the database."""
        await self.stop_consumers()
        await self.relay.stop(flush_timeout=flush_timeout)
        await self.nc.drain()
        await self.db.close()


class ShutdownHooks(Protocol):
    """The part of ServiceServer this module needs."""

    def add_shutdown_hook(
        self, hook: Callable[[], Awaitable[object]], *, name: str | None = None
    ) -> None: ...


async def start_events(
    *,
    service: str,
    db_url: str,
    nats_url: str,
    registry: HandlerRegistry | None = None,
    purpose: str = "events",
    migrations: Path | None = None,
    metrics: ServiceMetrics | None = None,
    tracer_provider: TracerProvider | None = None,
    stream_settings: StreamSettings | None = None,
    relay_settings: RelaySettings | None = None,
    consumer_settings: ConsumerSettings | None = None,
    server: ShutdownHooks | None = None,
    flush_timeout: float = 5.0,
) -> EventRuntime:
    """Open the service's event runtime and start its relay and consumers.

    `migrations` (the service's Alembic folder) is applied first: embedded mode migrates on
    start. `registry` holds the service's event handlers; there is one durable consumer
    `<service>-<purpose>` per stream it reads. With `server`, shutdown is registered on it.
    """
    if migrations is not None:
        await asyncio.to_thread(migrate, db_url, migrations)
    db = Database(db_url, service=service)
    nc = await bus.connect(nats_url, name=service)
    await ensure_streams(nc.jetstream(), stream_settings)

    # Events remember the span of the request that appended them (read on the DB worker, which
    # runs under a copy of the caller's context).
    outbox.set_trace_headers_provider(lambda: inject_trace_headers({}))
    relay = OutboxRelay(
        db,
        nc,
        settings=relay_settings,
        metrics=metrics,
        publish_scope=functools.partial(_publish_scope, tracer_provider),
    )
    runtime = EventRuntime(db=db, nc=nc, relay=relay)
    relay.start()
    if registry is not None:
        for stream in sorted(registry.streams()):
            consumer = EventConsumer(
                service=service,
                purpose=purpose,
                stream=stream,
                registry=registry,
                db=db,
                nc=nc,
                settings=consumer_settings,
                metrics=metrics,
                handler_scope=functools.partial(_handler_scope, tracer_provider),
            )
            await consumer.ensure()
            consumer.start()
            runtime.consumers.append(consumer)
    if server is not None:
        server.add_shutdown_hook(runtime.stop_consumers, name="close consumers")
        server.add_shutdown_hook(
            functools.partial(relay.stop, flush_timeout=flush_timeout), name="flush outbox"
        )
        server.add_shutdown_hook(nc.drain, name="close nats")
        server.add_shutdown_hook(db.close, name="close database")
    return runtime


def _publish_scope(
    tracer_provider: TracerProvider | None, subject: str, headers: dict[str, str]
) -> AbstractContextManager[dict[str, str]]:
    return producer_span(f"publish {subject}", headers, tracer_provider=tracer_provider)


@contextmanager
def _handler_scope(
    tracer_provider: TracerProvider | None, subject: str, headers: dict[str, str]
) -> Iterator[object]:
    with consumer_span(f"handle {subject}", headers, tracer_provider=tracer_provider) as span:
        yield span
