"""Return (RMA) use cases, each one unit of work: authorize, read, and the goods and credit
notes coming back.

- `create_return` (CreateReturn): checks the rules (domain.return_rules) against the order and
  its other returns, stores the return, notes it on the order and publishes ReturnAuthorized.
  Saving the order with its version compare-and-set serializes concurrent returns of one order,
  so two racing requests can never both take the last returnable units (the loser re-runs).
- `receive_returned_goods` (inventory receipt with source RETURN): the first receipt marks the
  return RECEIVED, publishes ReturnReceived and updates the order lines' quantity_returned.
- `credit_return` (billing credit note posted): records the credit note; a received return is
  then CREDITED.

Consumer use cases skip facts about returns this service does not know (e.g. a restock of a
cancelled pick, which inventory also records as a return receipt, references an order).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from services.kit.errors import NotFound
from services.kit.ids import resource_id
from services.kit.paging import page_size
from services.kit.uow import UnitOfWork
from services.order.adapters.store import repository as repo
from services.order.adapters.store import returns as store
from services.order.app.orders import order_not_found
from services.order.domain import Context
from services.order.domain.return_rules import (
    ReturnPolicy,
    ReturnRequest,
    authorize,
    ensure_same_request,
)
from services.order.domain.returns import (
    Return,
    ReturnReceipt,
    ReturnStatus,
    credit,
    note_on_order,
    receive,
    record_returned_units,
    returned_units,
)

log = logging.getLogger(__name__)

RETURN_ID_PREFIX = "rma"


@dataclass(frozen=True)
class CreateReturn:
    """CreateReturn: a partner's return request, idempotent on (order, idempotency key)."""

    order_id: str
    partner_id: str  # empty for internal callers; another partner's order is NOT_FOUND
    request: ReturnRequest
    idempotency_key: str = ""


@dataclass(frozen=True)
class ListReturns:
    partner_id: str
    order_id: str
    status: ReturnStatus | None
    page_size: int
    page_token: str


@dataclass(frozen=True)
class ReturnPage:
    returns: list[Return]
    next_page_token: str


@dataclass(frozen=True)
class CreditNotePosted:
    """Billing posted a credit note; `return_id` is empty for credits not caused by a return."""

    credit_note_id: str
    order_id: str
    return_id: str


def return_not_found(return_id: str) -> NotFound:
    return NotFound(
        f"return {return_id!r} does not exist",
        resource_type="return",
        resource_name=return_id,
        reason="RETURN_NOT_FOUND",
    )


# -- authorize -----------------------------------------------------------------------------------


def create_return(
    uow: UnitOfWork, policy: ReturnPolicy, command: CreateReturn, ctx: Context
) -> tuple[Return, bool]:
    """The authorized return and whether it replays an earlier request with the same key."""
    conn = uow.conn
    loaded = repo.get_order(conn, command.order_id)
    # Ownership before anything else: another partner's order answers like a missing one.
    if loaded is None or (command.partner_id and loaded.order.partner_id != command.partner_id):
        raise order_not_found(command.order_id)
    if command.idempotency_key:
        earlier = store.find_by_key(conn, command.order_id, command.idempotency_key)
        if earlier is not None:
            ensure_same_request(earlier.order_return, command.request)
            return earlier.order_return, True
    order = loaded.order
    authorized, event = authorize(
        order,
        store.returns_of_order(conn, order.order_id),
        command.request,
        policy,
        return_id=resource_id(RETURN_ID_PREFIX),
        now=ctx.now,
        idempotency_key=command.idempotency_key,
    )
    store.insert_return(conn, authorized)
    units = sum(line.quantity_authorized for line in authorized.lines)
    note_on_order(
        order,
        ctx.now,
        f"return {authorized.return_id} authorized: {units} units to "
        f"{authorized.return_location_id or 'a warehouse to be chosen'}",
        event_type=type(event).__name__,
        correlation_id=ctx.correlation_id,
    )
    repo.save_order(conn, loaded, order)
    uow.publish(event, correlation_id=ctx.correlation_id)
    return authorized, False


# -- reads ---------------------------------------------------------------------------------------


def get_return(uow: UnitOfWork, return_id: str, partner_id: str = "") -> Return:
    loaded = store.get_return(uow.conn, return_id)
    # Another partner's return answers like a missing one: ids must not leak across partners.
    if loaded is None or (partner_id and loaded.order_return.partner_id != partner_id):
        raise return_not_found(return_id)
    return loaded.order_return


def list_returns(uow: UnitOfWork, query: ListReturns) -> ReturnPage:
    """A page of returns, newest first (keyset paging on the return sequence)."""
    returns, token = store.list_returns(
        uow.conn,
        query.partner_id,
        query.order_id,
        query.status,
        query.page_token,
        page_size(query.page_size),
    )
    return ReturnPage(returns, token)


# -- goods and money coming back -----------------------------------------------------------------


def receive_returned_goods(uow: UnitOfWork, receipt: ReturnReceipt, ctx: Context) -> None:
    """Record an inventory receipt against its return (see `domain.returns.receive`)."""
    conn = uow.conn
    loaded = store.get_return(conn, receipt.return_id)
    if loaded is None:
        log.debug("receipt %s for unknown return %s skipped", receipt.receipt_id, receipt.return_id)
        return
    change = receive(loaded.order_return, receipt, ctx.now)
    if not change.changed:
        return
    received = change.order_return
    store.save_return(conn, loaded, received)
    uow.publish_all(change.events, correlation_id=ctx.correlation_id)
    if not change.events:
        log.warning(
            "return %s already received (receipt %s); receipt %s recorded, not credited again",
            received.return_id,
            received.receipt_id,
            receipt.receipt_id,
        )
        return
    units = sum(line.quantity_received for line in received.lines)
    _update_order(
        uow,
        received,
        ctx,
        f"return {received.return_id} received: {units} units (receipt {receipt.receipt_id})",
    )


def credit_return(uow: UnitOfWork, posted: CreditNotePosted, ctx: Context) -> None:
    """Record billing's credit note on the return it credits."""
    if not posted.return_id:
        return  # a credit for something else than a return
    conn = uow.conn
    loaded = store.get_return(conn, posted.return_id)
    if loaded is None or loaded.order_return.order_id != posted.order_id:
        log.debug(
            "credit note %s for unknown return %s skipped", posted.credit_note_id, posted.return_id
        )
        return
    change = credit(loaded.order_return, posted.credit_note_id, ctx.now)
    if not change.changed:
        return
    credited = change.order_return
    store.save_return(conn, loaded, credited)
    _update_order(
        uow,
        credited,
        ctx,
        f"return {credited.return_id} credited: credit note {posted.credit_note_id}",
    )


def _update_order(uow: UnitOfWork, order_return: Return, ctx: Context, detail: str) -> None:
    """Bring the order's returned units up to date and note the return's milestone on it."""
    conn = uow.conn
    loaded = repo.get_order(conn, order_return.order_id)
    if loaded is None:
        return
    order = loaded.order
    returned = returned_units(store.returns_of_order(conn, order.order_id))
    record_returned_units(order, returned, ctx.now)
    note_on_order(
        order,
        ctx.now,
        detail,
        event_type=ctx.event_type,
        event_id=ctx.event_id,
        correlation_id=ctx.correlation_id,
    )
    repo.save_order(conn, loaded, order)
