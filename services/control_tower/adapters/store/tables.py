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
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
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

exceptions = Table(
    "exceptions",
    metadata,
    Column("exception_id", _SEQ, primary_key=True, autoincrement=True),
    # ExceptionKind's value (services.control_tower.domain.exceptions).
    Column("kind", Integer, nullable=False),
    # A shipment id, "<carrier>:<code>", "<durable>:<DLQ sequence>" or "<order id>:<episode>".
    Column("subject_id", String(255), nullable=False),
    # The order it holds up; "" when the event named none.
    Column("order_id", String(40), nullable=False),
    # A tracking number that names the order through the links when the event named none
    # (resolved when read, so a link that lands later still counts); "" when none.
    Column("order_reference", String(255), nullable=False),
    # NULL until an opening event is seen (a row is written by one, or closed by a fix that
    # names its exception exactly before its opening arrived: never shown until then).
    Column("opened_at", Float),
    Column("last_seen_at", Float),
    Column("occurrences", Integer, nullable=False),
    # The owner's last word (what was tried, why it failed) and the event that said it.
    Column("detail", String(1000), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("closed_at", Float),
    # "event <subject> <event id>" or "operator <name>"; "" while open.
    Column("closed_by", String(255), nullable=False),
    UniqueConstraint("kind", "subject_id", name="uq_exceptions_kind_subject"),
    Index("ix_exceptions_closed_at", "closed_at"),
    sqlite_autoincrement=True,
)

exception_audit = Table(
    "exception_audit",
    metadata,
    Column("audit_id", _SEQ, primary_key=True, autoincrement=True),
    Column("exception_id", BigInteger, nullable=False),
    # The exception's order, so the order's timeline shows the action ("" when none).
    Column("order_id", String(40), nullable=False),
    # Action's value (services.control_tower.domain.exceptions).
    Column("action", Integer, nullable=False),
    Column("operator", String(64), nullable=False),
    Column("acted_at", Float, nullable=False),
    Column("reason", String(500), nullable=False),
    Column("owner_call", String(64), nullable=False),
    Column("succeeded", Boolean, nullable=False),
    Column("result", String(1000), nullable=False),
    Index("ix_exception_audit_exception_id", "exception_id"),
    Index("ix_exception_audit_order_id", "order_id"),
    sqlite_autoincrement=True,
)

# Reconciliation (services.control_tower.domain.reconciliation): one row per finding (a drift's
# episode); at most one open per (check, subject), enforced by the reconciler's unit of work.
reconcile_findings = Table(
    "reconcile_findings",
    metadata,
    Column("finding_id", _SEQ, primary_key=True, autoincrement=True),
    Column("check_name", String(64), nullable=False),
    Column("subject_id", String(255), nullable=False),
    Column("order_id", String(40), nullable=False),
    Column("evidence", String(1000), nullable=False),
    Column("first_seen_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("runs_seen", Integer, nullable=False),
    # NULL while open.
    Column("closed_at", Float),
    # The corrective call and the owner's answer; "" until one was made.
    Column("action", String(64), nullable=False),
    Column("result", String(1000), nullable=False),
    Column("corrected_at", Float),
    Column("correction_succeeded", Boolean),
    Index("ix_reconcile_findings_check_subject", "check_name", "subject_id", "closed_at"),
    Index("ix_reconcile_findings_closed_at", "closed_at"),
    sqlite_autoincrement=True,
)

reconcile_runs = Table(
    "reconcile_runs",
    metadata,
    Column("run_id", _SEQ, primary_key=True, autoincrement=True),
    Column("check_name", String(64), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=False),
    Column("scanned", Integer, nullable=False),
    Column("drifts", Integer, nullable=False),
    Column("new_findings", Integer, nullable=False),
    Column("corrected", Integer, nullable=False),
    Column("closed", Integer, nullable=False),
    Column("open_findings", Integer, nullable=False),
    # "" when the run completed.
    Column("error", String(1000), nullable=False),
    Index("ix_reconcile_runs_check", "check_name", "run_id"),
    sqlite_autoincrement=True,
)

# When each check runs next, and the lease of the replica running it now.
reconcile_schedule = Table(
    "reconcile_schedule",
    metadata,
    Column("check_name", String(64), primary_key=True),
    Column("next_run_at", Float, nullable=False),
    Column("lease_until", Float, nullable=False),
)
