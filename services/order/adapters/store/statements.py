"""The order store's hot-path SQL statements, each built once (why: services/kit/statements.py).

- SELECTs bind their filters by name.
- UPDATEs are the kit's `update_where` (SET from the parameters, WHERE on `match_*` binds).
- `NEW_ORDER` is a first-writer-wins insert (the kit's `insert_new`): a concurrent CreateOrder
  with the same external id leaves rowcount 0, which the repository reports as `Conflict`.
"""

from __future__ import annotations

from sqlalchemy import and_, bindparam, insert, select

from services.kit.statements import insert_new, update_where
from services.order.adapters.store import tables as t

ORDER = select(t.orders).where(t.orders.c.order_id == bindparam("order_id"))
ORDER_BY_EXTERNAL_ID = select(t.orders).where(
    and_(
        t.orders.c.partner_id == bindparam("partner_id"),
        t.orders.c.external_order_id == bindparam("external_order_id"),
    )
)
NEW_ORDER = insert_new(t.orders)
# Compare-and-set on the version read (match_order_id, match_version).
SAVE_ORDER = update_where(t.orders, "order_id", "version")

NEW_COMMANDS = insert(t.saga_commands)
FINISH_COMMAND = update_where(t.saga_commands, "id")
