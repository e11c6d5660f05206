"""Wiring: `python -m services.carrier_adapter.main`.

Settings come from the environment once, at start (prefix CROSSDOCK_CARRIER_ADAPTER_): DB_URL,
GRPC_PORT and METRICS_PORT are required, carrier accounts follow `config.load_accounts`, the rest
below is optional. `setup` is also what the integration tests run on an in-process server.

The sandbox pusher delivers its signed webhooks either `direct`ly into the same ingest path the
IngestWebhook RPC uses (the default: a local run needs no gateway, and the push is still signed
and verified), or by `http` POST to SANDBOX_WEBHOOK_URL (the gateway's public webhook route, to
rehearse the whole path a real carrier takes), or not at all (`off`).

Carriers that do not push are polled (`poller.TrackingPoller`) every POLL_INTERVAL_SECONDS: which
accounts follow `registry.ConnectorRegistry.polled` (per-account POLL_TRACKING, else "not the
ones that push"), and a label's pace follows its status (`domain.polling`).

Shutdown order: gRPC drains; running bookings finish and are stored, the payload log is flushed;
then the kit flushes the outbox and closes NATS and the database.
"""

from __future__ import annotations

import asyncio
import sys
import urllib.request
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Literal, NoReturn

from crossdock.carrier.v1.carrier_service_pb2 import BookLabelRequest
from prometheus_client import CollectorRegistry

from services.carrier_adapter.api.booking import BookingSettings, LabelBooker
from services.carrier_adapter.api.proto_mapping import label_request_from_proto
from services.carrier_adapter.api.servicer import CarrierAdapterApi, add_to_server
from services.carrier_adapter.api.tracking import TrackingIngest
from services.carrier_adapter.background import Background, PayloadBuffer, sweep
from services.carrier_adapter.carriers.sandbox.connector import SandboxConnector
from services.carrier_adapter.carriers.sandbox.pusher import PushDelivery, SandboxPusher
from services.carrier_adapter.config import load_accounts
from services.carrier_adapter.domain.model import InboundWebhook
from services.carrier_adapter.domain.payload_log import RetentionPolicy
from services.carrier_adapter.domain.polling import PollPolicy
from services.carrier_adapter.guarded import GuardedConnector
from services.carrier_adapter.metrics import CarrierMetrics
from services.carrier_adapter.poller import PollSettings, TrackingPoller
from services.carrier_adapter.registry import ConnectorDeps, ConnectorRegistry, build_registry
from services.carrier_adapter.reliability.clock import SystemClock
from services.carrier_adapter.store import SERVICE
from services.carrier_adapter.store.labels import live_labels
from services.kit.config import ConfigError, ServiceConfig, setting
from services.kit.db import Database
from services.kit.migrations import service_script_location
from services.kit.relay import RelaySettings
from services.kit.runtime import start_events
from services.kit.server import ServiceServer, run_service
from services.kit.streams import StreamSettings
from services.kit.telemetry import active_tracer_provider

DAY = 86_400.0
# Sandbox labels older than this are not simulated again after a restart.
SANDBOX_MEMORY_DAYS = 30


