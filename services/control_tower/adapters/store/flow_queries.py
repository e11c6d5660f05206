"""The business flows' reads: who is in a flow, a flow's summary, and a page of its items.

A flow's members are the items whose `enters` milestone row exists and none of whose leaving
milestones does (services.control_tower.domain.flows): one scan of the entering milestone's
index, each item probed by primary key. These run from the gauge worker every few seconds and
from ListFlows/ListFlowItems, never per event, so they use plain `conn.execute`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Connection,
    Float,
    Select,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal_column,
    select,
)

from services.control_tower.adapters.store import tables as t
from services.control_tower.domain.flows import (
    AGE_BUCKETS,
    Flow,
    FlowItem,
    FlowSummary,
    ItemKind,
    Milestone,
    leaving,
)
from services.control_tower.domain.references import ReferenceKind
from services.kit.paging import keyset, next_page

_m = t.flow_milestones


def _literal(milestone: Milestone) -> Any:
    # Our own constants, written into the SQL so each flow's statement is one fixed text.
    return literal_column(f"'{milestone.value}'")


def members(flow: Flow) -> Select[Any]:
    """(item_id, entered_at) of every item in `flow`, whatever the clock says (binds
    `allowance` for a flow with a due date)."""
    entering = _m.alias("entering")
    later = _m.alias("later")
    left = ~exists(
        select(literal_column("1")).where(
            later.c.item_id == entering.c.item_id,
            later.c.milestone.in_([_literal(m) for m in sorted(leaving(flow))]),
        )
    )
    if flow.due_by is None:
        return select(entering.c.item_id, entering.c.seen_at.label("entered_at")).where(
            entering.c.milestone == _literal(flow.enters), left
        )
    due = _m.alias("due")
    entered_at = func.coalesce(
        due.c.seen_at, entering.c.seen_at + bindparam("allowance", type_=Float)
    )
    return (
        select(entering.c.item_id, entered_at.label("entered_at"))
        .select_from(
            entering.outerjoin(
                due,
                and_(due.c.item_id == entering.c.item_id, due.c.milestone == _literal(flow.due_by)),
            )
        )
        .where(entering.c.milestone == _literal(flow.enters), left)
    )


def _now(flow: Flow) -> Select[Any]:
    """The flow's members that have entered by `now`."""
    inner = members(flow).subquery("members")
    return select(inner.c.item_id, inner.c.entered_at).where(
        inner.c.entered_at <= bindparam("now", type_=Float)
    )


def summary(
    conn: Connection, flow: Flow, sla_seconds: float, now: float, allowance: float
) -> FlowSummary:
    """How many items, the oldest's age, items per age bound and breaches, in one query."""
    current = _now(flow).subquery("current")
    entered = current.c.entered_at
    at_most = [
        func.coalesce(
            func.sum(case((entered >= bindparam(f"cut_{i}", type_=Float), 1), else_=0)), 0
        )
        for i in range(len(AGE_BUCKETS))
    ]
    breaching = func.coalesce(
        func.sum(case((entered < bindparam("breach_cut", type_=Float), 1), else_=0)), 0
    )
    query = select(func.count(), func.min(entered), breaching, *at_most).select_from(current)
    params: dict[str, float] = {"now": now, "allowance": allowance, "breach_cut": now - sla_seconds}
    params |= {f"cut_{i}": now - bound for i, bound in enumerate(AGE_BUCKETS)}
    row = conn.execute(query, params).one()
    count, oldest, breaches, *cumulative = row
    return FlowSummary(
        flow=flow,
        sla_seconds=sla_seconds,
        items=int(count),
        oldest_age_seconds=0.0 if oldest is None else max(0.0, now - float(oldest)),
        at_most=tuple(int(value) for value in cumulative),
        breaches=int(breaches),
    )


# The link whose value is a shipment's or a return's id names its order.
_ORDER_LINK = {
    ItemKind.SHIPMENT: ReferenceKind.SHIPMENT_ID,
    ItemKind.RETURN: ReferenceKind.RETURN_ID,
}


def items_page(
    conn: Connection,
    flow: Flow,
    *,
    sla_seconds: float,
    now: float,
    allowance: float,
    page_token: str,
    size: int,
) -> tuple[list[FlowItem], str]:
    """One page of the flow's items in item id order (ids are time-ordered), with their order."""
    current = _now(flow).subquery("current")
    kind = _ORDER_LINK.get(flow.item)
    if kind is None:
        query = select(current.c.item_id, current.c.entered_at, current.c.item_id.label("order_id"))
    else:
        link = and_(
            t.links.c.kind == kind.value,
            t.links.c.value == current.c.item_id,
            t.links.c.partner_id == "",
        )
        query = select(current.c.item_id, current.c.entered_at, t.links.c.order_id).select_from(
            current.outerjoin(t.links, link)
        )
    query = keyset(query, current.c.item_id, page_token, size, key_type=str)
    rows = conn.execute(query, {"now": now, "allowance": allowance}).all()
    page, token = next_page(rows, size, key=lambda row: str(row.item_id))
    return [
        FlowItem(
            item_id=row.item_id,
            order_id=row.order_id or "",
            entered_at=float(row.entered_at),
            age_seconds=max(0.0, now - float(row.entered_at)),
            breached=now - float(row.entered_at) > sla_seconds,
        )
        for row in page
    ], token
