"""Running the real inventory service in-process for the integration tests.

`running_inventory` builds it exactly as `services.inventory.main` does (same `setup`), on a
kit ServiceServer bound to a free port, against a real database and nats-server; tests then
talk to it only through gRPC and NATS.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from crossdock.common.v1 import common_pb2
from crossdock.inventory.v1 import inventory_pb2 as inv
from crossdock.inventory.v1 import inventory_service_pb2 as svc
from crossdock.inventory.v1 import inventory_service_pb2_grpc as svc_grpc
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from services.inventory.main import InventoryConfig, setup
from services.kit.client import open_channel
from services.kit.events import dataschema_for, event_spec
from services.kit.ids import new_event_id
from services.kit.outbox import build_headers
from services.kit.server import ServiceServer

T = TypeVar("T")

EAST, WEST = "WH-EAST", "WH-WEST"


@dataclass
class Inventory:
    """A running inventory service and a client stub for it."""

    stub: svc_grpc.InventoryServiceStub
    server: ServiceServer
    nc: NATS


@contextlib.asynccontextmanager
async def running_inventory(db_url: str, nats_url: str, nc: NATS) -> AsyncIterator[Inventory]:
    config = InventoryConfig.from_env(
        {
            "CROSSDOCK_INVENTORY_DB_URL": db_url,
            "CROSSDOCK_INVENTORY_NATS_URL": nats_url,
            "CROSSDOCK_INVENTORY_GRPC_PORT": "0",
            "CROSSDOCK_INVENTORY_METRICS_PORT": "0",
            "CROSSDOCK_INVENTORY_BIND_HOST": "127.0.0.1",
            "CROSSDOCK_INVENTORY_RELAY_POLL_INTERVAL_SECONDS": "0.2",
            "CROSSDOCK_INVENTORY_CONSUMER_FETCH_TIMEOUT_SECONDS": "0.2",
            "CROSSDOCK_INVENTORY_CONSUMER_NAK_BASE_DELAY_SECONDS": "0.05",
        }
    )
    server = ServiceServer.from_config(config)
    try:
        await setup(server, config)
        port = await server.start()
        channel = open_channel(f"127.0.0.1:{port}", default_timeout_seconds=10.0)
        try:
            yield Inventory(svc_grpc.InventoryServiceStub(channel), server, nc)
        finally:
            await channel.close()
    finally:
        await server.shutdown()


async def wait_for(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, timeout: float = 20.0
) -> T:
    """Poll `probe` until `done(value)`; a bounded wait for an asynchronous effect, not a timing
    assertion (the timeout is only there so a broken flow fails instead of hanging)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if done(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


async def stream_events(nc: NATS, stream: str, subject: str | None = None) -> list[Any]:
    """Every stored message of `stream` (optionally one subject), in stream order."""
    js = nc.jetstream()
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        return []
    out: list[Any] = []
    seq = info.state.first_seq
    while seq and seq <= info.state.last_seq:
        with contextlib.suppress(NotFoundError):
            msg = await js.get_msg(stream, seq)
            if subject is None or msg.subject == subject:
                out.append(msg)
        seq += 1
    return out


async def publish_as_order(nc: NATS, event: Any, aggregate_id: str) -> str:
    """Publish an order event the way order's relay would (CloudEvents headers, msg id)."""
    spec = event_spec(type(event))
    event_id = new_event_id()
    headers = build_headers(
        event_id=event_id,
        subject=spec.subject,
        source="crossdock/order",
        aggregate_id=aggregate_id,
        dataschema=dataschema_for(event.DESCRIPTOR.full_name),
        correlation_id=f"corr-{aggregate_id}",
        created_at=time.time(),
    )
    headers["Nats-Msg-Id"] = event_id
    await nc.jetstream().publish(spec.subject, event.SerializeToString(), headers=headers)
    return event_id


def address(city: str = "Rotterdam") -> common_pb2.Address:
    return common_pb2.Address(
        name="Dock 1", lines=["Havenstraat 1"], city=city, postal_code="3011", country_code="NL"
    )


def item_input(sku: str, *, active: bool = True, lot_controlled: bool = False) -> svc.ItemInput:
    return svc.ItemInput(
        sku=sku,
        description=f"{sku} description",
        unit_of_measure=inv.UNIT_OF_MEASURE_EACH,
        dimensions=common_pb2.Dimensions(
            length=10, width=5, height=2, unit=common_pb2.DIMENSION_UNIT_CENTIMETER
        ),
        weight=common_pb2.Weight(value=250, unit=common_pb2.WEIGHT_UNIT_GRAM),
        active=active,
        lot_controlled=lot_controlled,
        unit_price=common_pb2.Money(currency_code="EUR", units=12, nanos=500_000_000),
    )


async def seed(stub: svc_grpc.InventoryServiceStub, skus: list[str], stock: dict) -> None:
    """Create items, the two warehouses, and receive `stock[(sku, location)]` units."""
    for sku in skus:
        await stub.CreateItem(svc.CreateItemRequest(item=item_input(sku)))
    for location_id in (EAST, WEST):
        await stub.CreateLocation(
            svc.CreateLocationRequest(
                location=svc.LocationInput(
                    location_id=location_id, name=location_id, address=address(), active=True
                )
            )
        )
    for number, ((sku, location_id), quantity) in enumerate(sorted(stock.items())):
        await stub.ReceiveStock(
            svc.ReceiveStockRequest(
                location_id=location_id,
                source=inv.RECEIPT_SOURCE_PURCHASE_ORDER,
                source_reference=f"PO-{number}",
                lines=[svc.ReceiptLineInput(sku=sku, quantity=quantity)],
                idempotency_key=f"seed-receipt-{number:04d}",
            )
        )


def status_code(error: BaseException) -> grpc.StatusCode:
    assert isinstance(error, grpc.aio.AioRpcError), error
    return error.code()
