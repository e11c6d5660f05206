"""The event side of a service, assembled in one call: database, NATS, streams, relay, consumers.

A service's `setup(server, config)` calls `start_events(config, server, handlers)` once; its
config class derives from `EventServiceConfig` (publishes) or `ConsumingServiceConfig` (also
consumes), which declare the relay, consumer and migration settings every such service has.
`open_event_runtime(...)` is the same assembly with every part given explicitly (tests, tools).

It wires the pieces the way every crossdock service needs them and registers their shutdown hooks
on the server in the order a clean stop needs: stop consuming, flush the outbox, close NATS, close
the database. It also connects tracing: outbox rows remember the request's span, the relay
publishes in a PRODUCER span, and consumers handle in a CONSUMER span, so one trace runs
caller → gRPC → outbox → consumer.

With a schema registry (`registry_target`), the service first registers the schemas of the events
it produces, and stamps their ids in `ce-dataschema`; a refused schema stops the start
(SchemaRejectedError, after a log line naming the subject and why). Its consumers resolve the
ids they receive through the registry. See services.kit.schema_ids.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from google.protobuf.message import Message
from nats.aio.client import Client as NATS
from opentelemetry.sdk.trace import TracerProvider

from services.kit import bus, outbox
from services.kit import events as ev
from services.kit.config import DatabaseServiceConfig, setting
from services.kit.consumer import ConsumerSettings, EventConsumer
from services.kit.db import Database
from services.kit.db_wait import retry_while_unavailable
from services.kit.dlq_service import ServicerRegistry, add_dead_letter_service
from services.kit.handlers import HandlerRegistry
from services.kit.ledger_service import add_event_ledger_service
from services.kit.metrics import ServiceMetrics
from services.kit.migrations import migrate, service_script_location
from services.kit.registry_client import SchemaRegistryClient
from services.kit.relay import OutboxRelay, RelaySettings
from services.kit.schema_ids import SchemaResolver, register_produced_schemas
from services.kit.streams import StreamSettings, ensure_streams
from services.kit.telemetry import (
    active_tracer_provider,
    consumer_span,
    inject_trace_headers,
    producer_span,
)
from services.kit.uow import EventMapper, UnitsOfWork

# Migrating at start waits this long for a database that went away after the start's probe
# (services.kit.db_wait): a restart or failover takes seconds.
MIGRATE_DATABASE_WAIT_SECONDS = 60.0


class EventServiceConfig(DatabaseServiceConfig):
    """The settings of a service that publishes events through the outbox."""

    relay_poll_interval_seconds: float = setting(
        default=1.0, minimum=0.01, description="outbox relay fallback poll interval"
    )

    relay_linger_ms: float = setting(
        default=5.0,
        minimum=0.0,
        maximum=1000.0,
        description="after a commit wakes the relay, how long it waits for more rows to publish "
        "in the same batch (0: none)",
    )

    def relay_settings(self) -> RelaySettings:
        return RelaySettings(
            poll_interval=self.relay_poll_interval_seconds, linger=self.relay_linger_ms / 1000
        )

    def consumer_settings(self) -> ConsumerSettings | None:
        """None: this service consumes no events."""
        return None


class ConsumingServiceConfig(EventServiceConfig):
    """The settings of a service that also consumes events (one durable consumer per stream)."""

    consumer_batch_size: int = setting(
        default=100,
        minimum=1,
        maximum=1000,
        description="events asked for per pull request, and applied per batch at most",
    )
    consumer_fetch_timeout_seconds: float = setting(
        default=1.0,
        minimum=0.05,
        description="how long one pull request stays open (an idle consumer renews it this often)",
    )
    consumer_nak_base_delay_seconds: float = setting(
        default=1.0, minimum=0.01, description="first redelivery delay after a transient failure"
    )
    consumer_ack_wait_seconds: float = setting(
        default=30.0,
        minimum=1.0,
        description="how long a delivered event may stay unacknowledged before the server "
        "redelivers it, to any replica (the redelivery delay of events a crashed or frozen "
        "process held); longer than applying one batch takes",
    )
    consumer_linger_ms: float = setting(
        default=10.0,
        minimum=0.0,
        maximum=1000.0,
        description="once fewer than a batch of events arrived, how long to wait for more to "
        "apply in the same transaction (0: none)",
    )

    def consumer_settings(self) -> ConsumerSettings:
        return ConsumerSettings(
            batch_size=self.consumer_batch_size,
            fetch_timeout=self.consumer_fetch_timeout_seconds,
            nak_base_delay=self.consumer_nak_base_delay_seconds,
            linger=self.consumer_linger_ms / 1000,
            ack_wait=self.consumer_ack_wait_seconds,
        )


@dataclass
class EventRuntime:
    """What `start_events` built; the service keeps it to run units of work (`db.run`)."""

    db: Database
    nc: NATS
    relay: OutboxRelay
    consumers: list[EventConsumer] = field(default_factory=list)
    schema_registry: SchemaRegistryClient | None = None
    # Message full name → schema id registered at start (empty without a registry).
    schema_ids: dict[str, int] = field(default_factory=dict)

    @property
    def units(self) -> UnitsOfWork:
        """Runs the service's use cases in units of work on this database."""
        return UnitsOfWork(self.db)

    async def stop_consumers(self) -> None:
        await asyncio.gather(*(consumer.stop() for consumer in self.consumers))

    async def close_schema_registry(self) -> None:
        """Forget the schema ids this runtime installed and close its registry client."""
        client, self.schema_registry = self.schema_registry, None
        if client is not None:
            ev.uninstall_schema_ids(self.schema_ids)
            await client.close()

    async def close(self, flush_timeout: float = 5.0) -> None:
        """Stop consuming, publish what is pending, then close NATS, the database, the registry."""
        await self.stop_consumers()
        await self.relay.stop(flush_timeout=flush_timeout)
        await self.nc.drain()
        await self.db.close()
        await self.close_schema_registry()


