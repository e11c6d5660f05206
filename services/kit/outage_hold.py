"""Hold a consumer's batch while its database is unavailable, instead of spending deliveries.

A batch that fails because the database cannot be reached (PostgreSQL restarting or failing
over, this replica cut off from it) is no fault of its events. NAKing them would count a
delivery each time, and after `max_deliver` of them healthy events would be dead-lettered over
an outage the mesh recovers from by itself. So the consumer keeps the batch instead: it tells
JetStream it is still working on each message (`in_progress`, which restarts `ack_wait` without
a redelivery), adopts what the open pull request still delivers (at most one request's worth;
no new request is sent meanwhile), and probes the database with backoff. Once a probe succeeds
the batch is applied again; if the consumer is stopped first, the messages are handed back
(NAK) for another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.aio.msg import Msg
from sqlalchemy import Connection, text

from services.kit.db import Database, database_unavailable
from services.kit.pull import PullStream

__all__ = ["DatabaseOutage", "hold_until_database", "is_outage"]

log = logging.getLogger(__name__)

FIRST_PROBE_SECONDS = 0.25
MAX_PROBE_INTERVAL_SECONDS = 5.0


class DatabaseOutage(Exception):
    """A batch failed because its database is unavailable; nothing was committed or settled."""


def is_outage(error: BaseException) -> bool:
    return database_unavailable(error)


async def hold_until_database(
    db: Database,
    pull: PullStream,
    msgs: list[Msg],
    *,
    stopping: asyncio.Event,
    batch_size: int,
    ack_wait: float,
) -> list[Msg] | None:
    """Keep `msgs`, and what arrives meanwhile, in progress until the database answers again:
    then all of them, to apply again. None when stopping came first (the messages are NAKed)."""
    # in_progress well within ack_wait, so the server never redelivers what is held.
    interval_cap = min(MAX_PROBE_INTERVAL_SECONDS, ack_wait / 3)
    delay = min(FIRST_PROBE_SECONDS, interval_cap)
    while not stopping.is_set():
        msgs = msgs + pull.take_ready(batch_size)
        for msg in msgs:
            with contextlib.suppress(Exception):  # a lost one is redelivered after ack_wait
                await msg.in_progress()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), delay)
        if not stopping.is_set() and await _answers(db):
            return msgs
        delay = min(delay * 2, interval_cap)
    for msg in msgs + pull.take_ready(batch_size):
        with contextlib.suppress(Exception):
            await msg.nak()
    return None


async def _answers(db: Database) -> bool:
    try:
        await db.run(_probe)
    except Exception as error:
        if not is_outage(error):
            raise
        return False
    return True


def _probe(conn: Connection) -> None:
    conn.execute(text("SELECT 1"))
