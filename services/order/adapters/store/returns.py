"""Return persistence inside one unit of work (never commits; `Database.run` owns that).

A return is one JSON document (the order codec) plus query columns, written whole with a version
compare-and-set, like an order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from services.kit.errors import Conflict
from services.kit.paging import keyset, next_page
from services.order.adapters.store import codec
from services.order.adapters.store import statements as sql
from services.order.adapters.store import tables as t
from services.order.domain.returns import Return, ReturnStatus


@dataclass(frozen=True)
class LoadedReturn:
    """A return and the version it was read at (the compare-and-set token for `save_return`)."""

    order_return: Return
    version: int
    seq: int


def _columns(order_return: Return) -> dict[str, Any]:
    return {
        "status": order_return.status.value,
        "updated_at": order_return.updated_at.timestamp(),
        "document": codec.dumps(order_return),
    }


def _loaded(row: Any) -> LoadedReturn:
    return LoadedReturn(codec.loads(Return, row.document), int(row.version), int(row.seq))


def insert_return(conn: Connection, order_return: Return) -> None:
    values = {
        "return_id": order_return.return_id,
        "order_id": order_return.order_id,
        "partner_id": order_return.partner_id,
        "idempotency_key": order_return.idempotency_key or None,
        "created_at": order_return.created_at.timestamp(),
        "version": 1,
        **_columns(order_return),
    }
    try:
        with conn.begin_nested():
            sql.NEW_RETURN.run(conn, values)
    except IntegrityError as exc:
        # A concurrent CreateReturn with the same key won; the re-run replays it.
        raise Conflict(f"return for order {order_return.order_id} created concurrently") from exc


def save_return(conn: Connection, loaded: LoadedReturn, order_return: Return) -> None:
    done = sql.SAVE_RETURN.run(
        conn,
        {
            "match_return_id": order_return.return_id,
            "match_version": loaded.version,
            "version": loaded.version + 1,
            **_columns(order_return),
        },
    )
    if done.rowcount != 1:
        raise Conflict(f"return {order_return.return_id} changed concurrently")


def get_return(conn: Connection, return_id: str) -> LoadedReturn | None:
    row = sql.RETURN.run(conn, {"return_id": return_id}).first()
    return _loaded(row) if row else None


def find_by_key(conn: Connection, order_id: str, idempotency_key: str) -> LoadedReturn | None:
    row = sql.RETURN_BY_KEY.run(
        conn, {"order_id": order_id, "idempotency_key": idempotency_key}
    ).first()
    return _loaded(row) if row else None


def returns_of_order(conn: Connection, order_id: str) -> list[Return]:
    """Every return of an order, oldest first."""
    rows = sql.RETURNS_OF_ORDER.run(conn, {"order_id": order_id})
    return [_loaded(row).order_return for row in rows]


def list_returns(
    conn: Connection,
    partner_id: str,
    order_id: str,
    status: ReturnStatus | None,
    page_token: str,
    size: int,
) -> tuple[list[Return], str]:
    """One page of returns, newest first, past `page_token`, and the next page's token."""
    query = select(t.returns)
    if partner_id:
        query = query.where(t.returns.c.partner_id == partner_id)
    if order_id:
        query = query.where(t.returns.c.order_id == order_id)
    if status is not None:
        query = query.where(t.returns.c.status == status.value)
    page = keyset(query, t.returns.c.seq, page_token, size, descending=True)
    rows = [_loaded(row) for row in conn.execute(page)]
    served, token = next_page(rows, size, key=lambda loaded: loaded.seq)
    return [loaded.order_return for loaded in served], token
