"""Order persistence inside one unit of work (never commits; `Database.run` owns that)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, select

from services.kit.errors import Conflict
from services.kit.leases import lease_due
from services.kit.paging import keyset, next_page
from services.order.adapters.store import codec
from services.order.adapters.store import statements as sql
from services.order.adapters.store import tables as t
from services.order.domain import messages, wanted_skus
from services.order.domain.model import Order, OrderStatus

# Command classes by stored kind; the queue stores the class name and the codec's JSON.
_COMMANDS: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        messages.RequestAvailability,
        messages.ReserveStock,
        messages.ReleaseReservation,
        messages.CancelPickTask,
        messages.RestockPicked,
        messages.RetryShipment,
    )
}


@dataclass(frozen=True)
class Loaded:
    """An order and the version it was read at (the compare-and-set token for `save`)."""

    order: Order
    version: int
    seq: int


@dataclass(frozen=True)
class QueuedCommand:
    id: int
    order_id: str
    command: messages.SagaCommand
    attempts: int


def _columns(order: Order, wanted: Sequence[str] | None) -> dict[str, Any]:
    return {
        "status": order.status.value,
        "terminal": order.is_terminal,
        "in_exception": order.exception is not None,
        "step_deadline": order.step_deadline.timestamp() if order.step_deadline else None,
        "wanted_skus": _wanted_skus(order, wanted),
        "updated_at": order.updated_at.timestamp(),
        "document": codec.dumps(order),
    }


def _wanted_skus(order: Order, wanted: Sequence[str] | None) -> str:
    if wanted is None:
        wanted = wanted_skus(order)
    return f"|{'|'.join(wanted)}|" if wanted else ""


def insert_order(conn: Connection, order: Order, wanted: Sequence[str] | None = None) -> None:
    """Insert a new order; `wanted` is `wanted_skus(order)` when the caller has it (a saga
    result carries it), else it is computed here."""
    values = {
        "order_id": order.order_id,
        "partner_id": order.partner_id,
        "external_order_id": order.external_order_id,
        "created_at": order.created_at.timestamp(),
        "version": 1,
        **_columns(order, wanted),
    }
    if sql.NEW_ORDER.run(conn, values).rowcount == 0:
        # A concurrent CreateOrder with the same external id won; the retry replays it.
        raise Conflict(f"order {order.external_order_id!r} was created concurrently")


def save_order(
    conn: Connection, loaded: Loaded, order: Order, wanted: Sequence[str] | None = None
) -> None:
    """Compare-and-set the order on the version it was loaded at; `wanted` as in insert_order."""
    done = sql.SAVE_ORDER.run(
        conn,
        {
            "match_order_id": order.order_id,
            "match_version": loaded.version,
            "version": loaded.version + 1,
            **_columns(order, wanted),
        },
    )
    if done.rowcount != 1:
        raise Conflict(f"order {order.order_id} changed concurrently")


def _loaded(row: Any) -> Loaded:
    # The timeline stays plain until read: a saga step only appends to it.
    order = codec.loads(Order, row.document, lazy=("timeline",))
    return Loaded(order, int(row.version), int(row.seq))


def get_order(conn: Connection, order_id: str) -> Loaded | None:
    row = sql.ORDER.run(conn, {"order_id": order_id}).first()
    return _loaded(row) if row else None


def find_by_external(conn: Connection, partner_id: str, external_order_id: str) -> Loaded | None:
    row = sql.ORDER_BY_EXTERNAL_ID.run(
        conn,
        {"partner_id": partner_id, "external_order_id": external_order_id},
    ).first()
    return _loaded(row) if row else None


def list_orders(
    conn: Connection,
    partner_id: str | None,
    status: OrderStatus | None,
    page_token: str,
    size: int,
    external_order_id: str = "",
) -> tuple[list[Loaded], str]:
    """One page of orders in creation order past `page_token`, and the next page's token."""
    query = select(t.orders)
    if partner_id:
        query = query.where(t.orders.c.partner_id == partner_id)
    if external_order_id:
        query = query.where(t.orders.c.external_order_id == external_order_id)
    if status is not None:
        query = query.where(t.orders.c.status == status.value)
    rows = [_loaded(row) for row in conn.execute(keyset(query, t.orders.c.seq, page_token, size))]
    return next_page(rows, size, key=lambda loaded: loaded.seq)


