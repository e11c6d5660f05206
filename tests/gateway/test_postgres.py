"""The gateway database on PostgreSQL: keys, idempotency races and shared buckets."""

from __future__ import annotations

import asyncio

import pytest

from gateway.adapters.store.queries import BucketPolicy
from gateway.entrypoints.partner_api import Limits
from tests.gateway.conftest import StackFactory, bearer, order_body

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
