"""Webhook intake: an event becomes deliveries only for the subscriptions that want it, and a
subscription changed by another replica counts at once (nothing is cached per process)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.adapters.store import migrate
from gateway.adapters.store.webhook_tables import webhook_deliveries
from gateway.webhooks.intake import enqueue
from gateway.webhooks.store import SubscriptionChange, create_subscription, update_subscription
from services.kit import events as ev
from services.kit.db import Database
from tests.gateway.webhook_helpers import PLACED, order_placed

PARTNER = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"
CANCELLED = "crossdock.order.cancelled.v1"


def headers(event_id: str, event_type: str = PLACED) -> dict[str, str]:
    return {ev.CE_ID: event_id, ev.CE_TYPE: event_type}


async def deliveries(db: Database) -> int:
    count = select(func.count()).select_from(webhook_deliveries)
    return int(await db.run(lambda conn: conn.execute(count).scalar_one()))


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[tuple[Database, Database]]:
    """Two gateway replicas' handles on one database."""
    url = f"sqlite:///{tmp_path}/gw.db"
    migrate(url)
    first, second = Database(url, service="gateway"), Database(url, service="gateway")
    yield first, second
    await first.close()
    await second.close()


async def test_a_partner_without_subscriptions_gets_no_deliveries(
    replicas: tuple[Database, Database],
) -> None:
    db, _ = replicas
    assert await db.run(enqueue, order_placed(PARTNER), headers("evt-1"), 3600.0) == 0
    assert await deliveries(db) == 0


async def test_only_subscriptions_to_the_events_type_get_it(
    replicas: tuple[Database, Database],
) -> None:
    db, _ = replicas
    now = time.time() - 5
    await db.run(create_subscription, PARTNER, "https://a.example.com", [CANCELLED], "", now)
    assert await db.run(enqueue, order_placed(PARTNER), headers("evt-1"), 3600.0) == 0
    await db.run(create_subscription, PARTNER, "https://b.example.com", [PLACED], "", now)
    await db.run(
        create_subscription, PARTNER, "https://c.example.com", [CANCELLED, PLACED], "", now
    )

    assert await db.run(enqueue, order_placed(PARTNER), headers("evt-2"), 3600.0) == 2
    assert await db.run(enqueue, order_placed(PARTNER), headers("evt-2"), 3600.0) == 0  # once
    assert await deliveries(db) == 2


async def test_a_subscription_made_or_disabled_on_another_replica_counts_at_once(
    replicas: tuple[Database, Database],
) -> None:
    consumer, api = replicas
    assert await consumer.run(enqueue, order_placed(PARTNER), headers("evt-1"), 3600.0) == 0

    created = await api.run(
        create_subscription, PARTNER, "https://h.example.com", [PLACED], "", time.time() - 5
    )
    assert await consumer.run(enqueue, order_placed(PARTNER), headers("evt-2"), 3600.0) == 1

    disable = SubscriptionChange(enabled=False)
    await api.run(update_subscription, PARTNER, created["id"], disable, time.time())
    assert await consumer.run(enqueue, order_placed(PARTNER), headers("evt-3"), 3600.0) == 0
    enable = SubscriptionChange(enabled=True)
    await api.run(update_subscription, PARTNER, created["id"], enable, time.time())
    assert await consumer.run(enqueue, order_placed(PARTNER), headers("evt-4"), 3600.0) == 1
    assert await deliveries(consumer) == 2
