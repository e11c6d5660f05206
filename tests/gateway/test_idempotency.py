"""Idempotency-Key: replay, mismatch, concurrency, per-partner scope, errors not stored."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest

from gateway.adapters.store import idempotency
from tests.gateway.conftest import Stack, bearer, order_body


def keyed(stack_key: str, idempotency_key: str) -> dict[str, str]:
    return {**bearer(stack_key), "Idempotency-Key": idempotency_key}


async def test_retry_replays_the_stored_response(stack: Stack) -> None:
    first = await stack.client.post(
        "/v1/orders", json=order_body(), headers=keyed(stack.key_a, "k1")
    )
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    # Same JSON with different key order and spacing is the same request.
    retry = await stack.client.post(
        "/v1/orders",
        content=b"  " + __import__("json").dumps(dict(reversed(order_body().items()))).encode(),
        headers={**keyed(stack.key_a, "k1"), "Content-Type": "application/json"},
    )
    assert retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json() == first.json()
    assert stack.orders.created == 1
    assert [name for name, _ in stack.orders.calls].count("CreateOrder") == 1


async def test_same_key_with_a_different_body_is_422(stack: Stack) -> None:
    await stack.client.post("/v1/orders", json=order_body("PO-1"), headers=keyed(stack.key_a, "k2"))
    other = await stack.client.post(
        "/v1/orders", json=order_body("PO-2"), headers=keyed(stack.key_a, "k2")
    )
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert stack.orders.created == 1


async def test_keys_are_scoped_per_partner(stack: Stack) -> None:
    a = await stack.client.post("/v1/orders", json=order_body(), headers=keyed(stack.key_a, "same"))
    b = await stack.client.post("/v1/orders", json=order_body(), headers=keyed(stack.key_b, "same"))
    assert a.status_code == b.status_code == 201
    assert "idempotent-replayed" not in b.headers
    assert b.json()["order"]["partnerId"] == stack.partner_b


async def test_fifty_concurrent_same_key_posts_create_one_order(stack: Stack) -> None:
    stack.orders.create_delay_seconds = 0.2  # keep the first request running while others arrive

    async def post() -> tuple[int, str]:
        response = await stack.client.post(
            "/v1/orders", json=order_body("PO-RACE"), headers=keyed(stack.key_a, "race")
        )
        return response.status_code, response.headers.get("idempotent-replayed", "")

    outcomes = await asyncio.gather(*(post() for _ in range(50)))
    assert stack.orders.created == 1
    assert [name for name, _ in stack.orders.calls].count("CreateOrder") == 1
    counts = Counter(status for status, _ in outcomes)
    assert set(counts) <= {201, 409}
    fresh = [o for o in outcomes if o == (201, "")]
    assert len(fresh) == 1  # every other 201 is a replay
    after = await stack.client.post(
        "/v1/orders", json=order_body("PO-RACE"), headers=keyed(stack.key_a, "race")
    )
    assert after.headers["idempotent-replayed"] == "true"


async def test_validation_errors_are_not_stored(stack: Stack) -> None:
    bad = await stack.client.post(
        "/v1/orders", json=order_body(quantity=0), headers=keyed(stack.key_a, "k3")
    )
    assert bad.status_code == 400
    fixed = await stack.client.post(
        "/v1/orders", json=order_body(quantity=1), headers=keyed(stack.key_a, "k3")
    )
    assert fixed.status_code == 201
    assert "idempotent-replayed" not in fixed.headers


async def test_backend_5xx_is_not_stored_but_4xx_is(stack: Stack) -> None:
    created = await stack.client.post("/v1/orders", json=order_body(), headers=bearer(stack.key_a))
    cancel = f"/v1/orders/{created.json()['order']['orderId']}:cancel"
    failed = await stack.client.post(
        cancel, json={"reason": "abort:UNAVAILABLE"}, headers=keyed(stack.key_a, "k4")
    )
    assert failed.status_code == 503
    again = await stack.client.post(
        cancel, json={"reason": "abort:UNAVAILABLE"}, headers=keyed(stack.key_a, "k4")
    )
    assert "idempotent-replayed" not in again.headers
    conflict = await stack.client.post(
        cancel, json={"reason": "abort:ABORTED"}, headers=keyed(stack.key_a, "k5")
    )
    replay = await stack.client.post(
        cancel, json={"reason": "abort:ABORTED"}, headers=keyed(stack.key_a, "k5")
    )
    assert conflict.status_code == replay.status_code == 409
    assert replay.headers["idempotent-replayed"] == "true"


async def test_expired_records_are_not_replayed(stack: Stack) -> None:
    import time

    from gateway.adapters.store.queries import purge_idempotency

    await stack.client.post("/v1/orders", json=order_body(), headers=keyed(stack.key_a, "k6"))
    purged = await stack.db.run(purge_idempotency, time.time() + 25 * 3600)
    assert purged == 1
    again = await stack.client.post(
        "/v1/orders", json=order_body(), headers=keyed(stack.key_a, "k6")
    )
    assert "idempotent-replayed" not in again.headers


async def test_an_abandoned_running_claim_can_be_taken_over(stack: Stack) -> None:
    from gateway.adapters.store import idempotency

    def claim_at(now: float):  # type: ignore[no-untyped-def]
        return lambda conn: idempotency.claim(conn, stack.partner_a, "k7", "fp", now, 3600, 60)

    assert (await stack.db.run(claim_at(1000.0))).outcome == "execute"
    # Another request while the first holds the lock: 409 territory.
    assert (await stack.db.run(claim_at(1030.0))).outcome == "running"
    # The holder died (no complete/release); after the lock expires a retry may run it.
    assert (await stack.db.run(claim_at(1061.0))).outcome == "execute"
    mismatch = await stack.db.run(
        lambda conn: idempotency.claim(conn, stack.partner_a, "k7", "other", 1062.0, 3600, 60)
    )
    assert mismatch.outcome == "mismatch"


@pytest.mark.parametrize(
    "body",
    [b'{"b": [1, 2.5, "x"], "a": {"z": null, "y": true}}', b"[]", b'"text"', b"0", b"null"],
)
def test_a_fingerprint_of_a_parsed_body_is_the_fingerprint_of_its_bytes(body: bytes) -> None:
    query = [("view", "full")]
    from_bytes = idempotency.fingerprint("POST", "/v1/orders", query, body)
    parsed = json.loads(body)
    assert idempotency.fingerprint("POST", "/v1/orders", query, body, parsed) == from_bytes
    spaced = json.dumps(parsed, indent=2).encode()  # whitespace does not count
    assert idempotency.fingerprint("POST", "/v1/orders", query, spaced) == from_bytes


def test_a_body_that_is_not_json_is_fingerprinted_as_its_bytes() -> None:
    first = idempotency.fingerprint("POST", "/v1/orders", [], b"<a/>")
    assert first == idempotency.fingerprint("POST", "/v1/orders", [], b"<a/>")
    assert first != idempotency.fingerprint("POST", "/v1/orders", [], b"<a />")
    assert first != idempotency.fingerprint("POST", "/v1/orders", [], b"")
