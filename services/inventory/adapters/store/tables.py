"""Inventory's tables (SQLAlchemy Core).

Instants are stored as epoch seconds (Float) so SQLite and PostgreSQL round-trip them the same
way, with no timezone surprises. Small nested values (address, dimensions, reservation lines)
are JSON text: they are always read and written whole with their row, never queried inside.

- positions: one row per (sku, location); `version` is the optimistic-concurrency counter the
  repository compare-and-sets on, which decides races for the last unit. `non_sellable` units
  are held apart from `on_hand`.
- reserve_attempts / release_attempts / adjustments / receipts: idempotency keys are UNIQUE, so
  two racing requests with one key cannot both be recorded.
- movements: the stock ledger; `sellable` says which quantity of the position a row moved.
- `seq` columns give lists a stable creation order independent of clocks.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
    true,
)

metadata = MetaData()

_SEQ = BigInteger().with_variant(Integer(), "sqlite")

items = Table(
    "items",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("description", String(500), nullable=False),
    Column("unit_of_measure", Integer, nullable=False),
    Column("dimensions", Text, nullable=True),
    Column("weight", Text, nullable=True),
    Column("hazmat", Boolean, nullable=False),
    Column("lot_controlled", Boolean, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("unit_price", Text, nullable=True),
)

locations = Table(
    "locations",
    metadata,
    Column("location_id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("address", Text, nullable=True),
    Column("active", Boolean, nullable=False),
)

positions = Table(
    "positions",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("location_id", String(32), primary_key=True),
    Column("on_hand", BigInteger, nullable=False),
    Column("reserved", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("updated_at", Float, nullable=True),
    Column("non_sellable", BigInteger, nullable=False, server_default=text("0")),
)

reservations = Table(
    "reservations",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("reservation_id", String(40), nullable=False, unique=True),
    Column("order_id", String(40), nullable=False, index=True),
    Column("location_id", String(32), nullable=False),
    Column("status", Integer, nullable=False),
    Column("lines", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    Column("release_reason", String(200), nullable=False),
    Column("updated_at", Float, nullable=True),
    sqlite_autoincrement=True,
)

reserve_attempts = Table(
    "reserve_attempts",
    metadata,
    Column("idempotency_key", String(128), primary_key=True),
    Column("request_fingerprint", String(64), nullable=False),
    Column("order_id", String(40), nullable=False),
    Column("location_id", String(32), nullable=False),
    Column("reservation_id", String(40), nullable=True),
    Column("shortfalls", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

release_attempts = Table(
    "release_attempts",
    metadata,
    Column("idempotency_key", String(128), primary_key=True),
    Column("request_fingerprint", String(64), nullable=False),
    Column("reservation_id", String(40), nullable=False),
    Column("status", Integer, nullable=False),
    Column("lines", Text, nullable=False),
    Column("reason", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
)

pick_tasks = Table(
    "pick_tasks",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("pick_id", String(40), nullable=False, unique=True),
    Column("reservation_id", String(40), nullable=False, index=True),
    Column("order_id", String(40), nullable=False),
    Column("location_id", String(32), nullable=False),
    Column("status", Integer, nullable=False, index=True),
    Column("lines", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("confirmed_lines", Text, nullable=False),
    Column("completed_at", Float, nullable=True),
    sqlite_autoincrement=True,
)

adjustments = Table(
    "adjustments",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("adjustment_id", String(40), nullable=False, unique=True),
    Column("sku", String(64), nullable=False),
    Column("location_id", String(32), nullable=False),
    Column("quantity_delta", BigInteger, nullable=False),
    Column("reason", Integer, nullable=False),
    Column("note", String(500), nullable=False),
    Column("created_at", Float, nullable=False),
    # NULL when the adjustment has no key (short-pick write-offs): UNIQUE ignores NULLs.
    Column("idempotency_key", String(128), nullable=True, unique=True),
    Column("request_fingerprint", String(64), nullable=False),
    Column("pick_id", String(40), nullable=False),
    sqlite_autoincrement=True,
)

receipts = Table(
    "receipts",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("receipt_id", String(40), nullable=False, unique=True),
    Column("location_id", String(32), nullable=False),
    Column("source", Integer, nullable=False),
    Column("source_reference", String(64), nullable=False),
    Column("lines", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("idempotency_key", String(128), nullable=True, unique=True),
    Column("request_fingerprint", String(64), nullable=False),
    sqlite_autoincrement=True,
)

movements = Table(
    "movements",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("sku", String(64), nullable=False),
    Column("location_id", String(32), nullable=False),
    Column("quantity_delta", BigInteger, nullable=False),
    Column("kind", Integer, nullable=False),
    Column("reference_id", String(40), nullable=False),
    Column("occurred_at", Float, nullable=False),
    Column("sellable", Boolean, nullable=False, server_default=true()),
    sqlite_autoincrement=True,
)
