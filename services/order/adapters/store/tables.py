"""Order's tables (SQLAlchemy Core).

- orders: one row per order. The aggregate (lines, saga records, timeline) is one JSON document
  written whole by every saga transition, because the saga reads and rewrites it whole anyway;
  the columns beside it are copies kept for queries (partner/status lists, deadline sweeps,
  the idempotency key) and `version` for optimistic concurrency between api, consumers and
  the command worker.
- saga_commands: the saga's outgoing requests to other services, queued in the same
  transaction as the transition that issued them, executed and retried by the command worker.
- returns: one row per return (RMA), its aggregate a JSON document like the orders', with copies
  for queries (partner, order and status lists) and the CreateReturn idempotency key (NULL when
  none was given, so keyless returns never collide).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

_SEQ = BigInteger().with_variant(Integer(), "sqlite")

orders = Table(
    "orders",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("order_id", String(40), nullable=False, unique=True),
    Column("partner_id", String(40), nullable=False),
    Column("external_order_id", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("terminal", Boolean, nullable=False),
    Column("in_exception", Boolean, nullable=False),
    Column("step_deadline", Float, nullable=True),
    # "|SKU-A|SKU-B|": the SKUs arriving stock could help (domain `wants_stock`), so a receipt
    # finds its backorders with one LIKE instead of decoding every open order.
    Column("wanted_skus", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("document", Text, nullable=False),
    # CreateOrder idempotency: one order per (partner, external order id).
    UniqueConstraint("partner_id", "external_order_id", name="uq_orders_partner_external"),
    Index("ix_orders_partner_seq", "partner_id", "seq"),
    Index("ix_orders_deadline", "step_deadline"),
    sqlite_autoincrement=True,
)

saga_commands = Table(
    "saga_commands",
    metadata,
    Column("id", _SEQ, primary_key=True, autoincrement=True),
    Column("order_id", String(40), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("payload", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("done_at", Float, nullable=True),
    Column("last_error", Text, nullable=False),
    Index("ix_saga_commands_due", "done_at", "next_attempt_at"),
    sqlite_autoincrement=True,
)

returns = Table(
    "returns",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("return_id", String(40), nullable=False, unique=True),
    Column("order_id", String(40), nullable=False),
    Column("partner_id", String(40), nullable=False),
    Column("status", Integer, nullable=False),
    Column("idempotency_key", String(255), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("document", Text, nullable=False),
    # CreateReturn idempotency: one return per (order, key).
    UniqueConstraint("order_id", "idempotency_key", name="uq_returns_order_key"),
    Index("ix_returns_partner_seq", "partner_id", "seq"),
    Index("ix_returns_order_seq", "order_id", "seq"),
    sqlite_autoincrement=True,
)
