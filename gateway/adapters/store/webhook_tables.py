"""The webhook tables, on the gateway's MetaData (migration 0002 creates them).

- webhook_subscriptions: a partner's endpoint, the event types it wants, its signing secret (and
  the previous one while a rotation's grace lasts) and its failure streak.
- webhook_deliveries: one row per (subscription, event), unique, so an event reaches an endpoint
  once however often it is consumed. The body is built once, so every retry sends the same bytes
  and the same delivery id. `lease_until` lets one replica claim a delivery while it POSTs.
- webhook_attempts: the delivery log, one row per POST.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from gateway.adapters.store.tables import metadata

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"

webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("partner_id", String(40), nullable=False),
    Column("url", Text(), nullable=False),
    # Space-separated event subjects.
    Column("event_types", Text(), nullable=False),
    Column("description", Text(), nullable=False),
    Column("enabled", Boolean(), nullable=False),
    Column("disabled_reason", Text(), nullable=False),
    Column("secret", String(100), nullable=False),
    Column("previous_secret", String(100), nullable=True),
    Column("previous_secret_expires_at", Float(), nullable=True),
    Column("consecutive_failures", Integer(), nullable=False),
    Column("created_at", Float(), nullable=False),
    Column("updated_at", Float(), nullable=False),
    Column("disabled_at", Float(), nullable=True),
    Index("ix_webhook_subscriptions_partner", "partner_id", "id"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("subscription_id", String(40), nullable=False),
    Column("partner_id", String(40), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(255), nullable=False),
    Column("body", LargeBinary(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempt_count", Integer(), nullable=False),
    Column("created_at", Float(), nullable=False),
    Column("next_attempt_at", Float(), nullable=True),
    Column("lease_until", Float(), nullable=False),
    Column("delivered_at", Float(), nullable=True),
    Column("expires_at", Float(), nullable=False),
    UniqueConstraint("subscription_id", "event_id", name="uq_webhook_deliveries_event"),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_subscription", "subscription_id", "id"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("delivery_id", String(40), primary_key=True),
    Column("attempt_number", Integer(), primary_key=True),
    Column("attempted_at", Float(), nullable=False),
    Column("status_code", Integer(), nullable=False),
    Column("error", Text(), nullable=False),
    Column("duration_seconds", Float(), nullable=False),
)
