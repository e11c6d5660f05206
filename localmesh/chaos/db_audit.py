"""The outbox and inbox rows of each service, read straight from its database, read-only.

No public API lists them (`crossdock outbox status` gives only the backlog), so this is the
checker's audit, not a product path: SQLite files are opened with `mode=ro` and PostgreSQL in a
read-only transaction. Sent rows purged by the outbox's retention are simply not audited.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from contextlib import closing
from typing import Any
from urllib.parse import quote

import sqlalchemy

SENT_ROWS = "SELECT event_id, subject, sent_at FROM outbox WHERE sent_at IS NOT NULL"
UNSENT_ROWS = "SELECT event_id, subject FROM outbox WHERE sent_at IS NULL"
INBOX_COUNTS = "SELECT consumer, event_id, COUNT(*) FROM inbox GROUP BY consumer, event_id"

Row = tuple[Any, ...]


Tables = tuple[list[Row], list[Row], list[Row]]


def read_tables(db_url: str) -> Tables:
    """(sent outbox rows, inbox counts, unsent outbox rows) of one service; a table the service
    lacks reads empty."""
    if db_url.startswith("sqlite:///"):
        return _read_sqlite(db_url.removeprefix("sqlite:///"))
    if db_url.startswith("postgresql"):
        return _read_postgres(db_url)
    raise ValueError(f"cannot audit a database at {db_url!r}: only sqlite and postgresql")


def _read_sqlite(path: str) -> Tables:
    uri = f"file:{quote(path)}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        sent = list(db.execute(SENT_ROWS)) if "outbox" in tables else []
        unsent = list(db.execute(UNSENT_ROWS)) if "outbox" in tables else []
        inbox = list(db.execute(INBOX_COUNTS)) if "inbox" in tables else []
    return sent, inbox, unsent


def _read_postgres(url: str) -> Tables:
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as db:
            db.execute(sqlalchemy.text("SET TRANSACTION READ ONLY"))
            tables = set(sqlalchemy.inspect(db).get_table_names())
            sent = _rows(db.execute(sqlalchemy.text(SENT_ROWS))) if "outbox" in tables else []
            unsent = _rows(db.execute(sqlalchemy.text(UNSENT_ROWS))) if "outbox" in tables else []
            inbox = _rows(db.execute(sqlalchemy.text(INBOX_COUNTS))) if "inbox" in tables else []
            db.rollback()
    finally:
        engine.dispose()
    return sent, inbox, unsent


def _rows(result: Iterable[sqlalchemy.Row[Any]]) -> list[Row]:
    return [tuple(row) for row in result]
