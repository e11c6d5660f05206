"""Wiring: `python -m services.carrier_adapter.main` (settings: config.CarrierAdapterConfig).

`setup` is also what the integration tests run on an in-process server. Shutdown order: gRPC
drains; the workers stop, running bookings finish and are stored, the payload log is flushed;
the connectors' HTTP sessions close; then the kit flushes the outbox and closes NATS and the
database.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import NoReturn

from prometheus_client import CollectorRegistry

from services.carrier_adapter.adapters.carriers.connectors import ConnectorDeps, build_connectors
from services.carrier_adapter.adapters.carriers.guarded import CallPolicy
from services.carrier_adapter.adapters.carriers.sandbox.wiring import wire_sandbox
from services.carrier_adapter.adapters.carriers.tables import CodeTables
from services.carrier_adapter.adapters.contracts import mapper
from services.carrier_adapter.adapters.metrics import CarrierMetrics
from services.carrier_adapter.adapters.reliability.clock import SystemClock
from services.carrier_adapter.adapters.store.payload_buffer import PayloadBuffer
from services.carrier_adapter.app.booking import BookingSettings, LabelBooker
from services.carrier_adapter.app.code_mapping import CodeMappings
from services.carrier_adapter.app.polling import PollSettings, TrackingPoller
from services.carrier_adapter.app.tracking import TrackingIngest
from services.carrier_adapter.config import CarrierAdapterConfig, load_accounts
from services.carrier_adapter.entrypoints.grpc import CarrierAdapterApi, add_to_server
from services.carrier_adapter.entrypoints.workers import Workers
from services.kit.runtime import start_events
from services.kit.server import ServiceServer, run_service
from services.kit.workers import PollingWorker

__all__ = ["CarrierAdapterConfig", "main", "setup"]

# How soon a replica takes up a code mapping another replica made (one small read per tick).
CODE_MAPPING_REFRESH_SECONDS = 5.0


async def setup(
    server: ServiceServer, config: CarrierAdapterConfig, environ: Mapping[str, str] | None = None
) -> None:
    """Build carrier-adapter on the kit's server; `environ` holds the carrier accounts."""
    clock, payloads, retention = SystemClock(), PayloadBuffer(), config.retention_policy()
    metrics = CarrierMetrics(server.metrics.registry if server.metrics else CollectorRegistry())
    code_tables = CodeTables()
    deps = ConnectorDeps(
        clock=clock,
        metrics=metrics,
        payload_sink=payloads,
        retention=retention,
        code_tables=code_tables,
        call_policy=CallPolicy(
            timeouts={**CallPolicy().timeouts, "book_label": config.book_label_timeout_seconds}
        ),
    )
    registry = build_connectors(load_accounts(environ), deps)
    started: list[Workers] = []

    async def stop_workers() -> None:
        for workers in started:
            await workers.stop()

    # Added before the event runtime's hooks, so bookings and payloads are stored while the
    # database is still open and the outbox flush that follows publishes their events.
    server.add_shutdown_hook(stop_workers, name="finish bookings, flush payload log")
    # After the workers: a booking still finishing calls its carrier.
    server.add_shutdown_hook(registry.aclose, name="close carrier connections")
    runtime = await start_events(config, server, event_mapper=mapper)
    units = runtime.units
    booker = LabelBooker(
        units.db,
        registry,
        clock,
        BookingSettings(
            lease=timedelta(seconds=config.booking_lease_seconds),
            wait=timedelta(seconds=config.booking_wait_seconds),
        ),
    )
    ingest = TrackingIngest(units, registry, clock)
    code_mappings = CodeMappings(units, code_tables, clock)
    # The operators' mappings are in force before the first scan is normalized.
    await code_mappings.refresh()
    quote_ttl = timedelta(seconds=config.quote_ttl_seconds)
    api = CarrierAdapterApi(units, registry, booker, ingest, clock, code_mappings, quote_ttl)
    add_to_server(server, api)
    poll_settings = PollSettings(
        config.poll_policy(), lease=timedelta(seconds=config.poll_lease_seconds)
    )
    pushers = await wire_sandbox(
        registry,
        units.db,
        clock,
        push=config.sandbox_push,
        webhook_url=config.sandbox_webhook_url,
        push_interval_seconds=config.sandbox_push_interval_seconds,
        ingest=ingest.ingest,
    )
    workers = Workers(
        units,
        clock,
        payloads=payloads,
        payload_flush_interval=timedelta(seconds=config.payload_flush_interval_seconds),
        retention=retention,
        retention_sweep_interval=timedelta(seconds=config.retention_sweep_interval_seconds),
        poller=TrackingPoller(units.db, registry, clock, poll_settings, metrics),
        poll_interval=timedelta(seconds=config.poll_interval_seconds),
        booker=booker,
        others=[
            *pushers,
            PollingWorker(
                "code mapping refresh",
                code_mappings.refresh,
                interval=CODE_MAPPING_REFRESH_SECONDS,
                initial_delay=CODE_MAPPING_REFRESH_SECONDS,
            ),
        ],
    )
    workers.start()
    started.append(workers)


def main() -> NoReturn:
    run_service(CarrierAdapterConfig, setup)


if __name__ == "__main__":
    main()
