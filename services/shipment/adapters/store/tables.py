"""Shipment's tables (SQLAlchemy Core).

A shipment is stored whole as its contract message (`document`, proto3 binary, read and written
with the row; adapters/contracts.py converts the aggregate), with the columns queries and the
worker need beside it. Most scans rewrite only `status`, `progress`, `final_charge` and the
document's status, last tracking status, update time and proof of delivery
(store/scans.save_timeline). Instants are epoch seconds (Float).

- shipments.pick_id is UNIQUE: one shipment per warehouse pick, however often it is delivered.
  It is the shipment's source: for a return parcel (kind 2, RETURN) it holds the return id, so
  there is one return parcel per return too (the contract's pick_id is empty for those).
- tracking_numbers maps every master and package number to its shipment, for incoming scans.
- scans holds every distinct scan; (shipment_id, dedupe_key) is UNIQUE, so duplicates vanish.
- pending_picks are completed picks waiting for the worker to pack them (it needs the item
  master, a gRPC call, which must not run inside the consumer's transaction); with kind RETURN
  a row is an authorized return's units waiting to be packed into its return parcel, keyed by
  the return id.
- kind (services.shipment.domain.model.ShipmentKind): 1 outbound, 2 return parcel.
- order_refs caches what OrderPlaced says about delivery (who, where, how fast).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

_SEQ = BigInteger().with_variant(Integer(), "sqlite")

order_refs = Table(
    "order_refs",
    metadata,
    Column("order_id", String(40), primary_key=True),
    Column("partner_id", String(40), nullable=False),
    Column("service_level", Integer, nullable=False),
    Column("ship_to", LargeBinary, nullable=False),
)

# An order cancelled through shipment: its picks that arrive later are cancelled at once.
cancelled_orders = Table(
    "cancelled_orders",
    metadata,
    Column("order_id", String(40), primary_key=True),
    Column("partner_id", String(40), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("cancelled_at", Float, nullable=False),
)

pending_picks = Table(
    "pending_picks",
    metadata,
    Column("pick_id", String(40), primary_key=True),
    Column("order_id", String(40), nullable=False),
    Column("location_id", String(40), nullable=False),
    Column("lines", Text, nullable=False),
    Column("correlation_id", String(128), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Float, nullable=False, index=True),
    Column("last_error", String(500), nullable=False),
    Column("kind", Integer, nullable=False, server_default="1"),
)

shipments = Table(
    "shipments",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("shipment_id", String(40), nullable=False, unique=True),
    Column("order_id", String(40), nullable=False, index=True),
    Column("partner_id", String(40), nullable=False, index=True),
    Column("pick_id", String(40), nullable=False, unique=True),
    Column("status", Integer, nullable=False),
    Column("document", LargeBinary, nullable=False),
    # Tracking progress (services.shipment.domain.tracking.Progress), as JSON.
    Column("progress", Text, nullable=False),
    Column("correlation_id", String(128), nullable=False),
    # Label booking: due time, attempts, lease (so two workers never book concurrently).
    Column("label_attempts", Integer, nullable=False),
    Column("label_due_at", Float, nullable=True, index=True),
    Column("label_lease_until", Float, nullable=True),
    Column("final_charge", Text, nullable=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("kind", Integer, nullable=False, server_default="1"),
    sqlite_autoincrement=True,
)

tracking_numbers = Table(
    "tracking_numbers",
    metadata,
    Column("carrier", String(32), primary_key=True),
    Column("tracking_number", String(64), primary_key=True),
    Column("shipment_id", String(40), nullable=False),
)

scans = Table(
    "scans",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("shipment_id", String(40), nullable=False),
    Column("dedupe_key", String(200), nullable=False),
    Column("occur_time", Float, nullable=False),
    Column("event", LargeBinary, nullable=False),
    UniqueConstraint("shipment_id", "dedupe_key", name="uq_scans_shipment_dedupe"),
    sqlite_autoincrement=True,
)
