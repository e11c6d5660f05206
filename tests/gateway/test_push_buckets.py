"""The in-memory push buckets: the DB buckets' token rule, refill, and bounded memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.adapters.push_buckets import PushBuckets
from gateway.adapters.store import migrate
from gateway.adapters.store.queries import Admission, BucketPolicy, take_partner_token
from services.kit.db import Database


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_refills_at_its_rate_up_to_capacity() -> None:
    clock = Clock()
    buckets = PushBuckets(BucketPolicy(capacity=2, refill_per_second=1), clock=clock)
    assert [buckets.take("a").outcome for _ in range(3)] == ["ok", "ok", "limited"]
    clock.now += 1.0
    assert buckets.take("a").outcome == "ok"
    assert buckets.take("a").outcome == "limited"
    clock.now += 60.0  # long idle: full again, never more than capacity
    refilled = buckets.take("a")
    assert (refilled.outcome, refilled.remaining, refilled.limit) == ("ok", 1, 2)


def test_a_limited_take_says_when_to_retry() -> None:
    clock = Clock()
    buckets = PushBuckets(BucketPolicy(capacity=1, refill_per_second=0.25), clock=clock)
    buckets.take("a")
    clock.now += 1.0  # a quarter of a token back: three quarters (3 s) to go
    assert buckets.take("a") == Admission(
        "limited", limit=1, remaining=0, reset_seconds=3, retry_after_seconds=3
    )


def test_keys_have_their_own_buckets() -> None:
    buckets = PushBuckets(BucketPolicy(capacity=1, refill_per_second=0.001), clock=Clock())
    assert buckets.take(("sandbox", "10.0.0.1")).outcome == "ok"
    assert buckets.take(("sandbox", "10.0.0.1")).outcome == "limited"
    assert buckets.take(("ups", "10.0.0.1")).outcome == "ok"
    assert buckets.take(("sandbox", "10.0.0.2")).outcome == "ok"


def test_a_flood_of_addresses_keeps_at_most_max_buckets() -> None:
    buckets = PushBuckets(BucketPolicy(100, 0.001), max_buckets=50, clock=Clock())
    for address in range(1000):
        buckets.take(("sandbox", f"10.0.{address // 256}.{address % 256}"))
    assert len(buckets) == 50


def test_the_least_recently_used_bucket_is_the_one_dropped() -> None:
    buckets = PushBuckets(BucketPolicy(1, 0.001), max_buckets=2, clock=Clock())
    buckets.take("old")
    buckets.take("busy")
    buckets.take("old")  # used again: now "busy" is the least recently used
    buckets.take("new")
    assert buckets.take("old").outcome == "limited"  # kept: still empty
    assert buckets.take("busy").outcome == "ok"  # dropped: starts full again


def test_refilled_buckets_are_dropped_when_a_new_key_comes() -> None:
    clock = Clock()
    buckets = PushBuckets(BucketPolicy(capacity=2, refill_per_second=1), clock=clock)
    for key in ("a", "b", "c"):
        buckets.take(key)
    clock.now += 1.0  # one token back each: all full again, the same as no bucket
    buckets.take("d")
    assert len(buckets) == 1


def test_max_buckets_must_be_positive() -> None:
    with pytest.raises(ValueError):
        PushBuckets(BucketPolicy(1, 1), max_buckets=0)


async def test_it_answers_what_the_database_buckets_answer(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/gateway.db"
    migrate(url)
    db = Database(url, service="gateway")
    clock = Clock()
    policy = BucketPolicy(capacity=3, refill_per_second=0.5)
    buckets = PushBuckets(policy, clock=clock)
    try:
        for step in (0.0, 0.0, 0.0, 0.0, 0.7, 1.5, 0.0, 0.0, 9.0):
            clock.now += step
            in_db = await db.run(take_partner_token, "push_x", "push", policy, clock.now)
            assert buckets.take("x") == Admission(
                in_db.outcome,
                limit=in_db.limit,
                remaining=in_db.remaining,
                reset_seconds=in_db.reset_seconds,
                retry_after_seconds=in_db.retry_after_seconds,
            )
    finally:
        await db.close()