class CarrierAdapterConfig(ServiceConfig, service=SERVICE):
    migrate_on_start: bool = setting(
        default=True,
        description="run the database migrations at start (off when a Kubernetes Job runs them)",
    )
    relay_poll_interval_seconds: float = setting(
        default=1.0, minimum=0.01, description="outbox relay fallback poll interval"
    )
    quote_ttl_seconds: float = setting(
        default=DAY,
        minimum=1,
        description="how long a quote stays bookable when the carrier gives no expiry",
    )
    booking_lease_seconds: float = setting(
        default=300.0,
        minimum=1,
        description="after this long an unfinished booking (its replica died) may be taken over; "
        "must exceed the longest label call with its retries",
    )
    booking_wait_seconds: float = setting(
        default=30.0,
        minimum=0,
        description="how long a BookLabel waits for another call's booking of the same key "
        "before answering ABORTED",
    )
    payload_flush_interval_seconds: float = setting(
        default=1.0, minimum=0.05, description="how often buffered carrier payloads are written"
    )
    payload_retention_days: float = setting(
        default=14.0, minimum=0.0001, description="age after which raw carrier payloads go"
    )
    payload_error_retention_days: float = setting(
        default=90.0, minimum=0.0001, description="age after which raw carrier errors go"
    )
    payload_max_records_per_account: int = setting(
        default=200_000, minimum=1, description="newest raw payloads kept per carrier account"
    )
    retention_sweep_interval_seconds: float = setting(
        default=3600.0, minimum=0.05, description="how often the payload log and quotes are swept"
    )
    sandbox_push: Literal["off", "direct", "http"] = setting(
        default="direct",
        description="how the sandbox carrier delivers webhooks: into the ingest path (direct), "
        "by POST to SANDBOX_WEBHOOK_URL (http), or not at all (off)",
    )
    sandbox_webhook_url: str = setting(
        default="", description="where the sandbox POSTs webhooks when SANDBOX_PUSH=http"
    )
    sandbox_push_interval_seconds: float = setting(
        default=1.0, minimum=0.05, description="how often the sandbox pushes new scans"
    )
    poll_interval_seconds: float = setting(
        default=60.0,
        minimum=0.05,
        description="how often the tracking poller looks for parcels due a Track call "
        "(accounts whose carrier does not push)",
    )
    poll_batch_size: int = setting(
        default=100,
        minimum=1,
        description="most Track calls per carrier in one poll sweep, the most overdue first "
        "(keeps within carrier rate limits)",
    )
    poll_interval_scale: float = setting(
        default=1.0,
        minimum=1e-6,
        maximum=100.0,
        description="multiplies every per-status poll interval (30 min out for delivery, 4 h "
        "in transit, ...); below 1 only for demos and tests",
    )
    poll_give_up_days: float = setting(
        default=30.0,
        minimum=0.0001,
        description="a polled parcel with no new scan for this long is no longer polled",
    )
    poll_lease_seconds: float = setting(
        default=120.0,
        minimum=1,
        description="how long a replica holds a parcel it polls before another may take it; "
        "must exceed the longest Track call with its retries",
    )


async def setup(
    server: ServiceServer, config: CarrierAdapterConfig, environ: Mapping[str, str] | None = None
) -> None:
    """Build carrier-adapter on the kit's server; `environ` holds the carrier accounts."""
    accounts = load_accounts(environ)
    if config.sandbox_push == "http" and not config.sandbox_webhook_url:
        raise ConfigError(
            [
                f"{CarrierAdapterConfig.env_prefix}SANDBOX_WEBHOOK_URL is required when "
                "SANDBOX_PUSH=http"
            ]
        )
    clock = SystemClock()
    payloads = PayloadBuffer()
    retention = RetentionPolicy(
        max_age=timedelta(days=config.payload_retention_days),
        error_max_age=timedelta(
            days=max(config.payload_error_retention_days, config.payload_retention_days)
        ),
        max_records_per_account=config.payload_max_records_per_account,
    )
    metrics = CarrierMetrics(server.metrics.registry if server.metrics else CollectorRegistry())
    registry = build_registry(
        accounts,
        ConnectorDeps(
            clock=clock,
            metrics=metrics,
            payload_sink=payloads,
            retention=retention,
        ),
    )
    # Added before the event runtime's hooks, so bookings and payloads are stored while the
    # database is still open and the outbox flush that follows publishes their events.
    background = Background()
    server.add_shutdown_hook(background.stop, name="finish bookings, flush payload log")
    runtime = await start_events(
        service=SERVICE,
        db_url=config.db_url,
        nats_url=config.nats_url,
        migrations=service_script_location(SERVICE) if config.migrate_on_start else None,
        metrics=server.metrics,
        tracer_provider=active_tracer_provider(),
        relay_settings=RelaySettings(poll_interval=config.relay_poll_interval_seconds),
        server=server,
        flush_timeout=config.shutdown_hook_timeout_seconds / 2,
        registry_target=config.schema_registry_target or None,
        stream_settings=StreamSettings(replicas=config.stream_replicas),
    )
    db = runtime.db
    booker = LabelBooker(
        db,
        registry,
        clock,
        BookingSettings(
            lease=timedelta(seconds=config.booking_lease_seconds),
            wait=timedelta(seconds=config.booking_wait_seconds),
        ),
    )
    ingest = TrackingIngest(db, registry, clock)
    add_to_server(
        server,
        CarrierAdapterApi(
            db, registry, booker, ingest, clock, timedelta(seconds=config.quote_ttl_seconds)
        ),
    )

    async def sweep_once() -> int:
        return await db.run(sweep, retention, clock.now(), timedelta(days=1))

    background.every(config.payload_flush_interval_seconds, lambda: payloads.flush(db), "payloads")
    background.every(config.retention_sweep_interval_seconds, sweep_once, "retention sweep")
    poller = TrackingPoller(db, registry, clock, _poll_settings(config), metrics)
    background.every(
        config.poll_interval_seconds, lambda: poller.sweep(background.stopping), "tracking poller"
    )
    background.at_stop(booker.drain)
    background.at_stop(lambda: payloads.flush(db))
    sandboxes = _sandboxes(registry)
    await _restore_sandboxes(db, sandboxes, clock.now() - timedelta(days=SANDBOX_MEMORY_DAYS))
    if config.sandbox_push != "off":
        deliver = (
            _post_to(config.sandbox_webhook_url)
            if config.sandbox_push == "http"
            else _ingest_directly(ingest)
        )
        for sandbox in sandboxes:
            pusher = SandboxPusher(sandbox, deliver, clock)
            background.spawn(
                pusher.run(background.stopping, config.sandbox_push_interval_seconds),
                f"sandbox pusher {sandbox.account_id}",
            )


