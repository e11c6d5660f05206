"""The registry's tables (SQLAlchemy Core).

- schemas: one row per distinct schema (root message + canonical descriptor set); `id` is the
  registry-wide schema id stamped into ce-dataschema, so it is never reused.
- subject_versions: which schema is version N of a subject. A schema appears at most once per
  subject (re-registering returns the existing version) and may appear under many subjects.
- config: the compatibility mode per subject; the row with subject "" is the global mode.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

GLOBAL_SUBJECT = ""

metadata = MetaData()

# BIGINT ids on PostgreSQL; INTEGER PRIMARY KEY AUTOINCREMENT on SQLite (a rowid alias that is
# never reused, even after a delete).
_ID = BigInteger().with_variant(Integer(), "sqlite")

schemas = Table(
    "schemas",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("message_name", String(255), nullable=False),
    Column("descriptor", LargeBinary(), nullable=False),
    Column("created_at", Float(), nullable=False),
    sqlite_autoincrement=True,
)

subject_versions = Table(
    "subject_versions",
    metadata,
    # Registration order: "the subject and version a schema was first registered under".
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("subject", String(255), nullable=False),
    Column("version", Integer(), nullable=False),
    Column("schema_id", _ID, ForeignKey("schemas.id"), nullable=False),
    Column("created_at", Float(), nullable=False),
    # Both constraints make concurrent registrations safe: a racing insert fails, and retries.
    UniqueConstraint("subject", "version", name="uq_subject_versions_subject_version"),
    UniqueConstraint("subject", "schema_id", name="uq_subject_versions_subject_schema"),
    sqlite_autoincrement=True,
)

config = Table(
    "config",
    metadata,
    Column("subject", String(255), primary_key=True),
    Column("compatibility", String(32), nullable=False),
    Column("updated_at", Float(), nullable=False),
)
