"""The retried unit of work and the service's id source.

An optimistic `Conflict` means another writer changed a position (or claimed a key) between our
read and our write. The whole unit of work is re-run, not just the failed statement: the domain
decision (e.g. how many units can be granted) was computed from the stale read.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from services.inventory.domain.ids import encode_crockford
from services.kit.db import Database
from services.kit.errors import Conflict

T = TypeVar("T")

DEFAULT_ATTEMPTS = 6


async def run_retrying(
    db: Database,
    fn: Callable[..., T],
    *args: Any,
    attempts: int = DEFAULT_ATTEMPTS,
) -> T:
    """`db.run(fn, *args)`, re-run on `Conflict` with a short jittered backoff."""
    for attempt in range(1, attempts + 1):
        try:
            return await db.run(fn, *args)
        except Conflict:
            if attempt == attempts:
                raise
            # Jitter de-synchronises the losers so they do not collide again in lockstep.
            await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))
    raise AssertionError("unreachable")


class UlidIds:
    """ULID-shaped ids (`rsv_` + 26 Crockford characters), monotonic within this process.

    48 bits of milliseconds then 80 random bits; within one millisecond the random part counts
    up, so ids sort in creation order like the domain's SequentialIds.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._last_random = 0

    def new_id(self, prefix: str) -> str:
        with self._lock:
            now_ms = time.time_ns() // 1_000_000
            if now_ms > self._last_ms:
                self._last_ms = now_ms
                self._last_random = int.from_bytes(os.urandom(10), "big") >> 1
            else:
                self._last_random += 1
            value = (self._last_ms << 80) | (self._last_random & ((1 << 80) - 1))
        return f"{prefix}_{encode_crockford(value)}"
