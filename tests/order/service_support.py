"""The order + inventory mesh running in-process for order's integration tests.

Both services are built by their real `setup` on kit ServiceServers bound to free ports, each
with its own database, sharing one nats-server; the warehouse simulator (tools/) stands in for
the floor. Tests talk to the services only through gRPC and observe through gRPC.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from crossdock.common.v1 import common_pb2
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as svc
from crossdock.order.v1 import order_service_pb2_grpc as svc_grpc
from nats.aio.client import Client as NATS

from services.kit.client import open_channel
from services.kit.server import ServiceServer
from services.order.main import OrderConfig, setup
from tests.inventory.service_support import running_inventory
from tools.warehouse_sim import SimulatorSettings, WarehouseSimulator

PARTNER = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"

FAST = {
    "CROSSDOCK_ORDER_RELAY_POLL_INTERVAL_SECONDS": "0.2",
    "CROSSDOCK_ORDER_CONSUMER_FETCH_TIMEOUT_SECONDS": "0.2",
    "CROSSDOCK_ORDER_CONSUMER_NAK_BASE_DELAY_SECONDS": "0.05",
    "CROSSDOCK_ORDER_COMMAND_POLL_INTERVAL_SECONDS": "0.1",
    "CROSSDOCK_ORDER_SWEEP_INTERVAL_SECONDS": "0.1",
}


@dataclass
class Mesh:
    orders: svc_grpc.OrderServiceStub
    inventory: inv_grpc.InventoryServiceStub
    simulator: WarehouseSimulator


@contextlib.asynccontextmanager
async def running_mesh(
    db_urls: dict[str, str],
    nats_url: str,
    nc: NATS,
    order_settings: dict[str, str] | None = None,
    short_rate: float = 0.0,
) -> AsyncIterator[Mesh]:
    async with running_inventory(db_urls["inventory"], nats_url, nc) as inventory:
        inventory_port = inventory.server.port
        config = OrderConfig.from_env(
            {
                "CROSSDOCK_ORDER_DB_URL": db_urls["order"],
                "CROSSDOCK_ORDER_NATS_URL": nats_url,
                "CROSSDOCK_ORDER_GRPC_PORT": "0",
                "CROSSDOCK_ORDER_METRICS_PORT": "0",
                "CROSSDOCK_ORDER_BIND_HOST": "127.0.0.1",
                "CROSSDOCK_ORDER_INVENTORY_TARGET": f"127.0.0.1:{inventory_port}",
                **FAST,
                **(order_settings or {}),
            }
        )
        server = ServiceServer.from_config(config)
        try:
            await setup(server, config)
            port = await server.start()
            channel = open_channel(f"127.0.0.1:{port}", default_timeout_seconds=10.0)
            try:
                simulator = WarehouseSimulator(
                    inventory.stub, SimulatorSettings(short_rate=short_rate, seed=11)
                )
                yield Mesh(svc_grpc.OrderServiceStub(channel), inventory.stub, simulator)
            finally:
                await channel.close()
        finally:
            await server.shutdown()


def order_request(
    lines: list[tuple[str, int]],
    *,
    external_id: str = "EXT-1",
    ship_complete: bool = False,
    currency: str = "EUR",
) -> svc.CreateOrderRequest:
    return svc.CreateOrderRequest(
        partner_id=PARTNER,
        order=svc.OrderInput(
            external_order_id=external_id,
            customer=common_pb2.PartyRef(party_id="CUST-1", name="Ada"),
            ship_to=common_pb2.Address(
                name="Ada Lovelace",
                lines=["1 Main St"],
                city="Utrecht",
                postal_code="3511",
                country_code="NL",
            ),
            lines=[
                svc.OrderLineInput(
                    sku=sku,
                    quantity=quantity,
                    unit_price=common_pb2.Money(currency_code=currency, units=2, nanos=500_000_000),
                )
                for sku, quantity in lines
            ],
            currency_code=currency,
            backorder_policy=order_pb2.BACKORDER_POLICY_SHIP_COMPLETE
            if ship_complete
            else order_pb2.BACKORDER_POLICY_SHIP_AVAILABLE,
        ),
    )
