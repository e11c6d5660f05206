"""Order use cases: capture, reads, and the operator's cancel, retry and decision on a shipment
returned to sender (reship, or cancel and credit).

Each sync function is one unit of work (`def cancel_whole(uow, saga, command, ctx)`). Capture
and cancel are async: capture reads the item master and availability from inventory first, and
cancel has shipment or inventory act first, outside any transaction (no database lock is held
across a network call); each then settles in one unit of work.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from services.kit.errors import Conflict, NotFound
from services.kit.ids import resource_id
from services.kit.paging import page_size
from services.kit.uow import UnitOfWork, UnitsOfWork
from services.order.adapters.clients import AvailabilitySnapshot, InventoryClient, ShipmentClient
from services.order.adapters.store import repository as repo
from services.order.app.transitions import commit
from services.order.domain import (
    Context,
    FulfillmentSaga,
    Order,
    OrderInput,
    OrderStatus,
    ReturnedShipmentResolution,
    StaticCatalog,
    cancellation,
    ensure_same_request,
)
from services.order.domain.cancellation import LineCancel

ORDER_ID_PREFIX = "ord"


@dataclass(frozen=True)
class PlaceOrder:
    """CreateOrder: a partner's order, idempotent on (partner, external order id)."""

    partner_id: str
    order: OrderInput


@dataclass(frozen=True)
class CancelOrder:
    order_id: str
    partner_id: str  # empty for internal callers; another partner's order is NOT_FOUND
    reason: str
    lines: tuple[LineCancel, ...] = ()  # a partial cancel; empty cancels the whole order


@dataclass(frozen=True)
class ResolveReturnedShipment:
    """ReshipReturnedShipment / CancelAndCreditReturnedShipment: an operator's decision for a
    shipment the carrier returned to sender."""

    order_id: str
    partner_id: str  # empty for internal callers; another partner's order is NOT_FOUND
    shipment_id: str
    resolution: ReturnedShipmentResolution
    reason: str = ""


@dataclass(frozen=True)
class ListOrders:
    partner_id: str
    status: OrderStatus | None
    page_size: int
    page_token: str
    external_order_id: str = ""


@dataclass(frozen=True)
class OrderPage:
    orders: list[Order]
    next_page_token: str


def order_not_found(order_id: str) -> NotFound:
    return NotFound(
        f"order {order_id!r} does not exist",
        resource_type="order",
        resource_name=order_id,
        reason="ORDER_NOT_FOUND",
    )


# -- capture ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Placed:
    """What CreateOrder came to: the order, whether it replays an earlier identical request,
    and the saga commands queued leased to a `CommandSender` (see `place_order`)."""

    order: Order
    replayed: bool
    commands: tuple[repo.QueuedCommand, ...] = ()


class CommandSender(Protocol):
    """Sends saga commands queued leased to it at once (entrypoints.workers.CommandWorker)."""

    @property
    def lease_seconds(self) -> float: ...

    def send_now(self, queued: Sequence[repo.QueuedCommand]) -> None: ...


async def place_order(
    units: UnitsOfWork,
    inventory: InventoryClient,
    saga: FulfillmentSaga,
    command: PlaceOrder,
    new_context: Callable[[], Context],
    *,
    sender: CommandSender | None = None,
) -> Placed:
    """Read the item master and availability from inventory, then place the order in one unit
    of work, which answers an earlier identical request with its order instead (a replay).

    A replay is looked for only in that unit of work, not in one more before the inventory
    call: that saves a transaction per new order, and costs a replay an availability read.
    When inventory cannot answer, a replay still gets its order, as it did before.

    With a `sender`, the order's first saga commands (its reservations) are queued leased to it
    and handed to it once committed, to be sent at once rather than in a round of the command
    worker; without one they are due for the worker.
    """
    skus = tuple(dict.fromkeys(line.sku for line in command.order.lines))
    try:
        catalog, availability = await inventory.capture_reads(skus)
    except Exception:
        existing = await units.run(replayed_order, command)
        if existing is not None:
            return Placed(existing, replayed=True)
        raise
    ctx = new_context()
    if sender is None:
        return await units.run(create_order, saga, command, catalog, availability, ctx)

    async def create_and_hand_over() -> Placed:
        placed = await units.run(
            create_order, saga, command, catalog, availability, ctx, sender.lease_seconds
        )
        if placed.commands:
            sender.send_now(placed.commands)
        return placed

    # Shielded: a call cancelled while its transaction commits still hands the commands over,
    # instead of leaving them to wait out their lease.
    return await asyncio.shield(create_and_hand_over())


def replayed_order(uow: UnitOfWork, command: PlaceOrder) -> Order | None:
    """The order an earlier identical request created; OrderReplayMismatch if it differs."""
    existing = repo.find_by_external(uow.conn, command.partner_id, command.order.external_order_id)
    if existing is None:
        return None
    ensure_same_request(existing.order, command.partner_id, command.order)
    return existing.order


