"""Operators' code mappings: every version kept, the latest per code in force."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.exc import IntegrityError

from services.carrier_adapter.adapters.store.codec import epoch, from_epoch
from services.carrier_adapter.adapters.store.tables import code_mappings
from services.carrier_adapter.domain.code_mapping import CodeMapping
from services.carrier_adapter.domain.model import TrackingStatus
from services.kit.errors import Conflict
from services.kit.paging import keyset, next_page

__all__ = ["add_mapping", "latest_mapping", "latest_mappings", "list_mappings", "mappings_stamp"]


def _mapping(row: Any) -> CodeMapping:
    return CodeMapping(
        carrier=row.carrier,
        carrier_status_code=row.carrier_status_code,
        status=TrackingStatus(row.status),
        version=row.version,
        operator=row.operator,
        note=row.note,
        mapped_at=from_epoch(row.mapped_at),
    )


def add_mapping(conn: Connection, mapping: CodeMapping) -> None:
    """Store a new version. A racing caller that stored the same version first wins: this one
    is a Conflict, and its unit of work is run again against the version now in force."""
    assert mapping.mapped_at is not None
    try:
        conn.execute(
            insert(code_mappings).values(
                carrier=mapping.carrier,
                carrier_status_code=mapping.carrier_status_code,
                status=mapping.status.value,
                version=mapping.version,
                operator=mapping.operator,
                note=mapping.note,
                mapped_at=epoch(mapping.mapped_at),
            )
        )
    except IntegrityError as error:
        raise Conflict(
            f"{mapping.carrier} code {mapping.carrier_status_code!r} was mapped meanwhile"
        ) from error


def latest_mapping(conn: Connection, carrier: str, code: str) -> CodeMapping | None:
    row = conn.execute(
        select(code_mappings)
        .where(code_mappings.c.carrier == carrier, code_mappings.c.carrier_status_code == code)
        .order_by(code_mappings.c.version.desc())
        .limit(1)
    ).first()
    return None if row is None else _mapping(row)


def latest_mappings(conn: Connection) -> tuple[int, list[CodeMapping]]:
    """Every mapped code's latest version, and the stamp (`mappings_stamp`) they were read at.

    Operators map a handful of codes a year, so the whole table is read and reduced here."""
    rows = conn.execute(select(code_mappings).order_by(code_mappings.c.seq)).all()
    latest: dict[tuple[str, str], CodeMapping] = {}
    for row in rows:
        mapping = _mapping(row)
        key = (mapping.carrier, mapping.carrier_status_code)
        if key not in latest or latest[key].version < mapping.version:
            latest[key] = mapping
    return (rows[-1].seq if rows else 0), list(latest.values())


def mappings_stamp(conn: Connection) -> int:
    """The seq of the newest mapping (0 for none): it changes exactly when a mapping is made."""
    return int(conn.execute(select(func.coalesce(func.max(code_mappings.c.seq), 0))).scalar_one())


def list_mappings(
    conn: Connection, carrier: str, page_token: str, size: int
) -> tuple[Sequence[CodeMapping], str]:
    """One page of every version of every mapping (of one carrier, or all), newest first."""
    query = select(code_mappings)
    if carrier:
        query = query.where(code_mappings.c.carrier == carrier)
    rows = conn.execute(keyset(query, code_mappings.c.seq, page_token, size, descending=True)).all()
    page, token = next_page(rows, size, key=lambda row: int(row.seq))
    return [_mapping(row) for row in page], token
