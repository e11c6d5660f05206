"""A POST with an Idempotency-Key is authenticated, rate-limited and claims its key in one unit of
work; what the client sees, and in which order errors come, is what it was with two."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from gateway.adapters.store import idempotency
from gateway.adapters.store.queries import BucketPolicy
from gateway.adapters.store.tables import idempotency_records
from gateway.entrypoints.partner_api import Limits
from tests.gateway.conftest import Stack, StackFactory, bearer, order_body

MALFORMED = b'{"externalOrderId": '


def keyed(api_key: str, idempotency_key: str) -> dict[str, str]:
    return {**bearer(api_key), "Idempotency-Key": idempotency_key}


async def stored_keys(stack: Stack) -> int:
    count = select(func.count()).select_from(idempotency_records)
    return int(await stack.db.run(lambda conn: conn.execute(count).scalar_one()))


async def test_an_idempotent_post_takes_one_unit_of_work_before_its_call(stack: Stack) -> None:
    units: list[str] = []
    run = stack.db.run

    async def counting_run(fn: Any, *args: Any) -> Any:
        units.append(getattr(fn, "__name__", repr(fn)))
        return await run(fn, *args)

    stack.db.run = counting_run  # type: ignore[method-assign]
    created = await stack.client.post(
        "/v1/orders", json=order_body(), headers=keyed(stack.key_a, "one-unit")
    )
    replayed = await stack.client.post(
        "/v1/orders", json=order_body(), headers=keyed(stack.key_a, "one-unit")
    )

    assert created.status_code == replayed.status_code == 201
    assert replayed.headers["idempotent-replayed"] == "true"
    # Admission and claim together, then the stored response; a replay needs no second unit.
    assert units == ["admit_and_claim", "complete", "admit_and_claim"]
    assert stack.orders.created == 1


async def test_errors_found_reading_ahead_still_come_after_401_403_and_429(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(
        Limits(write_bucket=BucketPolicy(capacity=1, refill_per_second=0.001), max_body_bytes=64)
    )
    json_headers = {"Content-Type": "application/json"}
    unknown_key = "cdk_nosuchkey_secret"
    for body in (MALFORMED, b"x" * 100):  # malformed JSON (400), too large (413)
        refused = await stack.client.post(
            "/v1/orders", content=body, headers={**keyed(unknown_key, "k"), **json_headers}
        )
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")

    _, reader = await stack.new_partner("reader", ["orders:read"])
    forbidden = await stack.client.post(
        "/v1/orders", content=MALFORMED, headers={**keyed(reader, "k"), **json_headers}
    )
    assert forbidden.status_code == 403

    first = await stack.client.post(
        "/v1/orders", content=MALFORMED, headers={**keyed(stack.key_a, "k"), **json_headers}
    )
    assert first.status_code == 400  # the one token was taken, then the body refused
    assert first.headers["ratelimit-remaining"] == "0"
    limited = await stack.client.post(
        "/v1/orders", content=MALFORMED, headers={**keyed(stack.key_a, "k"), **json_headers}
    )
    assert limited.status_code == 429
    assert stack.orders.created == 0


async def test_an_invalid_request_takes_a_token_and_claims_no_key(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(Limits(write_bucket=BucketPolicy(capacity=5, refill_per_second=0.001)))

    invalid = await stack.client.post(
        "/v1/orders", json=order_body(quantity=0), headers=keyed(stack.key_a, "k-invalid")
    )

    assert invalid.status_code == 400
    assert invalid.json()["detail"] == "the request breaks the contract's rules"
    assert invalid.headers["ratelimit-remaining"] == "4"
    assert await stored_keys(stack) == 0


async def test_a_bad_idempotency_key_is_400_after_the_bodys_own_errors(stack: Stack) -> None:
    bad_key = "k" * 256
    valid_body = await stack.client.post(
        "/v1/orders", json=order_body(), headers=keyed(stack.key_a, bad_key)
    )
    assert valid_body.status_code == 400
    assert [v["field"] for v in valid_body.json()["violations"]] == ["Idempotency-Key"]

    invalid_body = await stack.client.post(
        "/v1/orders", json=order_body(quantity=0), headers=keyed(stack.key_a, bad_key)
    )
    assert invalid_body.status_code == 400
    assert invalid_body.json()["detail"] == "the request breaks the contract's rules"
    assert await stored_keys(stack) == 0
    assert stack.orders.created == 0


async def test_an_expired_record_left_unpurged_is_claimed_afresh(stack: Stack) -> None:
    def claim(fingerprint: str, now: float):  # type: ignore[no-untyped-def]
        return lambda conn: idempotency.claim(
            conn, stack.partner_a, "k-expired", fingerprint, now, 3600, 60
        )

    assert (await stack.db.run(claim("first", 1000.0))).outcome == "execute"
    stored = idempotency.StoredResponse(201, b"{}", "application/json")
    await stack.db.run(idempotency.complete, stack.partner_a, "k-expired", stored)
    assert (await stack.db.run(claim("first", 2000.0))).outcome == "replay"
    assert (await stack.db.run(claim("second", 2000.0))).outcome == "mismatch"
    # Past the retention the record is gone in all but its row: any request may claim the key.
    assert (await stack.db.run(claim("second", 5000.0))).outcome == "execute"
    assert (await stack.db.run(claim("second", 5001.0))).outcome == "running"
