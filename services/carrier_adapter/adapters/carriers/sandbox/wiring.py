"""The sandbox carrier's part of the service's start: restore its parcels, and its pushers.

Its simulation lives in memory, like a real carrier's database, so at start it gets its live
labels back. Its pushers deliver signed webhooks either `direct`ly into the same ingest path the
IngestWebhook RPC uses (a local run needs no gateway, and the push is still signed and
verified), or by `http` POST to SANDBOX_WEBHOOK_URL (the gateway's public webhook route, to
rehearse the whole path a real carrier takes), or not at all (`off`). Each pusher ticks on a kit
PollingWorker the caller starts and stops.
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Literal

from crossdock.carrier.v1.carrier_service_pb2 import BookLabelRequest

from services.carrier_adapter.adapters.carriers.connectors import ConnectorRegistry
from services.carrier_adapter.adapters.carriers.guarded import GuardedConnector
from services.carrier_adapter.adapters.carriers.sandbox.connector import SandboxConnector
from services.carrier_adapter.adapters.carriers.sandbox.pusher import PushDelivery, SandboxPusher
from services.carrier_adapter.adapters.contracts import label_request_from_proto
from services.carrier_adapter.adapters.reliability.clock import Clock
from services.carrier_adapter.adapters.store.labels import live_labels
from services.carrier_adapter.domain.model import InboundWebhook
from services.kit.db import Database
from services.kit.workers import PollingWorker

__all__ = ["SANDBOX_MEMORY_DAYS", "WebhookIngest", "wire_sandbox"]

# Sandbox labels older than this are not simulated again after a restart.
SANDBOX_MEMORY_DAYS = 30

# The service's webhook ingest (carrier code, push) → whatever it answers.
WebhookIngest = Callable[[str, InboundWebhook], Awaitable[object]]


async def wire_sandbox(
    registry: ConnectorRegistry,
    db: Database,
    clock: Clock,
    *,
    push: Literal["off", "direct", "http"],
    webhook_url: str,
    push_interval_seconds: float,
    ingest: WebhookIngest,
) -> list[PollingWorker]:
    """Restore every sandbox account's parcels; return their pushers' workers (not started)."""
    sandboxes = _sandboxes(registry)
    await _restore(db, sandboxes, clock.now() - timedelta(days=SANDBOX_MEMORY_DAYS))
    if push == "off":
        return []
    deliver = _post_to(webhook_url) if push == "http" else _ingest_directly(ingest)
    workers = []
    for sandbox in sandboxes:
        pusher = SandboxPusher(sandbox, deliver, clock)

        async def tick(pusher: SandboxPusher = pusher) -> int:
            await pusher.run_once()
            # One tick per interval whatever it delivered: held-back (late) pushes go out on
            # the next tick, not at once.
            return 0

        workers.append(
            PollingWorker(
                f"sandbox pusher {sandbox.account_id}", tick, interval=push_interval_seconds
            )
        )
    return workers


def _sandboxes(registry: ConnectorRegistry) -> list[SandboxConnector]:
    found = []
    for connector in registry:
        inner = connector.inner if isinstance(connector, GuardedConnector) else connector
        if isinstance(inner, SandboxConnector):
            found.append(inner)
    return found


async def _restore(db: Database, sandboxes: list[SandboxConnector], since: datetime) -> None:
    """Hand the sandbox its live labels again: tracking and pushes must go on across our
    restarts."""
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


def _ingest_directly(ingest: WebhookIngest) -> PushDelivery:
    async def deliver(headers: dict[str, str], body: bytes) -> None:
        await ingest("sandbox", InboundWebhook(body, headers, "application/json"))

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
