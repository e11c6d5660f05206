"""Rows ↔ domain values: epoch seconds for instants, decimal strings for money."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Insert, Table
from sqlalchemy.dialects import postgresql, sqlite

from services.kit.values import Money

__all__ = ["epoch", "from_epoch", "insert_new_by_dialect", "money", "money_or_none"]


def epoch(instant: datetime) -> float:
    return instant.timestamp()


def from_epoch(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def money(amount: str, currency: str) -> Money:
    return Money(currency, Decimal(amount))


def money_or_none(amount: str | None, currency: str | None) -> Money | None:
    return None if amount is None or currency is None else money(amount, currency)


def insert_new_by_dialect(table: Table, key: str, *, whole_row: bool = False) -> dict[str, Insert]:
    """`INSERT … ON CONFLICT (key) DO NOTHING RETURNING key` for each dialect by name, for the
    kit's `prepared`; it returns the key it inserted, or with `whole_row` every column of the
    row. The unique index decides, not a prior SELECT, so two racing writers (PostgreSQL
    replicas) cannot both win. RETURNING, not rowcount: psycopg reports no useful rowcount."""
    return {
        name: _insert_new(name == "sqlite", table, key, whole_row)
        for name in ("sqlite", "postgresql")
    }


@functools.cache
def _insert_new(on_sqlite: bool, table: Table, key: str, whole_row: bool) -> Insert:
    # Cached: building the statement (and walking it for its compiled-cache key) on every call
    # cost more CPU than running it.
    module: Any = sqlite if on_sqlite else postgresql
    returned = list(table.c) if whole_row else [table.c[key]]
    statement: Insert = (
        module.insert(table).on_conflict_do_nothing(index_elements=[key]).returning(*returned)
    )
    return statement
