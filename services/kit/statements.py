"""Building blocks for SQL statements built once per process (SQLAlchemy Core, `bindparam()`).

Why: building a select()/update()/insert() per call cost more CPU than running it on SQLite
(coercions, bind parameters, cache-key generation). A statement built once at import keeps its
memoized cache key, so a call only binds its values. The services' `adapters/store/statements.py`
modules are made of these.

- `update_where(table, *keys)`: UPDATE whose SET columns come from the parameters it runs with;
  its WHERE binds are named `match_<key>` so they never collide with a column name.
- `insert_new(table)`: a first-writer-wins INSERT ... ON CONFLICT DO NOTHING per dialect, picked
  with `new_row(statements, conn)`. The caller reads `rowcount` (0 = the row was already there)
  instead of catching a unique violation: no savepoint, and a PostgreSQL transaction that loses
  a race stays usable. `inline()` leaves out the RETURNING of a generated key that SQLAlchemy
  would otherwise add on PostgreSQL, and `preserve_rowcount` keeps the rowcount psycopg reports.
"""

from __future__ import annotations

from sqlalchemy import Connection, Insert, Table, Update, and_, bindparam, update
from sqlalchemy.dialects import postgresql, sqlite

# An INSERT ... ON CONFLICT DO NOTHING per dialect name ("sqlite", "postgresql").
NewRow = dict[str, Insert]


def insert_new(table: Table) -> NewRow:
    return {
        name: dialect_insert(table)
        .on_conflict_do_nothing()
        .inline()
        .execution_options(preserve_rowcount=True)
        for name, dialect_insert in (("sqlite", sqlite.insert), ("postgresql", postgresql.insert))
    }


def new_row(statements: NewRow, conn: Connection) -> Insert:
    """The dialect's statement of an `insert_new` pair for this connection."""
    return statements[conn.dialect.name]


def update_where(table: Table, *keys: str) -> Update:
    """UPDATE `table` WHERE each key column = :match_<key>; SET comes from the parameters."""
    return update(table).where(and_(*(table.c[key] == bindparam(f"match_{key}") for key in keys)))
