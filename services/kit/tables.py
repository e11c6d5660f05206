"""The kit's own tables: the transactional outbox and the consumer inbox.

Services include them in their MetaData (`add_kit_tables(metadata)`) so Alembic autogenerate sees
them, and create them from a migration with `services.kit.migrations.create_kit_tables(op)`.
Timestamps are UTC epoch seconds (float) so the hot path binds plain numbers on SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.schema import SchemaItem

OUTBOX = "outbox"
INBOX = "inbox"
PENDING_PREDICATE = "sent_at IS NULL"
SENT_PREDICATE = "sent_at IS NOT NULL"


def outbox_items() -> list[SchemaItem]:
    """Fresh column objects for the outbox (a Column can belong to one Table only)."""
    return [
        # seq orders publication. INTEGER PRIMARY KEY AUTOINCREMENT on SQLite (rowid alias, never
        # reused), BIGSERIAL on PostgreSQL.
        Column(
            "seq",
            BigInteger().with_variant(Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        # event_id is ce-id and Nats-Msg-Id: a UUIDv7 string.
        Column("event_id", String(64), nullable=False, unique=True),
        Column("subject", String(255), nullable=False),
        Column("aggregate_id", String(255), nullable=False),
        # headers is the JSON object of NATS headers (CloudEvents attributes, traceparent, ...).
        Column("headers", Text(), nullable=False),
        Column("payload", LargeBinary(), nullable=False),
        Column("created_at", Float(), nullable=False),
        Column("sent_at", Float(), nullable=True),
    ]


def inbox_items() -> list[SchemaItem]:
    """Fresh column objects for the inbox: one row per (consumer, event) applied."""
    return [
        Column("consumer", String(255), nullable=False),
        Column("event_id", String(64), nullable=False),
        Column("processed_at", Float(), nullable=False),
        PrimaryKeyConstraint("consumer", "event_id", name="pk_inbox"),
    ]


def outbox_indexes(table: Table) -> list[Index]:
    # Partial indexes keep "what is pending" and "what may be purged" cheap however many sent rows
    # are retained.
    return [
        Index(
            "ix_outbox_pending",
            table.c.seq,
            sqlite_where=text(PENDING_PREDICATE),
            postgresql_where=text(PENDING_PREDICATE),
        ),
        Index(
            "ix_outbox_sent_at",
            table.c.sent_at,
            sqlite_where=text(SENT_PREDICATE),
            postgresql_where=text(SENT_PREDICATE),
        ),
    ]


def add_kit_tables(metadata: MetaData) -> tuple[Table, Table]:
    """Define the outbox and inbox tables on a service's MetaData; returns (outbox, inbox)."""
    outbox = Table(OUTBOX, metadata, *outbox_items(), sqlite_autoincrement=True)
    outbox_indexes(outbox)  # Index objects attach themselves to the table
    inbox = Table(INBOX, metadata, *inbox_items())
    Index("ix_inbox_processed_at", inbox.c.processed_at)
    return outbox, inbox
