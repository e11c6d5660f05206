"""OrderService over gRPC: request translation only (proto -> command, call the use case in
`app`, result -> proto). Errors are raised as kit/domain errors; the kit maps them to statuses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crossdock.order.v1 import order_service_pb2 as svc
from crossdock.order.v1 import order_service_pb2_grpc as svc_grpc

from services.kit.clock import Clock, utc_now
from services.kit.request_context import current_correlation_id, new_correlation_id
from services.kit.uow import UnitsOfWork
from services.order.adapters import contracts
from services.order.adapters.clients import InventoryClient, ShipmentClient
from services.order.app import orders, returns
from services.order.domain import (
    Context,
    FulfillmentSaga,
    Order,
    OrderStatus,
    ReturnedShipmentResolution,
)
from services.order.domain.cancellation import LineCancel
from services.order.domain.return_rules import ReturnPolicy, load_reason_codes
from services.order.domain.returns import ReturnStatus


class OrderApi(svc_grpc.OrderServiceServicer):
    """The servicer; `on_commands` wakes the command worker after a commit that queued work,
    and `send_at_once`, when given, sends CreateOrder's reservations right after its commit
    (queued leased to it) instead of leaving them to the worker's next round."""

    def __init__(
        self,
        units: UnitsOfWork,
        saga: FulfillmentSaga,
        inventory: InventoryClient,
        *,
        shipments: ShipmentClient,
        clock: Clock = utc_now,
        on_commands: Callable[[], None] = lambda: None,
        send_at_once: orders.CommandSender | None = None,
        returns: ReturnPolicy | None = None,
    ) -> None:
        self._units = units
        self._saga = saga
        self._inventory = inventory
        self._shipments = shipments
        self._clock = clock
        self._on_commands = on_commands
        self._send_at_once = send_at_once
        self._returns = returns or ReturnPolicy(load_reason_codes())

    def _context(self) -> Context:
        return Context(
            self._clock(), correlation_id=current_correlation_id() or new_correlation_id()
        )

    # -- capture ---------------------------------------------------------------------------

    async def CreateOrder(self, request: svc.CreateOrderRequest, context: Any) -> Any:
        command = orders.PlaceOrder(
            request.partner_id, contracts.order_input_to_domain(request.order)
        )
        placed = await orders.place_order(
            self._units,
            self._inventory,
            self._saga,
            command,
            self._context,
            sender=self._send_at_once,
        )
        if not placed.replayed and not placed.commands:
            self._on_commands()  # commands not handed to `send_at_once` are due for the worker
        return svc.CreateOrderResponse(
            order=contracts.order_to_proto(placed.order), replayed=placed.replayed
        )

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
            request.order_id,
            request.partner_id,
            request.reason or "cancelled by request",
            tuple(LineCancel(x.line_number, x.quantity) for x in request.lines),
        )
        order = await orders.cancel_order(
            self._units,
            self._inventory,
            self._shipments,
            self._saga,
            command,
            self._context,
        )
        self._on_commands()
        return svc.CancelOrderResponse(order=contracts.order_to_proto(order))

    async def RetryOrderStep(self, request: svc.RetryOrderStepRequest, context: Any) -> Any:
        order = await self._units.run(
            orders.retry_order_step, self._saga, request.order_id, self._context()
        )
        self._on_commands()
        return svc.RetryOrderStepResponse(order=contracts.order_to_proto(order))

    async def ReshipReturnedShipment(
        self, request: svc.ReshipReturnedShipmentRequest, context: Any
    ) -> Any:
        order = await self._resolve(request, ReturnedShipmentResolution.RESHIP)
        return svc.ReshipReturnedShipmentResponse(order=contracts.order_to_proto(order))

    async def CancelAndCreditReturnedShipment(
        self, request: svc.CancelAndCreditReturnedShipmentRequest, context: Any
    ) -> Any:
        order = await self._resolve(request, ReturnedShipmentResolution.CANCEL_AND_CREDIT)
        return svc.CancelAndCreditReturnedShipmentResponse(order=contracts.order_to_proto(order))

    async def _resolve(self, request: Any, resolution: ReturnedShipmentResolution) -> Order:
        command = orders.ResolveReturnedShipment(
            request.order_id, request.partner_id, request.shipment_id, resolution, request.reason
        )
        order = await self._units.run(
            orders.resolve_returned_shipment, self._saga, command, self._context()
        )
        self._on_commands()
        return order

    # -- returns (RMA) ----------------------------------------------------------------------

    async def CreateReturn(self, request: svc.CreateReturnRequest, context: Any) -> Any:
        command = returns.CreateReturn(
            request.order_id,
            request.partner_id,
            contracts.return_input_to_domain(request.order_return),
            request.idempotency_key,
        )
        order_return, _ = await self._units.run(
            returns.create_return, self._returns, command, self._context()
        )
        return svc.CreateReturnResponse(order_return=contracts.return_to_proto(order_return))

    async def GetReturn(self, request: svc.GetReturnRequest, context: Any) -> Any:
        order_return = await self._units.run(
            returns.get_return, request.return_id, request.partner_id
        )
        return svc.GetReturnResponse(order_return=contracts.return_to_proto(order_return))

    async def ListReturns(self, request: svc.ListReturnsRequest, context: Any) -> Any:
        query = returns.ListReturns(
            partner_id=request.partner_id,
            order_id=request.order_id,
            status=ReturnStatus(request.status) if request.status else None,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        page = await self._units.run(returns.list_returns, query)
        return svc.ListReturnsResponse(
            returns=[contracts.return_to_proto(x) for x in page.returns],
            next_page_token=page.next_page_token,
        )


def add_to_server(server: Any, api: OrderApi) -> None:
    """Register the servicer on a kit ServiceServer."""
    server.add_servicer(
        svc_grpc.add_OrderServiceServicer_to_server,
        api,
        svc.DESCRIPTOR.services_by_name["OrderService"],
    )
