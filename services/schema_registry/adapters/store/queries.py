"""Queries of the registry store. Each takes the unit of work's Connection (kit Database.run)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite

from services.schema_registry.adapters.store.tables import (
    GLOBAL_SUBJECT,
    config,
    schemas,
    subject_versions,
)
from services.schema_registry.domain.model import CanonicalSchema, RegisteredSchema
from services.schema_registry.domain.modes import CompatibilityMode


class StaleSnapshot(Exception):
    """The subject gained a version since the caller read it; re-read and check again."""


_COLUMNS = (
    subject_versions.c.subject,
    subject_versions.c.version,
    subject_versions.c.schema_id,
    schemas.c.message_name,
    schemas.c.descriptor,
    schemas.c.fingerprint,
    subject_versions.c.created_at,
)
_JOINED = subject_versions.join(schemas, subject_versions.c.schema_id == schemas.c.id)


def _schema_of(row: Any) -> RegisteredSchema:
    return RegisteredSchema(
        schema_id=int(row.schema_id),
        subject=row.subject,
        version=int(row.version),
        message_name=row.message_name,
        descriptor=bytes(row.descriptor),
        fingerprint=row.fingerprint,
        created_at=float(row.created_at),
    )


def _upsert(conn: Connection, table: Table) -> Any:
    """INSERT with ON CONFLICT support, in the connection's dialect."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def registered(conn: Connection, subject: str, fingerprint: str) -> RegisteredSchema | None:
    """The version of `subject` that is this schema, if it was registered there."""
    row = conn.execute(
        select(*_COLUMNS)
        .select_from(_JOINED)
        .where(subject_versions.c.subject == subject, schemas.c.fingerprint == fingerprint)
    ).first()
    return None if row is None else _schema_of(row)


def version_numbers(conn: Connection, subject: str) -> list[int]:
    """The subject's versions, ascending (empty when the subject does not exist)."""
    rows = conn.execute(
        select(subject_versions.c.version)
        .where(subject_versions.c.subject == subject)
        .order_by(subject_versions.c.version)
    )
    return [int(version) for (version,) in rows]


def versions(conn: Connection, subject: str, numbers: Sequence[int]) -> list[RegisteredSchema]:
    """The given versions of a subject, newest first."""
    if not numbers:
        return []
    rows = conn.execute(
        select(*_COLUMNS)
        .select_from(_JOINED)
        .where(subject_versions.c.subject == subject, subject_versions.c.version.in_(numbers))
        .order_by(subject_versions.c.version.desc())
    )
    return [_schema_of(row) for row in rows]


def subject_version(conn: Connection, subject: str, version: int | None) -> RegisteredSchema | None:
    """One version of a subject; None for the latest."""
    query = select(*_COLUMNS).select_from(_JOINED).where(subject_versions.c.subject == subject)
    if version is None:
        query = query.order_by(subject_versions.c.version.desc()).limit(1)
    else:
        query = query.where(subject_versions.c.version == version)
    row = conn.execute(query).first()
    return None if row is None else _schema_of(row)


def schema_by_id(conn: Connection, schema_id: int) -> RegisteredSchema | None:
    """A schema with the subject and version it was first registered under."""
    row = conn.execute(
        select(*_COLUMNS)
        .select_from(_JOINED)
        .where(subject_versions.c.schema_id == schema_id)
        .order_by(subject_versions.c.id)
        .limit(1)
    ).first()
    return None if row is None else _schema_of(row)


def subjects(conn: Connection) -> list[str]:
    """Every subject with at least one version, sorted."""
    rows = conn.execute(
        select(subject_versions.c.subject).distinct().order_by(subject_versions.c.subject)
    )
    return [subject for (subject,) in rows]


def subject_mode(conn: Connection, subject: str) -> CompatibilityMode | None:
    """The mode set on `subject` ("" = global), or None when none is set."""
    value = conn.execute(
        select(config.c.compatibility).where(config.c.subject == subject)
    ).scalar_one_or_none()
    return None if value is None else CompatibilityMode(value)


def effective_mode(conn: Connection, subject: str, default: CompatibilityMode) -> CompatibilityMode:
    """The subject's mode, else the global one, else `default`."""
    for scope in (subject, GLOBAL_SUBJECT) if subject else (GLOBAL_SUBJECT,):
        mode = subject_mode(conn, scope)
        if mode is not None:
            return mode
    return default


def set_mode(conn: Connection, subject: str, mode: CompatibilityMode, now: float) -> None:
    """Set the mode of `subject` ("" = global)."""
    statement = _upsert(conn, config).values(
        subject=subject, compatibility=mode.value, updated_at=now
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[config.c.subject],
            set_={"compatibility": mode.value, "updated_at": now},
        )
    )


def insert_version(
    conn: Connection,
    subject: str,
    schema: CanonicalSchema,
    expected_latest: int | None,
    now: float,
) -> RegisteredSchema:
    """Register `schema` as the subject's next version, or return it if it is already there.

    `expected_latest` is the latest version the caller's compatibility check saw; if another
    registration got in first, StaleSnapshot tells the caller to check again. Two transactions
    racing past this check (PostgreSQL, READ COMMITTED) both insert the same (subject, version)
    and the unique constraint fails one of them, which the caller also retries.
    """
    existing = registered(conn, subject, schema.fingerprint)
    if existing is not None:
        return existing
    latest = conn.execute(
        select(func.max(subject_versions.c.version)).where(subject_versions.c.subject == subject)
    ).scalar_one_or_none()
    if latest != expected_latest:
        raise StaleSnapshot(subject)
    # DO NOTHING: the same schema may be arriving under another subject at the same moment.
    conn.execute(
        _upsert(conn, schemas)
        .values(
            fingerprint=schema.fingerprint,
            message_name=schema.message_name,
            descriptor=schema.descriptor,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=[schemas.c.fingerprint])
    )
    schema_id = conn.execute(
        select(schemas.c.id).where(schemas.c.fingerprint == schema.fingerprint)
    ).scalar_one()
    version = (latest or 0) + 1
    conn.execute(
        subject_versions.insert().values(
            subject=subject, version=version, schema_id=schema_id, created_at=now
        )
    )
    return RegisteredSchema(
        schema_id=int(schema_id),
        subject=subject,
        version=version,
        message_name=schema.message_name,
        descriptor=schema.descriptor,
        fingerprint=schema.fingerprint,
        created_at=now,
    )
