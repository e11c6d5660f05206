"""The consumer inbox: `(consumer, event_id)` rows written in the same transaction as the effect.

A row means "this consumer has applied this event". Claiming the row before applying makes the
check and the record one statement, which is also race-free between replicas on PostgreSQL: a
concurrent claim of the same id waits for the first transaction and then sees the conflict.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import Connection

from services.kit.db import dbapi_cursor, dialect_sql


def claim(conn: Connection, consumer: str, event_id: str) -> bool:
    """Record one event; False when it was already applied (a duplicate)."""
    cursor = dbapi_cursor(conn)
    cursor.execute(
        dialect_sql(
            conn,
            "INSERT INTO inbox (consumer, event_id, processed_at) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING",
        ),
        (consumer, event_id, time.time()),
    )
    return int(cursor.rowcount) == 1


def claim_many(conn: Connection, consumer: str, event_ids: Sequence[str]) -> set[str]:
    """Record many distinct events in one round trip; returns the ids that were new."""
    if not event_ids:
        return set()
    now = time.time()
    cursor = dbapi_cursor(conn)
    if conn.dialect.name == "sqlite":
        # One writer per SQLite file (BEGIN IMMEDIATE), so read-then-insert cannot race.
        marks = ",".join("?" * len(event_ids))
        cursor.execute(
            f"SELECT event_id FROM inbox WHERE consumer = ? AND event_id IN ({marks})",
            (consumer, *event_ids),
        )
        seen = {row[0] for row in cursor.fetchall()}
        new = [event_id for event_id in event_ids if event_id not in seen]
        cursor.executemany(
            "INSERT INTO inbox (consumer, event_id, processed_at) VALUES (?, ?, ?)",
            [(consumer, event_id, now) for event_id in new],
        )
        return set(new)
    cursor.execute(
        "INSERT INTO inbox (consumer, event_id, processed_at) "
        "SELECT %s, unnest(%s::text[]), %s ON CONFLICT DO NOTHING RETURNING event_id",
        (consumer, list(event_ids), now),
    )
    return {row[0] for row in cursor.fetchall()}


def contains(conn: Connection, consumer: str, event_id: str) -> bool:
    cursor = dbapi_cursor(conn)
    cursor.execute(
        dialect_sql(conn, "SELECT 1 FROM inbox WHERE consumer = ? AND event_id = ?"),
        (consumer, event_id),
    )
    return cursor.fetchone() is not None


def purge(conn: Connection, consumer: str, older_than_seconds: float, limit: int = 5000) -> int:
    """Forget one consumer's events applied long ago (older than any possible redelivery)."""
    cutoff = time.time() - older_than_seconds
    cursor = dbapi_cursor(conn)
    cursor.execute(
        dialect_sql(
            conn,
            "DELETE FROM inbox WHERE consumer = ? AND event_id IN (SELECT event_id FROM inbox "
            "WHERE consumer = ? AND processed_at < ? LIMIT ?)",
        ),
        (consumer, consumer, cutoff, limit),
    )
    return int(cursor.rowcount)


def applied_among(conn: Connection, consumer: str, event_ids: Sequence[str]) -> set[str]:
    """Which of `event_ids` (at most ~1000) the consumer's inbox holds: one statement."""
    if not event_ids:
        return set()
    marks = ",".join("?" * len(event_ids))
    cursor = dbapi_cursor(conn)
    cursor.execute(
        dialect_sql(
            conn, f"SELECT event_id FROM inbox WHERE consumer = ? AND event_id IN ({marks})"
        ),
        (consumer, *event_ids),
    )
    return {event_id for (event_id,) in cursor.fetchall()}
