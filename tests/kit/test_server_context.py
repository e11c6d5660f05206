"""Correlation id and deadline: echoed to the caller and carried on calls a handler makes."""

from __future__ import annotations

import grpc
import pytest
from crossdock.inventory.v1 import inventory_pb2
from crossdock.inventory.v1 import inventory_service_pb2 as inventory
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inventory_grpc
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as order
from crossdock.order.v1 import order_service_pb2_grpc as order_grpc

from services.kit.client import open_channel, outgoing_metadata
from services.kit.errors import NotFound
from services.kit.request_context import (
    CORRELATION_ID_KEY,
    accept_correlation_id,
    correlation_scope,
    current_correlation_id,
    remaining_time,
)
from tests.fixtures.ports import free_port
from tests.kit.server_support import ORDER_ID, order_service, serving

# The tests here serve gRPC on loopback ports.
pytestmark = pytest.mark.integration

INVENTORY_SERVICE = inventory.DESCRIPTOR.services_by_name["InventoryService"]
DEFAULT_TIMEOUT = 7.0
# grpc rounds the timeout it sends up (grpc-timeout header units) and clocks differ slightly, so
# a callee may see a hair more than the caller had. Far below the gap between 3 s and 7 s.
CLOCK_SLACK = 0.5


class RecordingInventory(inventory_grpc.InventoryServiceServicer):
    """The downstream service: records what each incoming call carried."""

    def __init__(self) -> None:
        self.seen: list[tuple[str | None, float | None]] = []

    async def GetItem(
        self, request: inventory.GetItemRequest, context: grpc.aio.ServicerContext
    ) -> inventory.GetItemResponse:
        received = dict(context.invocation_metadata() or ())
        self.seen.append((received.get(CORRELATION_ID_KEY), context.time_remaining()))
        return inventory.GetItemResponse(item=inventory_pb2.Item(sku=request.sku))


class CallingOrders(order_grpc.OrderServiceServicer):
    """The upstream service: GetOrder calls inventory through a kit channel."""

    def __init__(self, inventory_target: str) -> None:
        self.inventory_target = inventory_target
        self.handler_saw: list[tuple[str | None, float | None]] = []

    async def GetOrder(
        self, request: order.GetOrderRequest, context: grpc.aio.ServicerContext
    ) -> order.GetOrderResponse:
        self.handler_saw.append((current_correlation_id(), remaining_time()))
        async with open_channel(
            self.inventory_target, default_timeout_seconds=DEFAULT_TIMEOUT
        ) as channel:
            await inventory_grpc.InventoryServiceStub(channel).GetItem(
                inventory.GetItemRequest(sku="SKU-1")
            )
        return order.GetOrderResponse(order=order_pb2.Order(order_id=request.order_id))


async def _call_through(
    metadata: tuple[tuple[str, str], ...], timeout: float | None
) -> tuple[grpc.aio.Metadata, CallingOrders, RecordingInventory]:
    downstream = RecordingInventory()
    async with serving(
        (inventory_grpc.add_InventoryServiceServicer_to_server, downstream, INVENTORY_SERVICE)
    ) as inventory_server:
        upstream = CallingOrders(f"127.0.0.1:{inventory_server.port}")
        async with (
            serving(order_service(upstream)) as order_server,
            grpc.aio.insecure_channel(f"127.0.0.1:{order_server.port}") as channel,
        ):
            call = order_grpc.OrderServiceStub(channel).GetOrder(
                order.GetOrderRequest(order_id=ORDER_ID), metadata=metadata, timeout=timeout
            )
            await call
            trailing = await call.trailing_metadata()
    return trailing, upstream, downstream


async def test_given_correlation_id_is_echoed_and_propagated() -> None:
    trailing, upstream, downstream = await _call_through(
        ((CORRELATION_ID_KEY, "cid-from-gateway-42"),), timeout=None
    )

    assert dict(trailing)[CORRELATION_ID_KEY] == "cid-from-gateway-42"
    assert upstream.handler_saw[0][0] == "cid-from-gateway-42"
    assert downstream.seen[0][0] == "cid-from-gateway-42"


