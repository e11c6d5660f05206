"""Wiring: `python -m services.inventory.main`.

Settings come from the environment once, at start (prefix CROSSDOCK_INVENTORY_): DB_URL,
GRPC_PORT and METRICS_PORT are required; NATS_URL, MIGRATE_ON_START and the relay / consumer
knobs below are optional. The kit's run_service owns the process (logs, metrics, health,
SIGTERM). `setup` is also what the integration tests run, on an in-process ServiceServer.

Shutdown order (kit): gRPC drains, the consumer finishes its batch, the relay flushes the outbox,
then NATS and the database close.
"""

from __future__ import annotations

import sys
from typing import NoReturn

from services.inventory.api import InventoryApi, add_to_server
from services.inventory.api.servicer import utc_now
from services.inventory.consumers import PURPOSE, build_registry
from services.inventory.store import SERVICE, UlidIds
from services.kit.config import ConfigError, ServiceConfig, setting
from services.kit.consumer import ConsumerSettings
from services.kit.migrations import service_script_location
from services.kit.relay import RelaySettings
from services.kit.runtime import start_events
from services.kit.server import ServiceServer, run_service
from services.kit.streams import StreamSettings
from services.kit.telemetry import active_tracer_provider


class InventoryConfig(ServiceConfig, service=SERVICE):
    migrate_on_start: bool = setting(
        default=True,
        description="run the database migrations at start (off when a Kubernetes Job runs them)",
    )
    relay_poll_interval_seconds: float = setting(
        default=1.0, minimum=0.01, description="outbox relay fallback poll interval"
    )
    consumer_batch_size: int = setting(
        default=100, minimum=1, maximum=1000, description="events fetched and applied per batch"
    )
    consumer_fetch_timeout_seconds: float = setting(
        default=1.0, minimum=0.05, description="how long one consumer fetch waits for events"
    )
    consumer_nak_base_delay_seconds: float = setting(
        default=1.0, minimum=0.01, description="first redelivery delay after a transient failure"
    )


async def setup(server: ServiceServer, config: InventoryConfig) -> None:
    """Build the inventory service on the kit's server: events runtime, then the api.

    The kit's `start_events` migrates (embedded mode), opens the database and NATS, starts the
    relay and the `inventory-order-events` consumer, and registers their shutdown hooks in the
    DESIGN.md order (stop consuming, flush the outbox, close NATS, close the database).
    """
    ids = UlidIds()
    runtime = await start_events(
        service=SERVICE,
        db_url=config.db_url,
        nats_url=config.nats_url,
        registry=build_registry(ids, utc_now),
        purpose=PURPOSE,
        migrations=service_script_location(SERVICE) if config.migrate_on_start else None,
        metrics=server.metrics,
        tracer_provider=active_tracer_provider(),
        relay_settings=RelaySettings(poll_interval=config.relay_poll_interval_seconds),
        consumer_settings=ConsumerSettings(
            batch_size=config.consumer_batch_size,
            fetch_timeout=config.consumer_fetch_timeout_seconds,
            nak_base_delay=config.consumer_nak_base_delay_seconds,
        ),
        server=server,
        flush_timeout=config.shutdown_hook_timeout_seconds / 2,
        registry_target=config.schema_registry_target or None,
        stream_settings=StreamSettings(replicas=config.stream_replicas),
    )
    add_to_server(server, InventoryApi(runtime.db, ids, utc_now))


def main() -> NoReturn:
    try:
        config = InventoryConfig.from_env()
    except ConfigError as error:
        print(f"inventory: {error}", file=sys.stderr)
        sys.exit(2)
    run_service(config, setup)


if __name__ == "__main__":
    main()