def orders_wanting(conn: Connection, sku: str) -> list[Loaded]:
    """Open orders that arriving stock of `sku` could help, oldest first (backorder fill)."""
    query = (
        select(t.orders)
        .where(t.orders.c.wanted_skus.contains(f"|{sku}|", autoescape=True))
        .order_by(t.orders.c.seq)
    )
    return [_loaded(row) for row in conn.execute(query)]


def overdue_order_ids(conn: Connection, now: datetime, limit: int = 100) -> list[str]:
    """Orders whose step deadline passed and that are not already in EXCEPTION."""
    rows = sql.OVERDUE_ORDER_IDS.run(conn, {"now": now.timestamp(), "limit": limit})
    return [row.order_id for row in rows]


def enqueue(conn: Connection, commands: tuple[messages.SagaCommand, ...], now: datetime) -> None:
    """Queue `commands`, due now, for the command worker."""
    if not commands:
        return
    due = now.timestamp()
    sql.NEW_COMMANDS.run_many(conn, [_command_row(command, now, due) for command in commands])


def enqueue_leased(
    conn: Connection,
    commands: tuple[messages.SagaCommand, ...],
    now: datetime,
    lease_until: float,
) -> list[QueuedCommand]:
    """Queue `commands` already leased until `lease_until` to the caller, who sends them at once;
    returns them with their queue ids. If the caller never settles them (a crash), the lease
    runs out and the command worker takes them like any due command."""
    queued = []
    for command in commands:
        row = _command_row(command, now, lease_until)
        command_id = sql.NEW_LEASED_COMMAND.run(conn, row).scalar_one()
        queued.append(QueuedCommand(int(command_id), command.order_id, command, 0))
    return queued


def _command_row(
    command: messages.SagaCommand, now: datetime, next_attempt_at: float
) -> dict[str, Any]:
    return {
        "order_id": command.order_id,
        "kind": type(command).__name__,
        "payload": codec.dumps(command),
        "attempts": 0,
        "next_attempt_at": next_attempt_at,
        "created_at": now.timestamp(),
        "done_at": None,
        "last_error": "",
    }


def claim_commands(
    conn: Connection, now: datetime, limit: int, lease_seconds: float
) -> list[QueuedCommand]:
    """Take up to `limit` due commands, leasing them for `lease_seconds`.

    The lease (next_attempt_at pushed into the future, in this same transaction) keeps other
    replicas' workers off them; if this process dies mid-command the lease simply runs out and
    another worker repeats the call, which is safe because every command is idempotent.
    """
    table = t.saga_commands
    rows = lease_due(
        conn,
        select(table)
        .where(and_(table.c.done_at.is_(None), table.c.next_attempt_at <= now.timestamp()))
        .order_by(table.c.id)
        .limit(limit),
        table=table,
        key=table.c.id,
        lease_column=table.c.next_attempt_at,
        lease_until=now.timestamp() + lease_seconds,
    )
    return [
        QueuedCommand(
            int(row.id),
            row.order_id,
            codec.loads(_COMMANDS[row.kind], row.payload),
            int(row.attempts),
        )
        for row in rows
    ]


def finish_command(conn: Connection, command_id: int, now: datetime) -> None:
    sql.FINISH_COMMAND.run(conn, {"match_id": command_id, "done_at": now.timestamp()})


def reschedule_command(
    conn: Connection, command_id: int, attempts: int, next_attempt_at: float, error: str
) -> None:
    sql.RESCHEDULE_COMMAND.run(
        conn,
        {
            "match_id": command_id,
            "attempts": attempts,
            "next_attempt_at": next_attempt_at,
            "last_error": error[:2000],
        },
    )
