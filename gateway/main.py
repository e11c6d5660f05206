"""Wiring: `python -m gateway.main`.

Reads GatewayConfig (CROSSDOCK_GATEWAY_*), migrates the gateway database, builds routes and the
OpenAPI document from the contracts, seeds the demo partner, starts the gateway's own WebhookService
(loopback gRPC) and the webhook delivery worker, and serves the partner API, the admin API with the
operator console (/console) and Prometheus metrics on their own ports until SIGTERM/SIGINT; then
stops accepting, lets in-flight requests finish, stops the webhook worker, closes the gRPC channels
and the database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.routing import Mount

from gateway.adapters.backends import Backends
from gateway.adapters.store import migrate, operator_keys, queries
from gateway.auth import OPERATOR_SCOPES, SCOPES, new_partner_id
from gateway.config import GatewayConfig
from gateway.console.app import ConsoleSettings, console_routes
from gateway.console.timeline import TOWER_SERVICE
from gateway.contract_docs import comments_by_name, load_descriptor_set
from gateway.descriptors import bindings_of, contract_services
from gateway.entrypoints.admin_api import create_admin_app
from gateway.entrypoints.partner_api import Limits, PartnerGateway
from gateway.entrypoints.webhook_runtime import DeliveryWorker, start_webhook_api
from gateway.entrypoints.workers import purge_worker
from gateway.metrics import GatewayMetrics
from gateway.openapi import build_openapi
from gateway.transcoder import build_routes
from gateway.webhooks.delivery_store import RetryPolicy
from gateway.webhooks.sender import SenderSettings
from gateway.webhooks.servicer import SERVICE as WEBHOOK_SERVICE
from services.kit import event_loop, gc_policy
from services.kit.config import ConfigError
from services.kit.consumer import ConsumerSettings
from services.kit.db import Database
from services.kit.http_server import HttpServer
from services.kit.logging import configure_logging
from services.kit.metrics import ServiceMetrics, serve_metrics
from services.kit.streams import StreamSettings

log = logging.getLogger(__name__)

DEMO_KEY_ENV = "CROSSDOCK_DEMO_API_KEY"
DEMO_PARTNER_NAME = "demo partner"
DEMO_OPERATOR_NAME = "demo-operator@localhost"


@dataclass
class Built:
    gateway: PartnerGateway
    db: Database
    backends: Backends
    metrics: GatewayMetrics


def build(config: GatewayConfig) -> Built:
    """Everything the gateway serves, from config and the contracts (no I/O but the DB engine)."""
    services = contract_services()
    routes = build_routes(bindings_of(services))
    openapi = build_openapi(routes, comments_by_name(load_descriptor_set()))
    db = Database(config.db_url, service="gateway")
    backends = Backends(
        config.targets_for(services),
        default_timeout_seconds=config.grpc_client_timeout_seconds,
        push_batch_max=config.push_batch_max,
        push_batch_in_flight=config.push_batch_in_flight,
    )
    if config.tower_target:
        # Not a partner route: only the operator console calls the control tower.
        backends.add_target(TOWER_SERVICE, config.tower_target)
    limits = Limits(
        max_body_bytes=config.max_body_bytes,
        idempotency_retention_seconds=config.idempotency_retention_seconds,
        read_bucket=queries.BucketPolicy(config.read_burst, config.read_rate_per_second),
        write_bucket=queries.BucketPolicy(config.write_burst, config.write_rate_per_second),
        push_bucket=queries.BucketPolicy(config.push_burst, config.push_rate_per_second),
    )
    metrics = GatewayMetrics()
    gateway = PartnerGateway(routes, backends, db, openapi, limits, metrics)
    return Built(gateway, db, backends, metrics)


def admin_app(
    config: GatewayConfig,
    db: Database,
    backends: Backends,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The admin port: the operator console under /console (operator keys) beside the admin
    API (the admin token), each with its own credential. `clock` dates sign-ins and key
    expiry."""
    console = console_routes(
        db,
        backends,
        ConsoleSettings(
            session_seconds=config.console_session_hours * 3600.0,
            refresh_seconds=config.console_refresh_seconds,
            tower_timeout_seconds=config.grpc_client_timeout_seconds,
        ),
        clock,
    )
    return Starlette(
        routes=[
            *console,
            Mount("", app=create_admin_app(db, config.admin_token)),
        ]
    )


def retry_policy(config: GatewayConfig) -> RetryPolicy:
    return RetryPolicy(
        retry_seconds=config.webhook_retry_hours * 3600.0,
        base_delay_seconds=config.webhook_retry_base_seconds,
        max_delay_seconds=config.webhook_retry_max_delay_seconds,
        disable_after_failures=config.webhook_disable_after_failures,
    )


