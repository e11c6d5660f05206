"""Wiring: `python -m services.shipment.main`.

Settings come from the environment once, at start (prefix CROSSDOCK_SHIPMENT_): DB_URL,
GRPC_PORT, METRICS_PORT, INVENTORY_TARGET and CARRIER_ADAPTER_TARGET are required; the rest
have defaults. The kit's run_service owns the process (logs, metrics, health, SIGTERM); `setup`
is also what the integration tests run.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import NoReturn

from crossdock.carrier.v1 import carrier_service_pb2_grpc as carrier_grpc
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inv_grpc

from services.kit.client import open_channel
from services.kit.config import ConfigError, ServiceConfig, setting
from services.kit.consumer import ConsumerSettings
from services.kit.migrations import service_script_location
from services.kit.relay import RelaySettings
from services.kit.runtime import start_events
from services.kit.server import ServiceServer, run_service
from services.kit.streams import StreamSettings
from services.kit.telemetry import active_tracer_provider
from services.shipment.api.servicer import ShipmentApi, add_to_server
from services.shipment.consumers import PURPOSE, build_registry
from services.shipment.store import SERVICE
from services.shipment.worker import ShipmentWorker, WorkerSettings


class ShipmentConfig(ServiceConfig, service=SERVICE):
    inventory_target: str = setting(description="host:port of inventory (item master, locations)")
    carrier_adapter_target: str = setting(
        description="host:port of carrier-adapter (rates and labels)"
    )
    migrate_on_start: bool = setting(
        default=True,
        description="run the database migrations at start (off when a Kubernetes Job runs them)",
    )
    max_package_weight_kg: float = setting(
        default=30.0, minimum=0.1, description="heaviest box the packer fills before starting one"
    )
    carrier_preference: str = setting(
        default="",
        description="comma-separated carrier codes preferred, in order, among equally cheap rates",
    )
    label_timeout_seconds: float = setting(
        default=10.0, minimum=0.05, description="deadline of one rate or label call"
    )
    label_max_attempts: int = setting(
        default=8, minimum=1, description="label attempts before the shipment is LABEL_FAILED"
    )
    retry_base_delay_seconds: float = setting(
        default=0.5, minimum=0.01, description="first retry delay of packing or booking"
    )
    retry_max_delay_seconds: float = setting(
        default=60.0, minimum=0.01, description="longest retry delay of packing or booking"
    )
    worker_poll_interval_seconds: float = setting(
        default=0.5, minimum=0.01, description="worker fallback poll interval"
    )
    worker_lease_seconds: float = setting(
        default=120.0,
        minimum=0.5,
        description="how long a worker holds a pick or a label booking before another replica "
        "may take it over (after a crash); keep it above LABEL_TIMEOUT_SECONDS",
    )
    worker_concurrency: int = setting(
        default=16, minimum=1, maximum=256, description="rate and label calls in flight at once"
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
    consumer_ack_wait_seconds: float = setting(
        default=30.0, minimum=1, description="redelivery delay of an event a crashed worker held"
    )
    consumer_max_deliver: int = setting(
        default=20,
        minimum=2,
        description="deliveries before dead-lettering; scans wait here for their label's commit",
    )

    def worker_settings(self) -> WorkerSettings:
        preference = tuple(c.strip() for c in self.carrier_preference.split(",") if c.strip())
        return WorkerSettings(
            max_box_weight_kg=self.max_package_weight_kg,
            carrier_preference=preference,
            label_timeout_seconds=self.label_timeout_seconds,
            label_max_attempts=self.label_max_attempts,
            retry_base_delay_seconds=self.retry_base_delay_seconds,
            retry_max_delay_seconds=self.retry_max_delay_seconds,
            poll_interval_seconds=self.worker_poll_interval_seconds,
            concurrency=self.worker_concurrency,
            lease_seconds=self.worker_lease_seconds,
        )


def utc_now() -> datetime:
    return datetime.now(UTC)


async def setup(server: ServiceServer, config: ShipmentConfig) -> None:
    """Channels, the worker, the events runtime (migrate, DB, NATS, relay, consumers), the api."""
    timeout = config.grpc_client_timeout_seconds
    inventory_channel = open_channel(config.inventory_target, default_timeout_seconds=timeout)
    carrier_channel = open_channel(config.carrier_adapter_target, default_timeout_seconds=timeout)
    workers: list[ShipmentWorker] = []

    async def stop_worker() -> None:
        # Added before the kit's hooks, so it runs first: nothing may use the database after.
        for worker in workers:
            await worker.stop()
        await inventory_channel.close(None)
        await carrier_channel.close(None)

    server.add_shutdown_hook(stop_worker, name="stop shipment worker")

    def wake() -> None:
        for worker in workers:
            worker.wake()

    runtime = await start_events(
        service=SERVICE,
        db_url=config.db_url,
        nats_url=config.nats_url,
        registry=build_registry(utc_now, wake),
        purpose=PURPOSE,
        migrations=service_script_location(SERVICE) if config.migrate_on_start else None,
        metrics=server.metrics,
        tracer_provider=active_tracer_provider(),
        relay_settings=RelaySettings(poll_interval=config.relay_poll_interval_seconds),
        consumer_settings=ConsumerSettings(
            batch_size=config.consumer_batch_size,
            fetch_timeout=config.consumer_fetch_timeout_seconds,
            nak_base_delay=config.consumer_nak_base_delay_seconds,
            ack_wait=config.consumer_ack_wait_seconds,
            max_deliver=config.consumer_max_deliver,
        ),
        server=server,
        flush_timeout=config.shutdown_hook_timeout_seconds / 2,
        registry_target=config.schema_registry_target or None,
        stream_settings=StreamSettings(replicas=config.stream_replicas),
    )
    worker = ShipmentWorker(
        runtime.db,
        inv_grpc.InventoryServiceStub(inventory_channel),
        carrier_grpc.CarrierAdapterServiceStub(carrier_channel),
        utc_now,
        config.worker_settings(),
    )
    workers.append(worker)
    add_to_server(server, ShipmentApi(runtime.db, utc_now, worker.wake))
    worker.start()


def main() -> NoReturn:
    try:
        config = ShipmentConfig.from_env()
    except ConfigError as error:
        print(f"shipment: {error}", file=sys.stderr)
        sys.exit(2)
    run_service(config, setup)


if __name__ == "__main__":
    main()
