"""The webhook side of the gateway process, in two parts.

- `start_webhook_api`: the WebhookService on an in-process grpc.aio server bound to loopback,
  with the kit's interceptor (protovalidate, domain errors → status codes, correlation ids). The
  gateway routes `/v1/webhooks/...` to it like to any backend, so the transcoder, OpenAPI, auth,
  idempotency and problem+json apply unchanged.
- `DeliveryWorker`: the `gateway-webhooks` consumers (one durable per stream with milestone
  events) and the sender loop. It connects to NATS in the background, so the partner API serves
  while NATS is still away. With `follow_subscriptions`, the durables take only the event types
  enabled subscriptions want (gateway.webhooks.filters): `filters` is then handed to
  `start_webhook_api`, each consumer sets its durable up through `filters.sync()` (the filter is
  computed from the table before a consumer pulls), and a reconcile narrows every
  `filter_reconcile_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from nats.aio.client import Client as NATS

from gateway.entrypoints.consumers import PURPOSE, event_handlers
from gateway.webhooks.delivery_store import RetryPolicy
from gateway.webhooks.filters import SubscriptionFilters
from gateway.webhooks.sender import SenderSettings, WebhookSender
from gateway.webhooks.servicer import SERVICE, WebhookApi
from services.kit import bus
from services.kit.consumer import ConsumerSettings, EventConsumer
from services.kit.db import Database
from services.kit.metrics import ServiceMetrics
from services.kit.registry_client import SchemaRegistryClient
from services.kit.schema_ids import SchemaResolver
from services.kit.server import ServiceServer
from services.kit.streams import StreamSettings, ensure_streams

log = logging.getLogger(__name__)


async def start_webhook_api(
    db: Database,
    retry_seconds: float,
    metrics: ServiceMetrics | None = None,
    filters: SubscriptionFilters | None = None,
) -> ServiceServer:
    """Serve WebhookService on 127.0.0.1:<free port>; the caller routes to `server.port`.

    `filters`: the delivery worker's, when its durables follow the subscriptions."""
    from crossdock.gateway.v1.webhook_service_pb2_grpc import add_WebhookServiceServicer_to_server

    server = ServiceServer("gateway", host="127.0.0.1", port=0, metrics=metrics)
    api = WebhookApi(db, retry_seconds, filters)
    server.add_servicer(add_WebhookServiceServicer_to_server, api, SERVICE)
    await server.start()
    return server


@dataclass
class DeliveryWorker:
    """Consumers and sender; `start()` returns at once, `stop()` drains both."""

    db: Database
    nats_url: str
    policy: RetryPolicy
    sender_settings: SenderSettings = field(default_factory=SenderSettings)
    consumer_settings: ConsumerSettings | None = None
    stream_settings: StreamSettings | None = None
    schema_registry_target: str = ""
    metrics: ServiceMetrics | None = None
    # Durables take only what enabled subscriptions want (False: every milestone event).
    follow_subscriptions: bool = False
    filter_reconcile_seconds: float = 60.0
    filters: SubscriptionFilters | None = None
    consumers: list[EventConsumer] = field(default_factory=list)
    sender: WebhookSender | None = None
    _nc: NATS | None = None
    _registry_client: SchemaRegistryClient | None = None
    _starting: asyncio.Task[None] | None = None
    _reconciling: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        if self.follow_subscriptions and self.filters is None:
            self.filters = SubscriptionFilters(self.db)

    def start(self) -> None:
        self.sender = WebhookSender(self.db, self.policy, self.sender_settings)
        self.sender.start()
        self._starting = asyncio.create_task(self._start_consumers(), name="webhook-consumers")

    async def _start_consumers(self) -> None:
        self._nc = await bus.connect(self.nats_url, name="gateway")
        await ensure_streams(self._nc.jetstream(), self.stream_settings)
        resolver = None
        if self.schema_registry_target:
            self._registry_client = SchemaRegistryClient(self.schema_registry_target)
            resolver = SchemaResolver(self._registry_client)
        registry = event_handlers(self.policy.retry_seconds)
        durable_setup = self.filters.sync if self.filters is not None else None
        for stream in sorted(registry.streams()):
            consumer = EventConsumer(
                service="gateway",
                purpose=PURPOSE,
                stream=stream,
                registry=registry,
                db=self.db,
                nc=self._nc,
                settings=self.consumer_settings,
                schema_resolver=resolver,
                metrics=self.metrics,
                durable_setup=durable_setup,
            )
            self.consumers.append(consumer)
        if self.filters is not None:
            self.filters.attach(self._nc, registry, self.consumers)
            self._reconciling = asyncio.create_task(self._reconcile(), name="webhook-filters")
        for consumer in self.consumers:
            consumer.start()
        log.info("webhook consumers started", extra={"consumers": len(self.consumers)})

    async def _reconcile(self) -> None:
        """Narrow the durables to what the table wants (deletes, disables, the sender's too);
        early after an update nats-server did not confirm, and again every few seconds until
        one succeeds."""
        assert self.filters is not None
        retry = min(5.0, self.filter_reconcile_seconds)
        delay = self.filter_reconcile_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.filters.resync_wanted(), delay)
            try:
                await self.filters.sync()
                delay = self.filter_reconcile_seconds
            except Exception as exc:
                log.warning("webhook event filters not reconciled: %r", exc)
                delay = retry

    async def wait_started(self) -> None:
        """Wait until the consumers run (tests; the gateway itself never waits)."""
        if self._starting is not None:
            await asyncio.shield(self._starting)

    async def stop(self) -> None:
        starting, self._starting = self._starting, None
        if starting is not None and not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        reconciling, self._reconciling = self._reconciling, None
        if reconciling is not None:
            reconciling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reconciling
        await asyncio.gather(*(consumer.stop() for consumer in self.consumers))
        if self.filters is not None:
            self.filters.detach()
        self.consumers.clear()
        if self.sender is not None:
            await self.sender.stop()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.drain()
        if self._registry_client is not None:
            await self._registry_client.close()