def delivery_worker(
    config: GatewayConfig, db: Database, metrics: ServiceMetrics | None = None
) -> DeliveryWorker:
    return DeliveryWorker(
        db=db,
        metrics=metrics,
        nats_url=config.nats_url,
        policy=retry_policy(config),
        sender_settings=SenderSettings(
            timeout_seconds=config.webhook_timeout_seconds,
            poll_interval_seconds=config.webhook_poll_interval_seconds,
            concurrency=config.webhook_concurrency,
            allow_private_networks=config.webhook_allow_private_networks,
        ),
        consumer_settings=ConsumerSettings(linger=config.webhook_consumer_linger_ms / 1000),
        follow_subscriptions=config.webhook_follow_subscriptions,
        filter_reconcile_seconds=config.webhook_filter_reconcile_seconds,
        stream_settings=StreamSettings(replicas=config.stream_replicas),
        schema_registry_target=config.schema_registry_target,
    )


async def seed_demo_partner(db: Database, environ: dict[str, str] | None = None) -> str:
    """Make sure the demo partner exists with a key; returns the key.

    The key is CROSSDOCK_DEMO_API_KEY when set (kept across restarts); otherwise a new key is
    generated, printed once, and the demo partner's older keys are revoked (they were never
    retrievable: only hashes are stored).
    """
    env = os.environ if environ is None else environ
    now = time.time()
    partner_id = await db.run(
        queries.ensure_partner_named, DEMO_PARTNER_NAME, new_partner_id(), now
    )
    chosen = env.get(DEMO_KEY_ENV, "").strip()
    if chosen:
        await db.run(queries.install_key, partner_id, chosen, list(SCOPES), now)
        return chosen
    await db.run(queries.revoke_all_keys, partner_id, now)
    _, api_key = await db.run(queries.issue_key, partner_id, list(SCOPES), now)
    print(f"demo partner {partner_id} API key: {api_key}", flush=True)
    return api_key


async def seed_demo_operator(db: Database, operator_key: str) -> bool:
    """Install the configured demo operator key with every operator scope; True when new (a
    restart finds it there, and a key revoked through the admin API stays revoked)."""
    return await db.run(
        operator_keys.install_operator_key,
        DEMO_OPERATOR_NAME,
        operator_key,
        list(OPERATOR_SCOPES),
        time.time(),
    )


async def serve(config: GatewayConfig, *, seed_demo: bool = True) -> None:
    if config.migrate_on_start:
        await asyncio.to_thread(migrate, config.db_url)
    built = build(config)
    if seed_demo:
        await seed_demo_partner(built.db)
        if config.demo_operator_key:
            await seed_demo_operator(built.db, config.demo_operator_key)
    metrics_endpoint = serve_metrics(
        built.metrics.service, host=config.bind_host, port=config.metrics_port
    )
    worker = (
        delivery_worker(config, built.db, built.metrics.service)
        if config.webhooks_enabled
        else None
    )
    # The API widens the worker's durables before a new subscription becomes visible.
    webhook_api = await start_webhook_api(
        built.db,
        retry_policy(config).retry_seconds,
        built.metrics.service,
        filters=worker.filters if worker is not None else None,
    )
    built.backends.add_target(WEBHOOK_SERVICE.full_name, f"127.0.0.1:{webhook_api.port}")
    if worker is not None:
        worker.start()
    partner_http = HttpServer(built.gateway, host=config.http_host, port=config.http_port)
    admin_http = HttpServer(
        admin_app(config, built.db, built.backends),
        host=config.admin_host,
        port=config.admin_port,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await partner_http.start()
    await admin_http.start()
    retention = config.webhook_log_retention_days * 86_400.0
    purger = purge_worker(built.db, retention)
    purger.start()
    gc_policy.settle_heap()
    log.info(
        "gateway serving",
        extra={
            "http_port": partner_http.port,
            "admin_port": admin_http.port,
            "metrics_port": metrics_endpoint.port,
        },
    )
    await stop.wait()
    await purger.stop()
    await partner_http.stop()
    await admin_http.stop()
    if worker is not None:
        await worker.stop()
    await webhook_api.shutdown()
    await built.backends.close()
    await built.db.close()
    await asyncio.to_thread(metrics_endpoint.close)


def main() -> None:
    try:
        config = GatewayConfig.from_env()
    except ConfigError as error:
        print(f"gateway: {error}", file=sys.stderr)
        sys.exit(2)
    configure_logging("gateway", config.log_level)
    event_loop.run(serve(config))


if __name__ == "__main__":
    main()