def _poll_settings(config: CarrierAdapterConfig) -> PollSettings:
    policy = PollPolicy(
        give_up_after=timedelta(days=config.poll_give_up_days),
        max_per_carrier=config.poll_batch_size,
    )
    return PollSettings(
        policy=policy.scaled(config.poll_interval_scale),
        lease=timedelta(seconds=config.poll_lease_seconds),
    )


def _sandboxes(registry: ConnectorRegistry) -> list[SandboxConnector]:
    found = []
    for connector in registry:
        inner = connector.inner if isinstance(connector, GuardedConnector) else connector
        if isinstance(inner, SandboxConnector):
            found.append(inner)
    return found


async def _restore_sandboxes(
    db: Database, sandboxes: list[SandboxConnector], since: datetime
) -> None:
    """Hand the sandbox its live labels again: its simulation lives in memory, like a real
    carrier's database, and tracking and pushes must go on across our restarts."""
    by_account = {sandbox.account_id: sandbox for sandbox in sandboxes}
    if not by_account:
        return
    for stored, request_record in await db.run(live_labels, list(by_account), since):
        if stored.label is None:
            continue
        request = label_request_from_proto(
            BookLabelRequest.FromString(request_record), stored.label.service_code
        )
        by_account[stored.carrier_account_id].restore(stored.label, request)


def _ingest_directly(ingest: TrackingIngest) -> PushDelivery:
    async def deliver(headers: dict[str, str], body: bytes) -> None:
        await ingest.ingest("sandbox", InboundWebhook(body, headers, "application/json"))

    return deliver


def _post_to(url: str) -> PushDelivery:
    def post(headers: dict[str, str], body: bytes) -> None:
        request = urllib.request.Request(
            url, data=body, headers={**headers, "content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10.0) as answer:
            answer.read()

    async def deliver(headers: dict[str, str], body: bytes) -> None:
        # A non-2xx raises HTTPError, so the pusher re-sends on its next tick.
        await asyncio.to_thread(post, headers, body)

    return deliver


def main() -> NoReturn:
    try:
        config = CarrierAdapterConfig.from_env()
        load_accounts()  # fail fast on a broken account before anything starts
    except ConfigError as error:
        print(f"carrier-adapter: {error}", file=sys.stderr)
        sys.exit(2)
    run_service(config, setup)


if __name__ == "__main__":
    main()
