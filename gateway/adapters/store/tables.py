"""The gateway's tables (SQLAlchemy Core).

- partners: one row per partner; every API key and record hangs off a partner id.
- api_keys: a key's public id, per-key salt and SHA-256 of salt+secret (never the key itself),
  its scopes (space separated) and revocation time.
- idempotency_records: one per (partner, Idempotency-Key): the request fingerprint, whether the
  request is still running, and the stored response to replay.
- rate_buckets: one token bucket per (partner, route class), shared by every gateway replica.
- operator_keys: keys of the people who operate the mesh (the operator console): who holds the
  key (the name later actions are audited under), salt and SHA-256 as for api_keys, scopes,
  optional expiry and revocation. No partner: an operator key is never a partner's.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

partners = Table(
    "partners",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", Float(), nullable=False),
    Column("disabled", Boolean(), nullable=False, default=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("partner_id", String(40), ForeignKey("partners.id"), nullable=False),
    Column("salt", LargeBinary(), nullable=False),
    Column("secret_sha256", LargeBinary(), nullable=False),
    Column("scopes", Text(), nullable=False),
    Column("created_at", Float(), nullable=False),
    Column("revoked_at", Float(), nullable=True),
    Index("ix_api_keys_partner_id", "partner_id"),
)

idempotency_records = Table(
    "idempotency_records",
    metadata,
    Column("partner_id", String(40), primary_key=True),
    Column("idempotency_key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    # "running" while the first request executes, then "done" with the response below.
    Column("state", String(16), nullable=False),
    Column("status_code", Integer(), nullable=True),
    Column("response_body", LargeBinary(), nullable=True),
    Column("content_type", String(100), nullable=True),
    Column("created_at", Float(), nullable=False),
    Column("expires_at", Float(), nullable=False),
    # A running record older than this was abandoned (a crashed replica) and may be taken over.
    Column("locked_until", Float(), nullable=False),
    Index("ix_idempotency_records_expires_at", "expires_at"),
)

rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("partner_id", String(40), primary_key=True),
    Column("route_class", String(32), primary_key=True),
    Column("tokens", Float(), nullable=False),
    Column("updated_at", Float(), nullable=False),
)

operator_keys = Table(
    "operator_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("operator", String(254), nullable=False),
    Column("salt", LargeBinary(), nullable=False),
    Column("secret_sha256", LargeBinary(), nullable=False),
    Column("scopes", Text(), nullable=False),
    Column("created_at", Float(), nullable=False),
    Column("expires_at", Float(), nullable=True),
    Column("revoked_at", Float(), nullable=True),
)
