"""Saga transitions as units of work: load the order, run the saga, then write the order, its
events (outbox) and its commands (queue) in the same transaction.

Used by the api, the consumers, the command worker and the deadline sweeper alike, so every
path persists a transition the same way.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection

from services.kit import outbox
from services.kit.db import Database
from services.kit.errors import Conflict
from services.order.api.mapping import event_to_message
from services.order.domain import Context, FulfillmentSaga, SagaInput, SagaResult
from services.order.store import repository as repo

T = TypeVar("T")

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def commit(conn: Connection, loaded: repo.Loaded | None, result: SagaResult, now: datetime) -> None:
    """Persist one saga result: the order (insert or compare-and-set), events, commands."""
    order = result.order
    if loaded is None:
        repo.insert_order(conn, order)
    elif result.changed:
        repo.save_order(conn, loaded, order)
    correlation_id = _last_correlation_id(result)
    for event in result.events:
        outbox.append(
            conn, event_to_message(event, order), order.order_id, correlation_id=correlation_id
        )
    repo.enqueue(conn, result.commands, now)


def _last_correlation_id(result: SagaResult) -> str:
    for entry in reversed(result.order.timeline):
        if entry.correlation_id:
            return entry.correlation_id
    return ""


def apply_input(
    conn: Connection, saga: FulfillmentSaga, order_id: str, saga_input: SagaInput, ctx: Context
) -> SagaResult | None:
    """Apply one input to a stored order; None when the order is not ours."""
    loaded = repo.get_order(conn, order_id)
    if loaded is None:
        return None
    result = saga.apply(loaded.order, saga_input, ctx)
    commit(conn, loaded, result, ctx.now)
    return result


async def run_retrying(db: Database, fn: Callable[..., T], *args: Any, attempts: int = 6) -> T:
    """`db.run(fn, *args)`, re-run whole on an optimistic `Conflict` (jittered backoff)."""
    for attempt in range(1, attempts + 1):
        try:
            return await db.run(fn, *args)
        except Conflict:
            if attempt == attempts:
                raise
            await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))
    raise AssertionError("unreachable")


class OrderIds:
    """`ord_` + a 26-character ULID (48-bit milliseconds, 80 random bits), monotonic here."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._last_random = 0

    def new_order_id(self) -> str:
        with self._lock:
            now_ms = time.time_ns() // 1_000_000
            if now_ms > self._last_ms:
                self._last_ms = now_ms
                self._last_random = int.from_bytes(os.urandom(10), "big") >> 1
            else:
                self._last_random += 1
            value = (self._last_ms << 80) | (self._last_random & ((1 << 80) - 1))
        digits = []
        for _ in range(26):
            value, digit = divmod(value, 32)
            digits.append(_CROCKFORD[digit])
        return "ord_" + "".join(reversed(digits))
