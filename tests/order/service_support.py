"""The order + inventory mesh running in-process for order's integration tests.

Both services are built by their real `setup` (tests/fixtures/running) on kit ServiceServers
bound to free ports, each with its own database, sharing one nats-server; the warehouse simulator
(tools/) stands in for the floor. Tests talk to the services only through gRPC and observe
through gRPC.
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

from tests.fixtures.ports import free_port
from tests.fixtures.running import running_inventory, running_order, running_shipment
from tools.warehouse_sim import SimulatorSettings, WarehouseSimulator

PARTNER = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"


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
    """Inventory, shipment and order; `order_settings` override order's settings (names
    without the CROSSDOCK_ORDER_ prefix)."""
    async with running_inventory(db_urls["inventory"], nats_url, nc) as inventory:
        inventory_target = f"127.0.0.1:{inventory.server.port}"
        # Shipment runs too: a cancel asks it first. No carrier answers here (labels wait).
        async with (
            running_shipment(
                db_urls["shipment"], nats_url, inventory_target, f"127.0.0.1:{free_port()}"
            ) as shipments,
            running_order(
                db_urls["order"],
                nats_url,
                inventory_target,
                SHIPMENT_TARGET=shipments.target,
                **(order_settings or {}),
            ) as orders,
        ):
            simulator = WarehouseSimulator(
                inventory.stub, SimulatorSettings(short_rate=short_rate, seed=11)
            )
            yield Mesh(orders, inventory.stub, simulator)


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
