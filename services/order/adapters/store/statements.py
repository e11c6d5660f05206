"""The order store's hot-path SQL statements, each built once (why: services/kit/statements.py).

Each runs on the kit's prepared path (`prepared`: the raw DBAPI cursor, in the unit of work's
transaction); the statements built per call (optional filters, keyset pages, LIKE, the kit's
`lease_due`) stay in the repository on `conn.execute`.

- SELECTs bind their filters by name.
- UPDATEs are the kit's `update_where` (SET from the parameters, WHERE on `match_*` binds).
- `NEW_ORDER` is a first-writer-wins insert (the kit's `insert_new`): a concurrent CreateOrder
  with the same external id leaves rowcount 0, which the repository reports as `Conflict`.
- `inline()` on the plain INSERTs: the generated key is never read, so PostgreSQL needs no
  RETURNING for it.
"""

from __future__ import annotations

from sqlalchemy import Integer, and_, bindparam, insert, select

from services.kit.statements import insert_new, prepared, update_where
from services.order.adapters.store import tables as t

ORDER = prepared(select(t.orders).where(t.orders.c.order_id == bindparam("order_id")))
ORDER_BY_EXTERNAL_ID = prepared(
    select(t.orders).where(
        and_(
            t.orders.c.partner_id == bindparam("partner_id"),
            t.orders.c.external_order_id == bindparam("external_order_id"),
        )
    )
)
NEW_ORDER = prepared(insert_new(t.orders))
# Compare-and-set on the version read (match_order_id, match_version).
SAVE_ORDER = prepared(update_where(t.orders, "order_id", "version"))
# Orders whose step deadline passed (`now`) and that are not already in EXCEPTION.
OVERDUE_ORDER_IDS = prepared(
    select(t.orders.c.order_id)
    .where(
        and_(
            t.orders.c.step_deadline <= bindparam("now"),
            t.orders.c.terminal.is_(False),
            t.orders.c.in_exception.is_(False),
        )
    )
    .order_by(t.orders.c.step_deadline)
    .limit(bindparam("limit", type_=Integer))
)

NEW_COMMANDS = prepared(insert(t.saga_commands).inline())
# One command queued leased to its sender; its id is read back to mark it done.
NEW_LEASED_COMMAND = prepared(insert(t.saga_commands).returning(t.saga_commands.c.id))
FINISH_COMMAND = prepared(update_where(t.saga_commands, "id"))
RESCHEDULE_COMMAND = prepared(update_where(t.saga_commands, "id"))

RETURN = prepared(select(t.returns).where(t.returns.c.return_id == bindparam("return_id")))
RETURN_BY_KEY = prepared(
    select(t.returns).where(
        and_(
            t.returns.c.order_id == bindparam("order_id"),
            t.returns.c.idempotency_key == bindparam("idempotency_key"),
        )
    )
)
RETURNS_OF_ORDER = prepared(
    select(t.returns).where(t.returns.c.order_id == bindparam("order_id")).order_by(t.returns.c.seq)
)
# A plain INSERT under the repository's savepoint: any IntegrityError means another CreateReturn
# won, so this is not an `insert_new`.
NEW_RETURN = prepared(insert(t.returns).inline())
# Compare-and-set on the version read (match_return_id, match_version).
SAVE_RETURN = prepared(update_where(t.returns, "return_id", "version"))
