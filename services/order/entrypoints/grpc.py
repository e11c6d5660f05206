"""OrderService over gRPC: request translation only (proto -> command, call the use case in
`app`, result -> proto). Errors are raised as kit/domain errors; the kit maps them to statuses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from crossdock.order.v1 import order_service_pb2 as svc
from crossdock.order.v1 import order_service_pb2_grpc as svc_grpc

from services.kit.clock import Clock, utc_now
from services.kit.errors import NotFound
from services.kit.paging import decode_token
from services.kit.request_context import current_correlation_id, new_correlation_id
from services.kit.uow import UnitsOfWork
from services.order.adapters import contracts
from services.order.adapters.clients import InventoryClient
from services.order.app import orders
from services.order.domain import Context, FulfillmentSaga, OrderStatus


class OrderApi(svc_grpc.OrderServiceServicer):
    """The servicer; `on_commands` wakes the command worker after a commit that queued work."""

    def __init__(
        self,
        units: UnitsOfWork,
        saga: FulfillmentSaga,
        inventory: InventoryClient,
        *,
        clock: Clock = utc_now,
        on_commands: Callable[[], None] = lambda: None,
    ) -> None:
        self._units = units
        self._saga = saga
        self._inventory = inventory
        self._clock = clock
        self._on_commands = on_commands

    def _context(self) -> Context:
        return Context(
            self._clock(), correlation_id=current_correlation_id() or new_correlation_id()
        )

    # -- capture ---------------------------------------------------------------------------

    async def CreateOrder(self, request: svc.CreateOrderRequest, context: Any) -> Any:
        command = orders.PlaceOrder(
            request.partner_id, contracts.order_input_to_domain(request.order)
        )
        order, replayed = await orders.place_order(
            self._units, self._inventory, self._saga, command, self._context
        )
        if not replayed:
            self._on_commands()
        return svc.CreateOrderResponse(order=contracts.order_to_proto(order), replayed=replayed)

    # -- reads -----------------------------------------------------------------------------

    async def GetOrder(self, request: svc.GetOrderRequest, context: Any) -> Any:
        order = await self._units.run(orders.get_order, request.order_id, request.partner_id)
        return svc.GetOrderResponse(order=contracts.order_to_proto(order))

    async def GetOrderTimeline(self, request: svc.GetOrderTimelineRequest, context: Any) -> Any:
        order = await self._units.run(orders.get_order, request.order_id, request.partner_id)
        return svc.GetOrderTimelineResponse(
            entries=[contracts.timeline_entry_to_proto(e) for e in order.timeline]
        )

    async def ListOrders(self, request: svc.ListOrdersRequest, context: Any) -> Any:
        query = orders.ListOrders(
            partner_id=request.partner_id,
            status=OrderStatus(request.status) if request.status else None,
            page_size=request.page_size,
            page_token=request.page_token,
            external_order_id=request.external_order_id,
        )
        page = await self._units.run(orders.list_orders, query)
        return svc.ListOrdersResponse(
            orders=[contracts.order_to_proto(x) for x in page.orders],
            next_page_token=page.next_page_token,
        )

    # -- operator actions ------------------------------------------------------------------

    async def CancelOrder(self, request: svc.CancelOrderRequest, context: Any) -> Any:
        command = orders.CancelOrder(
            request.order_id, request.partner_id, request.reason or "cancelled by request"
        )
        order = await self._units.run(orders.cancel_order, self._saga, command, self._context())
        self._on_commands()
        return svc.CancelOrderResponse(order=contracts.order_to_proto(order))

    async def RetryOrderStep(self, request: svc.RetryOrderStepRequest, context: Any) -> Any:
        order = await self._units.run(
            orders.retry_order_step, self._saga, request.order_id, self._context()
        )
        self._on_commands()
        return svc.RetryOrderStepResponse(order=contracts.order_to_proto(order))

    # -- returns (RMA) are a later issue ----------------------------------------------------

    async def CreateReturn(self, request: svc.CreateReturnRequest, context: Any) -> Any:
        # Ownership first, so another partner's order answers NOT_FOUND like everywhere else.
        await self._units.run(orders.get_order, request.order_id, request.partner_id)
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


def add_to_server(server: Any, api: OrderApi) -> None:
    """Register the servicer on a kit ServiceServer."""
    server.add_servicer(
        svc_grpc.add_OrderServiceServicer_to_server,
        api,
        svc.DESCRIPTOR.services_by_name["OrderService"],
    )