def create_order(
    uow: UnitOfWork,
    saga: FulfillmentSaga,
    command: PlaceOrder,
    catalog: StaticCatalog,
    availability: AvailabilitySnapshot,
    ctx: Context,
    lease_seconds: float | None = None,
) -> Placed:
    # Checked inside the transaction: an earlier or a concurrent duplicate may have committed.
    existing = replayed_order(uow, command)
    if existing is not None:
        return Placed(existing, replayed=True)
    result = saga.place(
        order_id=resource_id(ORDER_ID_PREFIX),
        partner_id=command.partner_id,
        order_input=command.order,
        catalog=catalog,
        ctx=ctx,
        availability=availability,
    )
    lease_until = None if lease_seconds is None else ctx.now.timestamp() + lease_seconds
    queued = commit(uow, None, result, ctx.now, lease_until=lease_until)
    return Placed(result.order, replayed=False, commands=tuple(queued))


# -- reads -----------------------------------------------------------------------------------------


def get_order(uow: UnitOfWork, order_id: str, partner_id: str = "") -> Order:
    loaded = repo.get_order(uow.conn, order_id)
    # Another partner's order answers like a missing one: ids must not leak across partners.
    if loaded is None or (partner_id and loaded.order.partner_id != partner_id):
        raise order_not_found(order_id)
    return loaded.order


def list_orders(uow: UnitOfWork, query: ListOrders) -> OrderPage:
    """A page of orders in creation order (keyset paging on the order sequence)."""
    size = page_size(query.page_size)
    loaded, token = repo.list_orders(
        uow.conn, query.partner_id, query.status, query.page_token, size, query.external_order_id
    )
    return OrderPage([x.order for x in loaded], token)


# -- operator actions ------------------------------------------------------------------------------


async def cancel_order(
    units: UnitsOfWork,
    inventory: InventoryClient,
    shipments: ShipmentClient,
    saga: FulfillmentSaga,
    command: CancelOrder,
    new_context: Callable[[], Context],
) -> Order:
    """Cancel an order, whole or in part (domain/cancellation.py).

    The other services act first, outside any transaction, and their answers are authoritative:
    shipment refuses once the carrier has a parcel; inventory refuses a partial release once the
    warehouse picked. Both calls are idempotent, so a retry after a lost commit is safe.
    """
    order = await units.run(get_order, command.order_id, command.partner_id)
    if command.lines:
        plan = cancellation.plan_partial_cancel(order, command.lines)
        for release in plan.releases:
            key = _release_key(order, plan, release.reservation_id)
            await inventory.release_part(release.reservation_id, release.lines, command.reason, key)
        return await units.run(cancel_lines, saga, command, plan, new_context())
    if order.status is not OrderStatus.CANCELLED:
        cancellation.ensure_cancellable(order)
        if cancellation.needs_shipment_cancel(order):
            await shipments.cancel_order_shipments(order.order_id, order.partner_id, command.reason)
    return await units.run(cancel_whole, saga, command, new_context())


def cancel_whole(
    uow: UnitOfWork, saga: FulfillmentSaga, command: CancelOrder, ctx: Context
) -> Order:
    loaded = _load_owned(uow, command.order_id, command.partner_id)
    result = saga.cancel(loaded.order, command.reason, ctx)
    commit(uow, loaded, result, ctx.now)
    return result.order


def cancel_lines(
    uow: UnitOfWork,
    saga: FulfillmentSaga,
    command: CancelOrder,
    plan: cancellation.PartialCancelPlan,
    ctx: Context,
) -> Order:
    loaded = _load_owned(uow, command.order_id, command.partner_id)
    # Planned again on the order as it is now: a change since (a pick) must not be overwritten.
    if cancellation.plan_partial_cancel(loaded.order, command.lines) != plan:
        raise Conflict(f"order {command.order_id} changed while its lines were cancelled")
    result = saga.cancel_lines(loaded.order, plan, command.reason, ctx)
    commit(uow, loaded, result, ctx.now)
    return result.order


def _release_key(order: Order, plan: cancellation.PartialCancelPlan, reservation_id: str) -> str:
    """The same partial cancel of the same order state releases once, however often retried."""
    state = ",".join(f"{line.line_number}:{line.quantity_cancelled}" for line in order.lines)
    asked = ",".join(f"{c.line_number}:{c.quantity}" for c in plan.lines)
    digest = hashlib.sha256(f"{order.order_id}|{state}|{asked}".encode()).hexdigest()[:32]
    return f"cancel:{reservation_id}:{digest}"


def retry_order_step(uow: UnitOfWork, saga: FulfillmentSaga, order_id: str, ctx: Context) -> Order:
    loaded = _load_owned(uow, order_id, "")
    result = saga.retry(loaded.order, ctx)
    commit(uow, loaded, result, ctx.now)
    return result.order


def resolve_returned_shipment(
    uow: UnitOfWork, saga: FulfillmentSaga, command: ResolveReturnedShipment, ctx: Context
) -> Order:
    """Reship, or cancel and credit, a shipment returned to sender (domain/returned_to_sender.py).

    One unit of work and no call out: the re-plan is queued as saga commands, and the credit, if
    the shipment was invoiced, is an event to billing written with the order.
    """
    loaded = _load_owned(uow, command.order_id, command.partner_id)
    result = saga.resolve_returned_shipment(
        loaded.order, command.shipment_id, command.resolution, command.reason, ctx
    )
    commit(uow, loaded, result, ctx.now)
    return result.order


def _load_owned(uow: UnitOfWork, order_id: str, partner_id: str) -> repo.Loaded:
    loaded = repo.get_order(uow.conn, order_id)
    if loaded is None or (partner_id and loaded.order.partner_id != partner_id):
        raise order_not_found(order_id)
    return loaded
