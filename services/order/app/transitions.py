"""Saga transitions as units of work: load the order, run the saga, then write the order, its
events (outbox, through `uow.publish`) and its commands (queue) in the same transaction.

Used by the api, the consumers, the command worker and the deadline sweeper alike, so every
path persists a transition the same way.
"""

from __future__ import annotations

import logging
from datetime import datetime

from services.kit.uow import UnitOfWork
from services.order.adapters.store import repository as repo
from services.order.domain import (
    Context,
    FulfillmentSaga,
    SagaInput,
    SagaResult,
    StockAvailable,
    wants_stock,
)

log = logging.getLogger(__name__)


def commit(
    uow: UnitOfWork,
    loaded: repo.Loaded | None,
    result: SagaResult,
    now: datetime,
    *,
    lease_until: float | None = None,
) -> list[repo.QueuedCommand]:
    """Persist one saga result: the order (insert or compare-and-set), events, commands.

    The commands are due at once for the command worker; with `lease_until` they are queued
    leased to the caller instead, and returned, for it to send them right after the commit.
    """
    order = result.order
    if loaded is None:
        repo.insert_order(uow.conn, order, result.wanted_skus)
    elif result.changed:
        repo.save_order(uow.conn, loaded, order, result.wanted_skus)
    if result.events:  # most steps publish nothing: no need to look up their correlation id
        uow.publish_all(result.events, correlation_id=_last_correlation_id(result))
    if lease_until is not None:
        return repo.enqueue_leased(uow.conn, result.commands, now, lease_until)
    repo.enqueue(uow.conn, result.commands, now)
    return []


def _last_correlation_id(result: SagaResult) -> str:
    for entry in reversed(result.order.timeline):
        if entry.correlation_id:
            return entry.correlation_id
    return ""


def apply_input(
    uow: UnitOfWork, saga: FulfillmentSaga, order_id: str, saga_input: SagaInput, ctx: Context
) -> SagaResult | None:
    """Apply one input to a stored order; None when the order is not ours."""
    loaded = repo.get_order(uow.conn, order_id)
    if loaded is None:
        return None
    result = saga.apply(loaded.order, saga_input, ctx)
    commit(uow, loaded, result, ctx.now)
    return result


def observe(
    uow: UnitOfWork, saga: FulfillmentSaga, order_id: str, saga_input: SagaInput, ctx: Context
) -> None:
    """Apply another service's fact to the order it names; facts about orders this service does
    not know (e.g. stock reserved by a tool) are skipped."""
    if apply_input(uow, saga, order_id, saga_input, ctx) is None:
        log.debug("event for unknown order %s skipped", order_id)


def stock_arrived(
    uow: UnitOfWork, saga: FulfillmentSaga, sku: str, location_id: str, source_id: str, ctx: Context
) -> None:
    """Offer arriving stock to every open order that wants the SKU, oldest first (backorders)."""
    for loaded in repo.orders_wanting(uow.conn, sku):
        # Re-checked on the decoded order: the column is a prefilter, the domain decides.
        if wants_stock(loaded.order, sku):
            result = saga.apply(loaded.order, StockAvailable(sku, location_id, source_id), ctx)
            commit(uow, loaded, result, ctx.now)


def overdue_order_ids(uow: UnitOfWork, now: datetime) -> list[str]:
    """Orders past their step deadline and not already in EXCEPTION (the sweeper's work)."""
    return repo.overdue_order_ids(uow.conn, now)


def tick_overdue_order(
    uow: UnitOfWork, saga: FulfillmentSaga, order_id: str, now: datetime
) -> bool:
    """Move an order past its step deadline to EXCEPTION; True when it moved."""
    loaded = repo.get_order(uow.conn, order_id)
    if loaded is None:
        return False
    result = saga.on_tick(loaded.order, now)
    commit(uow, loaded, result, now)
    return result.changed
