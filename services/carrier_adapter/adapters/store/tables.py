"""carrier-adapter's tables (SQLAlchemy Core).

Instants are epoch seconds (Float) and money is a decimal string plus currency, so SQLite and
PostgreSQL round-trip them identically.

- quotes: every rate handed out (rte_ ids), so BookLabel books at the quoted account and price.
- labels: one row per idempotency key (UNIQUE). The row is inserted as `booking` before the
  carrier is called, which is what makes a second caller with the same key wait instead of
  booking again; it becomes `booked` with the document once the carrier answers.
- payload_log: raw carrier exchanges, swept by age and count (domain.payload_log).
- seen_scans: dedupe keys of scans already published, so a re-sent webhook publishes nothing.
- tracking_polls: one row per booked label of a polled account (domain.polling's PollState),
  plus the lease a replica holds while it polls that label.
- code_mappings: operators' versioned mappings of carrier status codes (domain.code_mapping),
  laid over the packaged tables; rows are only ever added.
- unmapped_scans: each published scan its status code left UNKNOWN, kept whole so a mapping of
  the code can normalize it again; `mapped_version` is set by the one re-normalization that
  publishes it.
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
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

metadata = MetaData()

_SEQ = BigInteger().with_variant(Integer(), "sqlite")

quotes = Table(
    "quotes",
    metadata,
    Column("rate_id", String(40), primary_key=True),
    Column("carrier", String(32), nullable=False),
    Column("carrier_account_id", String(32), nullable=False),
    Column("service_code", String(64), nullable=False),
    Column("service_name", String(200), nullable=False),
    Column("service_level", String(16), nullable=True),
    Column("amount", String(40), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("transit_days", Integer, nullable=True),
    Column("estimated_delivery", Float, nullable=True),
    Column("expires_at", Float, nullable=False, index=True),
    Column("created_at", Float, nullable=False),
)

labels = Table(
    "labels",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("label_id", String(40), nullable=False, unique=True),
    Column("idempotency_key", String(128), nullable=False, unique=True),
    # booking → booked; `unknown` when a non-idempotent carrier may have booked before failing.
    Column("status", String(16), nullable=False),
    # Whoever holds the claim may finish the booking; a stale claim can be taken over.
    Column("claim_token", String(40), nullable=False),
    Column("claimed_at", Float, nullable=False),
    Column("rate_id", String(40), nullable=False),
    Column("carrier", String(32), nullable=False),
    Column("carrier_account_id", String(32), nullable=False),
    Column("service_code", String(64), nullable=False),
    Column("tracking_number", String(64), nullable=True, index=True),
    Column("package_tracking_numbers", Text, nullable=False),
    Column("label_format", String(8), nullable=False),
    Column("document", LargeBinary, nullable=True),
    Column("quoted_amount", String(40), nullable=True),
    Column("quoted_currency", String(3), nullable=True),
    Column("carrier_shipment_id", String(64), nullable=False),
    # A return label (customer → warehouse); set at claim, so an idempotency key names one kind.
    Column("is_return", Boolean, nullable=False, server_default=false()),
    # The BookLabelRequest as received: the sandbox carrier's simulation is rebuilt from it after
    # a restart (a real carrier keeps its own state).
    Column("request", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("booked_at", Float, nullable=True),
    Column("cancelled_at", Float, nullable=True),
    sqlite_autoincrement=True,
)

payload_log = Table(
    "payload_log",
    metadata,
    Column("record_id", _SEQ, primary_key=True, autoincrement=True),
    Column("carrier", String(32), nullable=False),
    Column("carrier_account_id", String(32), nullable=False, index=True),
    Column("operation", String(32), nullable=False),
    Column("direction", String(16), nullable=False),
    Column("is_error", Boolean, nullable=False),
    Column("recorded_at", Float, nullable=False, index=True),
    Column("url", String(500), nullable=False),
    Column("reference", String(128), nullable=False, index=True),
    Column("body", Text, nullable=False),
    Column("truncated", Boolean, nullable=False),
    sqlite_autoincrement=True,
)

seen_scans = Table(
    "seen_scans",
    metadata,
    Column("dedupe_key", String(64), primary_key=True),
    Column("carrier", String(32), nullable=False),
    Column("tracking_number", String(64), nullable=False),
    Column("seen_at", Float, nullable=False),
)

tracking_polls = Table(
    "tracking_polls",
    metadata,
    Column("label_id", String(40), primary_key=True),
    Column("carrier", String(32), nullable=False),
    Column("carrier_account_id", String(32), nullable=False, index=True),
    Column("tracking_number", String(64), nullable=False),
    # The canonical status of the latest scan; PENDING before the first. Terminal ends polling.
    Column("status", String(24), nullable=False),
    Column("label_created_at", Float, nullable=False),
    Column("last_polled_at", Float, nullable=True),
    # When a poll last brought a scan not seen before; None before the first.
    Column("last_scan_at", Float, nullable=True),
    # Why the last poll failed (empty after a good one), for whoever looks at a stuck parcel.
    Column("last_error", String(500), nullable=False),
    # A replica polling this label holds it until lease_until; a lapsed lease is free again.
    Column("lease_token", String(40), nullable=True),
    Column("lease_until", Float, nullable=True),
)

code_mappings = Table(
    "code_mappings",
    metadata,
    # Increases with every mapping made: a replica reloads its tables when the largest changes.
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("carrier", String(32), nullable=False),
    Column("carrier_status_code", String(32), nullable=False),
    Column("status", String(24), nullable=False),
    # Per (carrier, code), from 1; UNIQUE, so two racing operators cannot make the same version.
    Column("version", Integer, nullable=False),
    Column("operator", String(128), nullable=False),
    Column("note", String(500), nullable=False),
    Column("mapped_at", Float, nullable=False),
    UniqueConstraint(
        "carrier", "carrier_status_code", "version", name="uq_code_mappings_code_version"
    ),
    sqlite_autoincrement=True,
)

unmapped_scans = Table(
    "unmapped_scans",
    metadata,
    Column("dedupe_key", String(64), primary_key=True),
    Column("carrier", String(32), nullable=False),
    # Text: a carrier may send any code, and an over-long one must not fail the push.
    Column("carrier_status_code", Text, nullable=False),
    Column("tracking_number", String(64), nullable=False),
    # The normalized scan as published (JSON, store.unmapped's codec).
    Column("scan", Text, nullable=False),
    Column("received_at", Float, nullable=False),
    # The mapping version it was normalized again under; None while it is still UNKNOWN.
    Column("mapped_version", Integer, nullable=True),
    Column("mapped_at", Float, nullable=True),
)
Index(
    "ix_unmapped_scans_code",
    # mapped_version first: the refresh lists the codes of the rows still NULL (one range), and
    # a claim names all three columns.
    unmapped_scans.c.mapped_version,
    unmapped_scans.c.carrier,
    unmapped_scans.c.carrier_status_code,
)
