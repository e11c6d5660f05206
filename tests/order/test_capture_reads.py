"""What order capture (CreateOrder) asks inventory, counted at the real inventory server.

Against an inventory that includes item facts in its availability answer, capture is one
GetAvailability call. Against one that predates them (a rolling deploy: the stand-in below
forwards to the real service but drops `include_items`, so the answer is exactly an older
server's), capture falls back to one GetItem per SKU. Either way an unknown or inactive SKU is
the same INVALID_ARGUMENT naming the line and the SKU, and an inventory that cannot answer is
UNAVAILABLE. SQLite files, then PostgreSQL; real NATS.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from crossdock.inventory.v1 import inventory_service_pb2 as inv_svc
from crossdock.order.v1 import order_service_pb2 as svc
from crossdock.order.v1 import order_service_pb2_grpc as svc_grpc
from google.rpc import error_details_pb2
from nats.aio.client import Client as NATS

from services.kit.grpc_errors import details_of, status_from_error
from tests.fixtures.catalog import EAST, WEST, item_input, seed
from tests.fixtures.nats import NatsServer
from tests.fixtures.ports import free_port
from tests.fixtures.running import Inventory, running_inventory, running_order
from tests.fixtures.waiting import wait_for
from tests.order.service_support import PARTNER, order_request

INVENTORY_SERVICE = inv_svc.DESCRIPTOR.services_by_name["InventoryService"]
CAPTURE_RPCS = ("GetAvailability", "GetItem")


@dataclass
class Capture:
    orders: svc_grpc.OrderServiceStub
    inventory: Inventory
    older: bool  # order talks to inventory through the older-server stand-in

    def capture_calls(self) -> dict[str, int]:
        """The capture-time calls the real inventory server has answered so far, by RPC."""
        return {rpc: self.inventory.served(rpc) for rpc in CAPTURE_RPCS}


@contextlib.asynccontextmanager
async def older_inventory(target: str) -> AsyncIterator[str]:
    """An inventory from before `include_items`, in front of the real one at `target`.

    Every call is passed through as it is, bytes in and out, statuses and their details too;
    GetAvailability loses `include_items` on the way, as an older server would not read it, so
    its answer carries no item facts and no `items_included`. Yields its own target.
    """
    channel = grpc.aio.insecure_channel(target)

    def forward(method: str) -> grpc.RpcMethodHandler[bytes, bytes]:
        call = channel.unary_unary(f"/{INVENTORY_SERVICE.full_name}/{method}")

        async def handle(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            if method == "GetAvailability":
                asked = inv_svc.GetAvailabilityRequest.FromString(request)
                asked.ClearField("include_items")
                request = asked.SerializeToString()
            try:
                answer: bytes = await call(request, timeout=10.0)
            except grpc.aio.AioRpcError as error:
                trailers = tuple(error.trailing_metadata() or ())
                await context.abort(error.code(), error.details() or "", trailers)
            return answer

        return grpc.unary_unary_rpc_method_handler(handle)

    handlers = {m.name: forward(m.name) for m in INVENTORY_SERVICE.methods}
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(INVENTORY_SERVICE.full_name, handlers),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)
        await channel.close()


@contextlib.asynccontextmanager
async def capture_mesh(
    db_urls: dict[str, str], nats_url: str, nc: NATS, *, older: bool
) -> AsyncIterator[Capture]:
    """Inventory and order (shipment is not needed to place orders); with `older`, order talks
    to inventory through the older-server stand-in."""
    async with running_inventory(db_urls["inventory"], nats_url, nc) as inventory:
        target = f"127.0.0.1:{inventory.server.port}"
        async with contextlib.AsyncExitStack() as stack:
            if older:
                target = await stack.enter_async_context(older_inventory(target))
            orders = await stack.enter_async_context(
                running_order(
                    db_urls["order"], nats_url, target, SHIPMENT_TARGET=f"127.0.0.1:{free_port()}"
                )
            )
            await seed(inventory.stub, ["SKU-A", "SKU-B"], {("SKU-A", EAST): 5, ("SKU-B", WEST): 5})
            await inventory.stub.CreateItem(
                inv_svc.CreateItemRequest(item=item_input("SKU-OLD", active=False))
            )
            yield Capture(orders, inventory, older)


@pytest.fixture(params=["current", "older"])
async def capture(
    request: pytest.FixtureRequest,
    db_urls: dict[str, str],
    nats_server: NatsServer,
    nats_client: NATS,
) -> AsyncIterator[Capture]:
    """Order against the current inventory, then against the older-server stand-in."""
    older = request.param == "older"
    async with capture_mesh(db_urls, nats_server.url, nats_client, older=older) as running:
        yield running


async def test_capture_is_one_inventory_call_unless_inventory_is_older(capture: Capture) -> None:
    before = capture.capture_calls()
    created = await capture.orders.CreateOrder(order_request([("SKU-A", 2), ("SKU-B", 1)]))
    order_id = created.order.order_id
    calls = {rpc: n - before[rpc] for rpc, n in capture.capture_calls().items()}
    # An older server's answer says nothing of items: they are read one SKU at a time.
    assert calls == {"GetAvailability": 1, "GetItem": 2 if capture.older else 0}

    # The saga plans its reservations on capture's availability: no second GetAvailability.
    allocated = await wait_for(
        lambda: capture.orders.GetOrder(svc.GetOrderRequest(order_id=order_id)),
        lambda answer: all(
            line.quantity_allocated == line.quantity_ordered for line in answer.order.lines
        ),
    )
    assert [line.quantity_allocated for line in allocated.order.lines] == [2, 1]
    assert capture.capture_calls()["GetAvailability"] - before["GetAvailability"] == 1


async def test_unknown_and_inactive_skus_are_rejected_as_before(capture: Capture) -> None:
    bad = order_request([("SKU-NOPE", 1), ("SKU-OLD", 1), ("SKU-A", 1)])
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await capture.orders.CreateOrder(bad)
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert _violations(error.value) == {
        "order.lines[0].sku": ("sku_exists", "SKU 'SKU-NOPE' does not exist"),
        "order.lines[1].sku": ("sku_active", "SKU 'SKU-OLD' can no longer be ordered"),
    }
    listed = await capture.orders.ListOrders(svc.ListOrdersRequest(partner_id=PARTNER))
    assert list(listed.orders) == []  # nothing half-written stays behind


async def test_capture_without_inventory_is_unavailable(
    db_urls: dict[str, str], nats_server: NatsServer
) -> None:
    nobody = f"127.0.0.1:{free_port()}"  # nothing listens here
    async with running_order(
        db_urls["order"],
        nats_server.url,
        nobody,
        SHIPMENT_TARGET=nobody,
        GRPC_CLIENT_TIMEOUT_SECONDS="2",
    ) as orders:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await orders.CreateOrder(order_request([("SKU-A", 1)]))
    assert error.value.code() is grpc.StatusCode.UNAVAILABLE
    status = status_from_error(error.value)
    assert status is not None
    (info,) = details_of(status, error_details_pb2.ErrorInfo)
    assert info.reason == "INVENTORY_UNAVAILABLE"


def _violations(error: grpc.aio.AioRpcError) -> dict[str, tuple[str, str]]:
    status = status_from_error(error)
    assert status is not None
    (bad_request,) = details_of(status, error_details_pb2.BadRequest)
    return {v.field: (v.reason, v.description) for v in bad_request.field_violations}
