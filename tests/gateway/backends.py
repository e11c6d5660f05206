"""In-memory OrderService and InventoryService for the gateway tests.

TEST DOUBLES ONLY: these exist to exercise the gateway's generic transcoder over real gRPC until
the real order and inventory services can be run here. They implement the generated servicer
classes with the partner scoping the contracts describe (another partner's id → NOT_FOUND), and
record the metadata of each call so tests can see what the gateway sent.

`CancelOrder` with reason "abort:<CODE>" fails with that gRPC status (INVALID_ARGUMENT carries a
google.rpc.BadRequest), so each HTTP mapping can be tested through a real backend error.
"""

from __future__ import annotations

import asyncio
import itertools

import grpc
from crossdock.carrier.v1 import carrier_service_pb2 as carrier_pb
from crossdock.carrier.v1 import carrier_service_pb2_grpc as carrier_grpc
from crossdock.inventory.v1 import inventory_pb2
from crossdock.inventory.v1 import inventory_service_pb2 as inv
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as pb
from crossdock.order.v1 import order_service_pb2_grpc as pb_grpc
from google.rpc import error_details_pb2

from services.kit.grpc_errors import make_status, status_trailer

_counter = itertools.count(1)


def next_id(prefix: str) -> str:
    return f"{prefix}_{next(_counter):026d}"


class RecordingMixin:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []

    def record(self, name: str, context: grpc.aio.ServicerContext) -> None:
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        self.calls.append((name, metadata))


class InMemoryOrders(RecordingMixin, pb_grpc.OrderServiceServicer):
    def __init__(self) -> None:
        super().__init__()
        self.orders: dict[str, order_pb2.Order] = {}
        self.created = 0
        self.create_delay_seconds = 0.0

    def _owned(self, order_id: str, partner_id: str) -> order_pb2.Order | None:
        order = self.orders.get(order_id)
        if order is None or (partner_id and order.partner_id != partner_id):
            return None
        return order

    async def CreateOrder(self, request, context):
        self.record("CreateOrder", context)
        if self.create_delay_seconds:
            await asyncio.sleep(self.create_delay_seconds)
        for order in self.orders.values():
            same = order.partner_id == request.partner_id
            if same and order.external_order_id == request.order.external_order_id:
                return pb.CreateOrderResponse(order=order, replayed=True)
        self.created += 1
        order = order_pb2.Order(
            order_id=next_id("ord"),
            partner_id=request.partner_id,
            external_order_id=request.order.external_order_id,
            status=order_pb2.ORDER_STATUS_PLACED,
            currency_code=request.order.currency_code,
        )
        self.orders[order.order_id] = order
        return pb.CreateOrderResponse(order=order)

    async def GetOrder(self, request, context):
        self.record("GetOrder", context)
        order = self._owned(request.order_id, request.partner_id)
        if order is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"order {request.order_id} not found")
        return pb.GetOrderResponse(order=order)

    async def ListOrders(self, request, context):
        self.record("ListOrders", context)
        mine = [o for o in self.orders.values() if o.partner_id == request.partner_id]
        if request.status:
            mine = [o for o in mine if o.status == request.status]
        return pb.ListOrdersResponse(orders=mine[: request.page_size or 50])

    async def CancelOrder(self, request, context):
        self.record("CancelOrder", context)
        if request.reason.startswith("abort:"):
            code = grpc.StatusCode[request.reason.removeprefix("abort:")]
            details = []
            if code == grpc.StatusCode.INVALID_ARGUMENT:
                violation = error_details_pb2.BadRequest.FieldViolation(
                    field="reason", description="is not an allowed reason", reason="test.reason"
                )
                details.append(error_details_pb2.BadRequest(field_violations=[violation]))
            status = make_status(code, f"aborted with {code.name}", details)
            await context.abort(code, status.message, trailing_metadata=(status_trailer(status),))
        order = self._owned(request.order_id, request.partner_id)
        if order is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"order {request.order_id} not found")
        order.status = order_pb2.ORDER_STATUS_CANCELLED
        order.cancel_reason = request.reason
        return pb.CancelOrderResponse(order=order)

    async def GetOrderTimeline(self, request, context):
        self.record("GetOrderTimeline", context)
        order = self._owned(request.order_id, request.partner_id)
        if order is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "order not found")
        entry = order_pb2.TimelineEntry(to_status=order.status, detail="placed")
        return pb.GetOrderTimelineResponse(entries=[entry])

    async def CreateReturn(self, request, context):
        self.record("CreateReturn", context)
        order = self._owned(request.order_id, request.partner_id)
        if order is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "order not found")
        order_return = order_pb2.Return(
            return_id=next_id("rma"), order_id=order.order_id, partner_id=order.partner_id
        )
        return pb.CreateReturnResponse(order_return=order_return)


class InMemoryInventory(RecordingMixin, inv_grpc.InventoryServiceServicer):
    async def ListItems(self, request, context):
        self.record("ListItems", context)
        items = [inventory_pb2.Item(sku=f"SKU-{n}", active=True) for n in range(3)]
        return inv.ListItemsResponse(items=items[: request.page_size or 50])

    async def GetItem(self, request, context):
        self.record("GetItem", context)
        return inv.GetItemResponse(item=inventory_pb2.Item(sku=request.sku, active=True))

    async def GetAvailability(self, request, context):
        # Echoes the query mapping: one entry per SKU, quantity = number of locations asked for.
        self.record("GetAvailability", context)
        return inv.GetAvailabilityResponse(
            availability=[
                inv.SkuAvailability(sku=sku, quantity_available=len(request.location_ids))
                for sku in request.skus
            ]
        )


SANDBOX_SECRET = "sandbox-test-secret"


class RecordingCarrier(RecordingMixin, carrier_grpc.CarrierAdapterServiceServicer):
    """Keeps each webhook body it is given, byte for byte, with its signature headers.

    Pushes for "sandbox" are verified with the sandbox carrier's real verifier and SANDBOX_SECRET
    (UNAUTHENTICATED when they do not check out), as carrier-adapter's IngestWebhook does.
    """

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[tuple[str, str, bytes]] = []
        self.signature_headers: list[dict[str, str]] = []

    async def IngestWebhook(self, request, context):
        from datetime import UTC, datetime

        from services.carrier_adapter.adapters.carriers.sandbox import webhooks
        from services.carrier_adapter.domain.errors import WebhookSignatureInvalid

        self.record("IngestWebhook", context)
        headers = dict(request.signature_headers)
        if request.carrier == "sandbox":
            try:
                webhooks.verify(request.body.data, headers, [SANDBOX_SECRET], datetime.now(UTC))
            except WebhookSignatureInvalid as error:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(error))
        self.bodies.append((request.carrier, request.body.content_type, request.body.data))
        self.signature_headers.append(headers)
        return carrier_pb.IngestWebhookResponse(accepted_events=1)


async def start_backends() -> tuple[
    grpc.aio.Server, int, InMemoryOrders, InMemoryInventory, RecordingCarrier
]:
    """The test services on one grpc.aio server on a free port."""
    server = grpc.aio.server()
    orders, inventory, carrier = InMemoryOrders(), InMemoryInventory(), RecordingCarrier()
    pb_grpc.add_OrderServiceServicer_to_server(orders, server)
    inv_grpc.add_InventoryServiceServicer_to_server(inventory, server)
    carrier_grpc.add_CarrierAdapterServiceServicer_to_server(carrier, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port, orders, inventory, carrier