class ShutdownHooks(Protocol):
    """The part of ServiceServer this module needs."""

    def add_shutdown_hook(
        self, hook: Callable[[], Awaitable[object]], *, name: str | None = None
    ) -> None: ...


class ServerHooks(ShutdownHooks, ServicerRegistry, Protocol):
    """The part of ServiceServer `start_events` needs."""

    @property
    def metrics(self) -> ServiceMetrics | None: ...


async def start_events(
    config: EventServiceConfig,
    server: ServerHooks,
    handlers: HandlerRegistry | None = None,
    *,
    event_mapper: EventMapper | None = None,
    purpose: str = "events",
    produced: Sequence[type[Message]] | None = None,
) -> EventRuntime:
    """Open the service's event runtime from its config and tie its shutdown to `server`.

    Migrates first when `MIGRATE_ON_START` is on; `handlers` are the service's event handlers
    (one durable consumer `<service>-<purpose>` per stream they read); `event_mapper` is the
    service's one domain-event mapper, used by `uow.publish`.

    A consuming service (its config a ConsumingServiceConfig) also serves DeadLetterService,
    redriving its own consumers' dead letters in place (services.kit.dlq_service); it covers
    the consumers in `runtime.consumers` at the time of each call, also those the service
    starts itself after this.

    Every service serves EventLedgerService (services.kit.ledger_service): its outbox is what
    reconciliation compares with its consumers' inboxes, also when it has no consumer.
    """
    runtime = await open_event_runtime(
        service=config.service,
        db_url=config.db_url,
        nats_url=config.nats_url,
        registry=handlers,
        purpose=purpose,
        migrations=service_script_location(config.service) if config.migrate_on_start else None,
        metrics=server.metrics,
        tracer_provider=active_tracer_provider(),
        stream_settings=StreamSettings(replicas=config.stream_replicas),
        relay_settings=config.relay_settings(),
        consumer_settings=config.consumer_settings(),
        server=server,
        flush_timeout=config.shutdown_hook_timeout_seconds / 2,
        registry_target=config.schema_registry_target or None,
        produced=produced,
        event_mapper=event_mapper,
    )
    if config.consumer_settings() is not None:
        add_dead_letter_service(server, config.service, runtime.nc, runtime.consumers)
    add_event_ledger_service(server, config.service, runtime.db, runtime.relay, runtime.consumers)
    return runtime


async def open_event_runtime(
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
    registry_target: str | None = None,
    produced: Sequence[type[Message]] | None = None,
    registry_wait_seconds: float = 30.0,
    event_mapper: EventMapper | None = None,
) -> EventRuntime:
    """Open the service's event runtime and start its relay and consumers.

    `migrations` (the service's Alembic folder) is applied first: embedded mode migrates on
    start. `registry` holds the service's event handlers; there is one durable consumer
    `<service>-<purpose>` per stream it reads. With `server`, shutdown is registered on it.

    `registry_target` (the schema registry's gRPC HOST:PORT; None or "" = no registry) makes
    the service register the schemas of the events it produces before anything else starts:
    `produced` (default: the catalog's events whose producer is `service`). An unreachable
    registry is waited for up to `registry_wait_seconds`; a refused schema raises
    SchemaRejectedError after logging why, so the service refuses to start.
    """
    schema_client: SchemaRegistryClient | None = None
    schema_ids: dict[str, int] = {}
    if registry_target:
        schema_client = SchemaRegistryClient(registry_target)
        try:
            schema_ids = await register_produced_schemas(
                schema_client, service, events=produced, wait_seconds=registry_wait_seconds
            )
        except BaseException:
            await schema_client.close()
            raise
        ev.install_schema_ids(schema_ids)
    try:
        return await _start(
            service=service,
            db_url=db_url,
            nats_url=nats_url,
            registry=registry,
            purpose=purpose,
            migrations=migrations,
            metrics=metrics,
            tracer_provider=tracer_provider,
            stream_settings=stream_settings,
            relay_settings=relay_settings,
            consumer_settings=consumer_settings,
            server=server,
            flush_timeout=flush_timeout,
            schema_client=schema_client,
            schema_ids=schema_ids,
            event_mapper=event_mapper,
        )
    except BaseException:
        if schema_client is not None:
            ev.uninstall_schema_ids(schema_ids)
            await schema_client.close()
        raise


async def _start(
    *,
    service: str,
    db_url: str,
    nats_url: str,
    registry: HandlerRegistry | None,
    purpose: str,
    migrations: Path | None,
    metrics: ServiceMetrics | None,
    tracer_provider: TracerProvider | None,
    stream_settings: StreamSettings | None,
    relay_settings: RelaySettings | None,
    consumer_settings: ConsumerSettings | None,
    server: ShutdownHooks | None,
    flush_timeout: float,
    schema_client: SchemaRegistryClient | None,
    schema_ids: dict[str, int],
    event_mapper: EventMapper | None,
) -> EventRuntime:
    if migrations is not None:
        await retry_while_unavailable(
            migrate,
            db_url,
            migrations,
            timeout_seconds=MIGRATE_DATABASE_WAIT_SECONDS,
            what="migrating",
        )
    db = Database(db_url, service=service, event_mapper=event_mapper)
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
    runtime = EventRuntime(
        db=db, nc=nc, relay=relay, schema_registry=schema_client, schema_ids=schema_ids
    )
    resolver = SchemaResolver(schema_client) if schema_client is not None else None
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
                schema_resolver=resolver,
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
        if schema_client is not None:
            server.add_shutdown_hook(runtime.close_schema_registry, name="close schema registry")
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
