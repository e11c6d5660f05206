"""OrderService over gRPC: thin translation between proto and the saga, one unit of work each.

CreateOrder reads the item master and availability from inventory first (synchronous gRPC,
outside any transaction, so no database lock is held across a network call), then validates,
places and persists in one unit of work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc
from crossdock.inventory.v1 import inventory_service_pb2 as inv_svc
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from crossdock.order.v1 import order_service_pb2 as svc
from crossdock.order.v1 import order_service_pb2_grpc as svc_grpc
from sqlalchemy import Connection

from services.kit.db import Database
from services.kit.errors import NotFound, Unavailable
from services.kit.paging import DEFAULT_PAGE_SIZE, decode_token, encode_token
from services.kit.request_context import current_correlation_id, new_correlation_id
from services.order import flow
from services.order.api import mapping
from services.order.domain import (
    CatalogItem,
    Context,
    FulfillmentSaga,
    OrderStatus,
    SagaResult,
    StaticCatalog,
    ensure_same_request,
)
from services.order.domain.model import Order, OrderInput
from services.order.store import repository as repo

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _not_found(order_id: str) -> NotFound:
    return NotFound(
        f"order {order_id!r} does not exist",
        resource_type="order",
        resource_name=order_id,
        reason="ORDER_NOT_FOUND",
    )


class OrderApi(svc_grpc.OrderServiceServicer):
    """The servicer; `on_commands` wakes the command worker after a commit that queued work."""

    def __init__(
        self,
        db: Database,
        saga: FulfillmentSaga,
        inventory: inv_grpc.InventoryServiceAsyncStub,
        *,
        ids: flow.OrderIds | None = None,
        clock: Clock = utc_now,
        on_commands: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._saga = saga
        self._inventory = inventory
        self._ids = ids or flow.OrderIds()
        self._clock = clock
        self._on_commands = on_commands

    def _context(self) -> Context:
        return Context(
            self._clock(), correlation_id=current_correlation_id() or new_correlation_id()
        )

    # -- capture ---------------------------------------------------------------------------

    async def CreateOrder(self, request: svc.CreateOrderRequest, context: Any) -> Any:
        partner_id = request.partner_id
        order_input = mapping.order_input_to_domain(request.order)
        existing = await self._db.run(
            repo.find_by_external, partner_id, order_input.external_order_id
        )
        if existing is not None:
            ensure_same_request(existing.order, partner_id, order_input)
            return svc.CreateOrderResponse(
                order=mapping.order_to_proto(existing.order), replayed=True
            )
        skus = tuple(dict.fromkeys(line.sku for line in order_input.lines))
        catalog, availability = await asyncio.gather(self._catalog(skus), self._availability(skus))
        ctx = self._context()
        order, replayed = await flow.run_retrying(
            self._db, self._create, partner_id, order_input, catalog, availability, ctx
        )
        if not replayed:
            self._on_commands()
        return svc.CreateOrderResponse(order=mapping.order_to_proto(order), replayed=replayed)

    def _create(
        self,
        conn: Connection,
        partner_id: str,
        order_input: OrderInput,
        catalog: StaticCatalog,
        availability: dict[str, dict[str, int]],
        ctx: Context,
    ) -> tuple[Order, bool]:
        # Checked again inside the transaction: a concurrent duplicate may have just committed.
        existing = repo.find_by_external(conn, partner_id, order_input.external_order_id)
        if existing is not None:
            ensure_same_request(existing.order, partner_id, order_input)
            return existing.order, True
        result = self._saga.place(
            order_id=self._ids.new_order_id(),
            partner_id=partner_id,
            order_input=order_input,
            catalog=catalog,
            ctx=ctx,
            availability=availability,
        )
        flow.commit(conn, None, result, ctx.now)
        return result.order, False

    async def _catalog(self, skus: tuple[str, ...]) -> StaticCatalog:
        """The item master entries of `skus` (unknown SKUs are simply absent)."""

        async def lookup(sku: str) -> CatalogItem | None:
            try:
                answer = await self._inventory.GetItem(inv_svc.GetItemRequest(sku=sku))
            except grpc.aio.AioRpcError as error:
                if error.code() is grpc.StatusCode.NOT_FOUND:
                    return None
                raise _inventory_unavailable(error) from error
            return CatalogItem(answer.item.sku, answer.item.active)

        found = await asyncio.gather(*(lookup(sku) for sku in skus))
        return StaticCatalog([item for item in found if item is not None])

    async def _availability(self, skus: tuple[str, ...]) -> dict[str, dict[str, int]]:
        """Units available per SKU per location right now (the capture-time check)."""
        try:
            answer = await self._inventory.GetAvailability(
                inv_svc.GetAvailabilityRequest(skus=list(skus))
            )
        except grpc.aio.AioRpcError as error:
            raise _inventory_unavailable(error) from error
        return {
            a.sku: {p.location_id: int(p.quantity_available) for p in a.positions}
            for a in answer.availability
        }

    # -- reads -----------------------------------------------------------------------------

    async def _load(self, order_id: str, partner_id: str = "") -> repo.Loaded:
        loaded = await self._db.run(repo.get_order, order_id)
        # Another partner's order answers like a missing one: ids must not leak across partners.
        if loaded is None or (partner_id and loaded.order.partner_id != partner_id):
            raise _not_found(order_id)
        return loaded

    async def GetOrder(self, request: svc.GetOrderRequest, context: Any) -> Any:
        loaded = await self._load(request.order_id, request.partner_id)
        return svc.GetOrderResponse(order=mapping.order_to_proto(loaded.order))

    async def GetOrderTimeline(self, request: svc.GetOrderTimelineRequest, context: Any) -> Any:
        loaded = await self._load(request.order_id, request.partner_id)
        return svc.GetOrderTimelineResponse(
            entries=[mapping.timeline_entry_to_proto(e) for e in loaded.order.timeline]
        )

    async def ListOrders(self, request: svc.ListOrdersRequest, context: Any) -> Any:
        size = request.page_size or DEFAULT_PAGE_SIZE
        after = decode_token(request.page_token) or 0  # a foreign token is 400, not 500
        status = OrderStatus(request.status) if request.status else None
        rows = await self._db.run(repo.list_orders, request.partner_id, status, after, size + 1)
        served = rows[:size]
        token = ""
        if len(rows) > size:
            token = encode_token(served[-1].seq)
        return svc.ListOrdersResponse(
            orders=[mapping.order_to_proto(x.order) for x in served], next_page_token=token
        )

    # -- operator actions ------------------------------------------------------------------

    async def CancelOrder(self, request: svc.CancelOrderRequest, context: Any) -> Any:
        reason = request.reason or "cancelled by request"
        order = await self._transition(
            request.order_id,
            request.partner_id,
            lambda order, ctx: self._saga.cancel(order, reason, ctx),
        )
        return svc.CancelOrderResponse(order=mapping.order_to_proto(order))

    async def RetryOrderStep(self, request: svc.RetryOrderStepRequest, context: Any) -> Any:
        order = await self._transition(request.order_id, "", self._saga.retry)
        return svc.RetryOrderStepResponse(order=mapping.order_to_proto(order))

    async def _transition(
        self, order_id: str, partner_id: str, step: Callable[[Order, Context], SagaResult]
    ) -> Order:
        ctx = self._context()

        def work(conn: Connection) -> Order:
            loaded = repo.get_order(conn, order_id)
            if loaded is None or (partner_id and loaded.order.partner_id != partner_id):
                raise _not_found(order_id)
            result = step(loaded.order, ctx)
            flow.commit(conn, loaded, result, ctx.now)
            return result.order

        order = await flow.run_retrying(self._db, work)
        self._on_commands()
        return order

    # -- returns (RMA) are a later issue ----------------------------------------------------

    async def CreateReturn(self, request: svc.CreateReturnRequest, context: Any) -> Any:
        # Ownership first, so another partner's order answers NOT_FOUND like everywhere else.
        await self._load(request.order_id, request.partner_id)
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "returns are not implemented yet")

    async def GetReturn(self, request: svc.GetReturnRequest, context: Any) -> Any:
        # No return can exist before returns are implemented: any id is one that is not there.
        raise NotFound(
            f"return {request.return_id!r} does not exist",
            resource_type="return",
            resource_name=request.return_id,
        )

    async def ListReturns(self, request: Any, context: Any) -> Any:
        # Like GetReturn: no return can exist yet, so every page is empty (not a 500 error).
        decode_token(request.page_token)
        return svc.ListReturnsResponse()


def _inventory_unavailable(error: grpc.aio.AioRpcError) -> Unavailable:
    return Unavailable(
        f"inventory could not answer ({error.code().name}); retry the request",
        reason="INVENTORY_UNAVAILABLE",
    )


def add_to_server(server: Any, api: OrderApi) -> None:
    """Register the servicer on a kit ServiceServer."""
    server.add_servicer(
        svc_grpc.add_OrderServiceServicer_to_server,
        api,
        svc.DESCRIPTOR.services_by_name["OrderService"],
    )
