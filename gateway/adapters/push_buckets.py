"""Carrier pushes' rate limit: token buckets per (carrier, client address), in this process.

A push bucket is flood protection, not a partner's contractual quota, so it does not need the
database: a DB transaction per push cost more CPU than the rest of the push's admission. The
price is that each gateway replica keeps its own buckets, so with N replicas a client may push
N x the policy (`Limits.push_bucket`) in all. Partner API-key buckets stay in the database,
shared by the replicas (gateway.adapters.store.queries).

Memory is bounded: a bucket that has refilled to capacity is the same as no bucket and is
dropped, and past `max_buckets` keys the least recently used bucket is dropped, so a flood of
distinct client addresses cannot grow it without limit (a dropped bucket starts full again).

Not thread-safe: the partner ASGI app uses it from its event loop only.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

from gateway.adapters.store.queries import Admission, BucketPolicy, refilled, spend_token

DEFAULT_MAX_BUCKETS = 10_000  # ~3 MB at most (measured); far more than the carriers' addresses


class PushBuckets:
    """One token bucket per key, oldest-used first; `take` answers like the DB buckets do."""

    def __init__(
        self,
        policy: BucketPolicy,
        max_buckets: int = DEFAULT_MAX_BUCKETS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_buckets < 1:
            raise ValueError("max_buckets must be at least 1")
        self.policy = policy
        self.max_buckets = max_buckets
        self._clock = clock
        # key -> (tokens left, when they were counted); ordered by last use, oldest first.
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: Hashable) -> Admission:
        """Take one token from `key`'s bucket ("ok" or "limited", with the RateLimit-* numbers)."""
        now = self._clock()
        held = self._buckets.get(key)
        if held is None:
            self._make_room(now)
            tokens = self.policy.capacity
        else:
            self._buckets.move_to_end(key)
            tokens = refilled(held[0], held[1], self.policy, now)
        tokens_left, admission = spend_token(tokens, self.policy)
        self._buckets[key] = (tokens_left, now)
        return admission

    def _make_room(self, now: float) -> None:
        """Before a new key: drop refilled buckets from the old end, then the oldest if full."""
        buckets, policy = self._buckets, self.policy
        while buckets:
            tokens, counted_at = next(iter(buckets.values()))
            if refilled(tokens, counted_at, policy, now) < policy.capacity:
                break
            buckets.popitem(last=False)
        if len(buckets) >= self.max_buckets:
            buckets.popitem(last=False)
