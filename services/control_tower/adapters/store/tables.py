"""The control tower's tables (SQLAlchemy Core): projections of other services' events.

- events: every consumed event once (event_id UNIQUE), with the CloudEvents attributes a
  timeline shows and its raw protobuf body, decoded only when someone asks for its details.
  Keyed for reading by aggregate_id (ce-subject): an order's timeline is the events of the order
  and of every aggregate linked to it. Later projections (flow health, exceptions) read it too.
- links: `(kind, value) → order id`, from the events that carry references (an external order id
  per partner, a shipment, a tracking number, an invoice number, a return, a reservation ...).
  First writer wins; a value never changes its order.
- flow_milestones: `(item id, milestone) → the earliest time an event marked it`, for the
  business flows (services.control_tower.domain.flows). An item is an order, a shipment or a
  return; the earliest time wins, so the same events in any order end in the same rows.

Instants are epoch seconds (Float), as in every service.
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
)

metadata = MetaData()

_SEQ = BigInteger().with_variant(Integer(), "sqlite")

events = Table(
    "events",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("subject", String(255), nullable=False),
    Column("producer", String(64), nullable=False),
    Column("aggregate_id", String(255), nullable=False),
    Column("occurred_at", Float, nullable=False),
    Column("trace_id", String(32), nullable=False),
    Column("correlation_id", String(128), nullable=False),
    Column("stream_seq", BigInteger, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("recorded_at", Float, nullable=False),
    Index("ix_events_aggregate_id", "aggregate_id"),
    Index("ix_events_correlation_id", "correlation_id"),
    sqlite_autoincrement=True,
)

links = Table(
    "links",
    metadata,
    # ReferenceKind's value (services.control_tower.domain.references).
    Column("kind", Integer, nullable=False),
    Column("value", String(255), nullable=False),
    # The partner that scopes an external order id; "" for every other kind.
    Column("partner_id", String(40), nullable=False),
    Column("order_id", String(40), nullable=False),
    PrimaryKeyConstraint("kind", "value", "partner_id"),
    Index("ix_links_value", "value"),
    Index("ix_links_order_id", "order_id"),
)

flow_milestones = Table(
    "flow_milestones",
    metadata,
    Column("item_id", String(255), nullable=False),
    # Milestone's value (services.control_tower.domain.flows), e.g. "order.released".
    Column("milestone", String(32), nullable=False),
    Column("seen_at", Float, nullable=False),
    PrimaryKeyConstraint("item_id", "milestone"),
    # A flow scans one milestone's items, then probes each item's later milestones by key.
    Index("ix_flow_milestones_milestone", "milestone", "seen_at"),
)
