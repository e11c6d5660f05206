"""Rows ↔ domain values: epoch seconds for instants, decimal strings for money."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

from services.kit.values import Money

__all__ = ["epoch", "from_epoch", "insert_ignoring_duplicates", "money", "money_or_none"]


def epoch(instant: datetime) -> float:
    return instant.timestamp()


def from_epoch(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def money(amount: str, currency: str) -> Money:
    return Money(currency, Decimal(amount))


def money_or_none(amount: str | None, currency: str | None) -> Money | None:
    return None if amount is None or currency is None else money(amount, currency)


def insert_ignoring_duplicates(
    conn: Connection, table: Table, values: dict[str, Any], key: str
) -> bool:
    """INSERT … ON CONFLICT (key) DO NOTHING; True when the row was inserted.

    Decided by the unique index, not a prior SELECT, so two racing writers (PostgreSQL replicas)
    cannot both win.
    """
    module: Any = sqlite if conn.dialect.name == "sqlite" else postgresql
    statement = (
        module.insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[key])
        .returning(table.c[key])
    )
    # RETURNING, not rowcount: psycopg reports no useful rowcount for this statement.
    return conn.execute(statement).first() is not None
