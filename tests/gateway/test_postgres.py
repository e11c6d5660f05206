"""The gateway database on PostgreSQL: keys, idempotency races and shared buckets."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.adapters.store import migrate
from gateway.adapters.store.queries import BucketPolicy
from gateway.entrypoints.partner_api import Limits
from gateway.webhooks.intake import enqueue
from gateway.webhooks.store import create_subscription
from services.kit import events as ev
from services.kit.db import Database
from tests.gateway.conftest import StackFactory, bearer, order_body
from tests.gateway.webhook_helpers import PLACED, order_placed

pytestmark = pytest.mark.postgres


async def test_idempotency_and_rate_limits_on_postgres(
    make_stack: StackFactory, postgres_url: str
) -> None:
    stack = await make_stack(
        Limits(read_bucket=BucketPolicy(capacity=2, refill_per_second=0.001)), db_url=postgres_url
    )
    stack.orders.create_delay_seconds = 0.2
    headers = {**bearer(stack.key_a), "Idempotency-Key": "pg-race"}

    async def post() -> int:
        response = await stack.client.post("/v1/orders", json=order_body(), headers=headers)
        return response.status_code

    statuses = await asyncio.gather(*(post() for _ in range(20)))
    assert stack.orders.created == 1
    assert set(statuses) <= {201, 409}
    mismatch = await stack.client.post("/v1/orders", json=order_body("PO-9"), headers=headers)
    assert mismatch.status_code == 422
    codes = [
        (await stack.client.get("/v1/items", headers=bearer(stack.key_a))).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 429]


async def test_webhook_intake_on_postgres(postgres_url: str) -> None:
    """The intake's subscription read (on the kit's prepared path) and insert, on PostgreSQL."""
    migrate(postgres_url)
    db = Database(postgres_url, service="gateway")
    try:
        partner = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8Q"
        placed = {ev.CE_ID: "pg-evt-1", ev.CE_TYPE: PLACED}
        assert await db.run(enqueue, order_placed(partner), placed, 3600.0) == 0
        created_at = time.time() - 5
        await db.run(
            create_subscription, partner, "https://pg.example.com", [PLACED], "", created_at
        )
        again = {**placed, ev.CE_ID: "pg-evt-2"}
        assert await db.run(enqueue, order_placed(partner), again, 3600.0) == 1
        assert await db.run(enqueue, order_placed(partner), again, 3600.0) == 0
    finally:
        await db.close()
