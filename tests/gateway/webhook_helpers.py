"""Shared pieces of the webhook delivery tests: a worker on the test gateway's database,
milestone events to publish into JetStream (tests.fixtures.events), bounded polls."""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from crossdock.events.v1 import order_events_pb2
from crossdock.order.v1 import order_pb2
from google.protobuf.message import Message
from nats.js import JetStreamContext

from gateway.entrypoints.webhook_runtime import DeliveryWorker
from gateway.webhooks.delivery_store import RetryPolicy
from gateway.webhooks.sender import SenderSettings
from services.kit.consumer import ConsumerSettings
from services.kit.db import Database
from tests.fixtures.waiting import wait_for

T = TypeVar("T")
VERIFIER = Path(__file__).resolve().parents[2] / "docs" / "examples" / "verify_webhook.py"
PLACED = "crossdock.order.placed.v1"


def worker(
    db: Database,
    nats_url: str,
    *,
    disable_after: int = 50,
    follow_subscriptions: bool = False,
    reconcile_seconds: float = 60.0,
) -> DeliveryWorker:
    """A delivery worker with test-speed retries (and loopback receivers allowed);
    `follow_subscriptions`: its durables take only what enabled subscriptions want."""
    return DeliveryWorker(
        db=db,
        nats_url=nats_url,
        policy=RetryPolicy(
            retry_seconds=3600.0,
            base_delay_seconds=0.05,
            max_delay_seconds=0.2,
            disable_after_failures=disable_after,
        ),
        sender_settings=SenderSettings(
            timeout_seconds=5.0, poll_interval_seconds=0.05, allow_private_networks=True
        ),
        consumer_settings=ConsumerSettings(fetch_timeout=0.2, recreate_grace=0.2),
        follow_subscriptions=follow_subscriptions,
        filter_reconcile_seconds=reconcile_seconds,
    )


def order_placed(partner_id: str, order_id: str = "ord_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P") -> Message:
    order = order_pb2.Order(order_id=order_id, partner_id=partner_id, currency_code="GBP")
    return order_events_pb2.OrderPlaced(order=order)


async def eventually(
    probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], timeout: float = 20.0
) -> T:
    """Poll `probe` until `accept` holds (bounded: fails with the last value)."""
    value = await wait_for(probe, accept, timeout=timeout)
    if not accept(value):
        raise AssertionError(f"condition not met in {timeout} s; last value: {value!r}")
    return value


async def consumed(js: JetStreamContext, stream: str = "ORDER") -> bool:
    """True once the gateway-webhooks durable on `stream` has acked everything."""
    info = await js.consumer_info(stream, "gateway-webhooks")
    return info.num_pending == 0 and info.num_ack_pending == 0


def as_json(response: Any) -> Any:
    assert response.status_code < 300, response.text
    return response.json()


def load_verifier() -> ModuleType:
    """docs/examples/verify_webhook.py, the sample verifier docs/webhooks.md ships, as is."""
    spec = importlib.util.spec_from_file_location("verify_webhook", VERIFIER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
