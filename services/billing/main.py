"""Wiring: `python -m services.billing.main`.

Settings come from the environment once, at start (prefix CROSSDOCK_BILLING_): DB_URL,
GRPC_PORT and METRICS_PORT are required; the rest have defaults. The kit's run_service owns the
process (logs, metrics, health, SIGTERM); `setup` is also what the integration tests run.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import NoReturn

from services.billing.api.servicer import BillingApi, add_to_server
from services.billing.consumers import PURPOSE, build_registry
from services.billing.posting import BillingSettings
from services.billing.store import SERVICE
from services.kit.config import ConfigError, ServiceConfig, setting
from services.kit.consumer import ConsumerSettings
from services.kit.migrations import service_script_location
from services.kit.relay import RelaySettings
from services.kit.runtime import start_events
from services.kit.server import ServiceServer, run_service
from services.kit.streams import StreamSettings
from services.kit.telemetry import active_tracer_provider


class BillingConfig(ServiceConfig, service=SERVICE):
    migrate_on_start: bool = setting(
        default=True,
        description="run the database migrations at start (off when a Kubernetes Job runs them)",
    )
    invoice_series: str = setting(
        default="INV", description="prefix of invoice numbers, e.g. INV → INV-2026-000001"
    )
    credit_note_series: str = setting(
        default="CRN", description="prefix of credit note numbers, e.g. CRN → CRN-2026-000001"
    )
    on_ship_partners: str = setting(
        default="",
        description="comma-separated partner ids invoiced at manifest instead of at delivery",
    )
    on_ship_customers: str = setting(
        default="",
        description="comma-separated customer party ids (the order's customer) invoiced at "
        "manifest instead of at delivery, whatever their partner's policy",
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
        default=10,
        minimum=2,
        description="deliveries before dead-lettering; events wait here for an order placed later",
    )

    def billing_settings(self) -> BillingSettings:
        partners = frozenset(p.strip() for p in self.on_ship_partners.split(",") if p.strip())
        customers = frozenset(c.strip() for c in self.on_ship_customers.split(",") if c.strip())
        return BillingSettings(self.invoice_series, self.credit_note_series, partners, customers)


def utc_now() -> datetime:
    return datetime.now(UTC)


async def setup(server: ServiceServer, config: BillingConfig) -> None:
    """Events runtime (migrate, DB, NATS, relay, consumers), then the api."""
    runtime = await start_events(
        service=SERVICE,
        db_url=config.db_url,
        nats_url=config.nats_url,
        registry=build_registry(config.billing_settings(), utc_now),
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
    add_to_server(server, BillingApi(runtime.db))


def main() -> NoReturn:
    try:
        config = BillingConfig.from_env()
    except ConfigError as error:
        print(f"billing: {error}", file=sys.stderr)
        sys.exit(2)
    run_service(config, setup)


if __name__ == "__main__":
    main()
