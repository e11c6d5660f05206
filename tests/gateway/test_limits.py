"""Per-partner token buckets stored in the gateway database: 429 with RateLimit-* headers."""

from __future__ import annotations

from gateway.adapters.store.queries import BucketPolicy
from gateway.entrypoints.partner_api import Limits
from tests.gateway.conftest import StackFactory, bearer


async def test_bucket_exhaustion_is_429_with_headers(make_stack: StackFactory) -> None:
    # A refill so slow that no token comes back during the test: the outcome is deterministic.
    stack = await make_stack(Limits(read_bucket=BucketPolicy(capacity=3, refill_per_second=0.001)))
    seen = []
    for _ in range(3):
        response = await stack.client.get("/v1/items", headers=bearer(stack.key_a))
        assert response.status_code == 200
        assert response.headers["ratelimit-limit"] == "3"
        seen.append(int(response.headers["ratelimit-remaining"]))
    assert seen == [2, 1, 0]
    limited = await stack.client.get("/v1/items", headers=bearer(stack.key_a))
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["ratelimit-remaining"] == "0"
    assert int(limited.headers["ratelimit-reset"]) > 0
    # Buckets are per partner and per route class.
    assert (await stack.client.get("/v1/items", headers=bearer(stack.key_b))).status_code == 200
    orders_write = await stack.client.post("/v1/orders", json={}, headers=bearer(stack.key_a))
    assert orders_write.status_code == 400  # the write bucket is untouched; the body is invalid


async def test_buckets_live_in_the_database(make_stack: StackFactory) -> None:
    from sqlalchemy import select

    from gateway.adapters.store.tables import rate_buckets

    stack = await make_stack()
    await stack.client.get("/v1/items", headers=bearer(stack.key_a))

    def rows(conn):  # type: ignore[no-untyped-def]
        return conn.execute(select(rate_buckets.c.partner_id, rate_buckets.c.route_class)).all()

    assert [tuple(r) for r in await stack.db.run(rows)] == [(stack.partner_a, "read")]
