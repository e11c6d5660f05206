"""The one way a worker takes rows to work on: a lease in the row itself.

`lease_due` reads due rows and pushes their lease column into the future in the same
transaction, so no other worker (another replica, or this one after a restart) takes them until
the lease runs out. A worker that dies mid-item simply loses its lease; the item is taken again,
which is why leased work must be idempotent.

- PostgreSQL: `FOR UPDATE SKIP LOCKED`, so concurrent claimers pass each other instead of queueing
  behind one another's row locks.
- SQLite: the process is the single writer and the unit of work begins IMMEDIATE, so the read and
  the update cannot interleave with another claimer; no row locks are needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, Connection, Row, Select, Table, update

__all__ = ["lease_due"]


def lease_due(
    conn: Connection,
    query: Select[Any],
    *,
    table: Table,
    key: Column[Any],
    lease_column: Column[Any],
    lease_until: object,
    key_field: str | None = None,
) -> Sequence[Row[Any]]:
    """Run `query` (the due rows, with its own order and limit) and lease what it returns.

    `query` must select `key` (read back by `key_field`, default `key.name`). Every returned row
    gets `lease_column = lease_until` in this transaction.
    """
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=table)
    rows = conn.execute(query).all()
    if rows:
        field = key_field or key.name
        conn.execute(
            update(table)
            .where(key.in_([getattr(row, field) for row in rows]))
            .values({lease_column.name: lease_until})
        )
    return rows
