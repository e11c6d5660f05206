"""Wiring: `python -m services.order.main`.

Settings come from the environment once, at start (prefix CROSSDOCK_ORDER_): DB_URL, GRPC_PORT,
METRICS_PORT and INVENTORY_TARGET are required; NATS_URL, MIGRATE_ON_START, the step timeouts
and the worker / consumer knobs below are optional. `setup` is also what the integration tests
run on an in-process ServiceServer.

Shutdown order: gRPC drains (kit), the command worker and sweeper stop, then the kit stops the
consumer, flushes the outbox and closes NATS and the database; the inventory channel closes last.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import NoReturn

from crossdock.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from crossdock.shipment.v1 import shipment_service_pb2_grpc as shp_grpc

from services.kit.client import open_channel
from services.kit.config import ConfigError, ServiceConfig, setting
from services.kit.consumer import ConsumerSettings
from services.kit.migrations import service_script_location
from services.kit.relay import RelaySettings
from services.kit.runtime import start_events
from services.kit.server import ServiceServer, run_service
from services.kit.streams import StreamSettings
from services.kit.telemetry import active_tracer_provider
from services.order.api import OrderApi, add_to_server
from services.order.api.servicer import utc_now
from services.order.commands import CommandWorker
from services.order.consumers import PURPOSE, build_registry
from services.order.domain import FulfillmentSaga, StepTimeouts
from services.order.store import SERVICE
from services.order.sweeper import DeadlineSweeper


class OrderConfig(ServiceConfig, service=SERVICE):
    inventory_target: str = setting(description="host:port of the inventory gRPC service")
    shipment_target: str = setting(
        default="",
        description="host:port of the shipment service, which retries failed label bookings "
        "when an operator retries the order; empty skips those retries",
    )
    migrate_on_start: bool = setting(
        default=True,
        description="run the database migrations at start (off when a Kubernetes Job runs them)",
    )
    reserve_timeout_seconds: float = setting(
        default=300.0, minimum=0.01, description="how long reservation may take before EXCEPTION"
    )
    release_timeout_seconds: float = setting(
        default=300.0, minimum=0.01, description="how long release to the warehouse may take"
    )
    pick_timeout_seconds: float = setting(
        default=4 * 3600.0, minimum=0.01, description="how long a pick may stay unconfirmed"
    )
    sweep_interval_seconds: float = setting(
        default=5.0, minimum=0.01, description="how often overdue steps are looked for"
    )
    command_poll_interval_seconds: float = setting(
        default=0.5, minimum=0.01, description="saga command worker fallback poll interval"
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


def timeouts_from(config: OrderConfig) -> StepTimeouts:
    return StepTimeouts(
        reserve=timedelta(seconds=config.reserve_timeout_seconds),
        release_to_warehouse=timedelta(seconds=config.release_timeout_seconds),
        pick=timedelta(seconds=config.pick_timeout_seconds),
    )


async def setup(server: ServiceServer, config: OrderConfig) -> None:
    """Build the order service on the kit's server: events runtime, api, worker and sweeper."""
    background: list[CommandWorker | DeadlineSweeper] = []

    async def stop_background() -> None:
        # Added before the kit's hooks, so it runs first: nothing may use the database after.
        for task in background:
            await task.stop()

    server.add_shutdown_hook(stop_background, name="stop saga command worker and sweeper")
    saga = FulfillmentSaga(timeouts_from(config))
    runtime = await start_events(
        service=SERVICE,
        db_url=config.db_url,
        nats_url=config.nats_url,
        registry=build_registry(saga, utc_now),
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
    channel = open_channel(
        config.inventory_target, default_timeout_seconds=config.grpc_client_timeout_seconds
    )

    async def close_channel() -> None:
        await channel.close(None)

    shipment_channel = (
        open_channel(
            config.shipment_target, default_timeout_seconds=config.grpc_client_timeout_seconds
        )
        if config.shipment_target
        else None
    )

    async def close_shipment_channel() -> None:
        if shipment_channel is not None:
            await shipment_channel.close(None)

    server.add_shutdown_hook(close_channel, name="close inventory channel")
    server.add_shutdown_hook(close_shipment_channel, name="close shipment channel")
    inventory = inv_grpc.InventoryServiceStub(channel)
    worker = CommandWorker(
        runtime.db,
        saga,
        inventory,
        utc_now,
        poll_interval=config.command_poll_interval_seconds,
        shipments=shp_grpc.ShipmentServiceStub(shipment_channel) if shipment_channel else None,
    )
    sweeper = DeadlineSweeper(runtime.db, saga, utc_now, interval=config.sweep_interval_seconds)
    add_to_server(
        server, OrderApi(runtime.db, saga, inventory, clock=utc_now, on_commands=worker.wake)
    )
    background += [worker, sweeper]
    worker.start()
    sweeper.start()


def main() -> NoReturn:
    try:
        config = OrderConfig.from_env()
    except ConfigError as error:
        print(f"order: {error}", file=sys.stderr)
        sys.exit(2)
    run_service(config, setup)


if __name__ == "__main__":
    main()