async def test_missing_correlation_id_is_created_echoed_and_propagated() -> None:
    trailing, upstream, downstream = await _call_through((), timeout=None)

    created = dict(trailing)[CORRELATION_ID_KEY]
    assert len(created) == 32 and int(created, 16) >= 0
    assert upstream.handler_saw[0][0] == created
    assert downstream.seen[0][0] == created


@pytest.mark.parametrize("bad", ["has space", "x" * 129])
async def test_unusable_correlation_id_is_replaced(bad: str) -> None:
    trailing, _, downstream = await _call_through(((CORRELATION_ID_KEY, bad),), timeout=None)

    created = dict(trailing)[CORRELATION_ID_KEY]
    assert created != bad
    assert downstream.seen[0][0] == created


async def test_incoming_deadline_bounds_the_outgoing_call() -> None:
    _, upstream, downstream = await _call_through((), timeout=3.0)

    handler_remaining = upstream.handler_saw[0][1]
    downstream_remaining = downstream.seen[0][1]
    assert handler_remaining is not None and 0 < handler_remaining <= 3.0 + CLOCK_SLACK
    # The callee gets what is left of the caller's 3 s, not the 7 s default.
    assert downstream_remaining is not None and 0 < downstream_remaining <= 3.0 + CLOCK_SLACK


async def test_outgoing_call_without_any_deadline_gets_the_default() -> None:
    _, upstream, downstream = await _call_through((), timeout=None)

    assert upstream.handler_saw[0][1] is None
    downstream_remaining = downstream.seen[0][1]
    assert downstream_remaining is not None
    assert 0 < downstream_remaining <= DEFAULT_TIMEOUT + CLOCK_SLACK


def test_outgoing_metadata_adds_the_current_correlation_id_once() -> None:
    assert outgoing_metadata((("k", "v"),)) == (("k", "v"),)
    with correlation_scope("cid-7"):
        assert outgoing_metadata((("k", "v"),)) == (("k", "v"), (CORRELATION_ID_KEY, "cid-7"))
        mine = ((CORRELATION_ID_KEY, "explicit"),)
        assert outgoing_metadata(mine) == mine
    assert current_correlation_id() is None


class FailingInventory(inventory_grpc.InventoryServiceServicer):
    async def GetItem(
        self, request: inventory.GetItemRequest, context: grpc.aio.ServicerContext
    ) -> inventory.GetItemResponse:
        raise NotFound("no item SKU-1 in warehouse db-7.internal")


async def test_unhandled_downstream_error_is_internal_and_hides_the_downstream_message() -> None:
    async with serving(
        (
            inventory_grpc.add_InventoryServiceServicer_to_server,
            FailingInventory(),
            INVENTORY_SERVICE,
        )
    ) as inventory_server:
        upstream = CallingOrders(f"127.0.0.1:{inventory_server.port}")
        async with (
            serving(order_service(upstream)) as order_server,
            grpc.aio.insecure_channel(f"127.0.0.1:{order_server.port}") as channel,
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await order_grpc.OrderServiceStub(channel).GetOrder(
                    order.GetOrderRequest(order_id=ORDER_ID)
                )

    # The handler did not handle inventory's NOT_FOUND: that is our bug, not the caller's.
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "db-7" not in (caught.value.details() or "")


async def test_unreachable_downstream_is_unavailable_for_the_caller() -> None:
    upstream = CallingOrders(f"127.0.0.1:{free_port()}")  # nothing listens there
    async with (
        serving(order_service(upstream)) as order_server,
        grpc.aio.insecure_channel(f"127.0.0.1:{order_server.port}") as channel,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await order_grpc.OrderServiceStub(channel).GetOrder(
                order.GetOrderRequest(order_id=ORDER_ID)
            )

    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "127.0.0.1" not in (caught.value.details() or "")


@pytest.mark.parametrize(
    ("candidate", "kept"),
    [
        ("!" + "a" * 126 + "~", True),  # printable ASCII, exactly the longest kept
        ("a" * 129, False),
        ("", False),
        (None, False),
        ("trailing-newline\n", False),
        ("tab\there", False),
        ("caf\u00e9", False),
        ("del\x7f", False),
    ],
)
def test_which_incoming_correlation_ids_are_kept(candidate: str | None, kept: bool) -> None:
    accepted = accept_correlation_id(candidate)
    assert (accepted == candidate) is kept
    if not kept:
        assert len(accepted) == 32 and int(accepted, 16) >= 0
