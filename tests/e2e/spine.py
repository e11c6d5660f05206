"""The whole order-to-cash spine, in-process: inventory, order, carrier-adapter (sandbox carrier),
shipment and billing, each built by its real `setup` on a kit ServiceServer with a free port and
its own database, sharing one nats-server; the warehouse simulator confirms picks.

Tests talk to the services only through gRPC (and the sandbox's signed webhooks), exactly as
partners, the warehouse floor and carriers would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from crossdock.billing.v1 import billing_service_pb2_grpc as billing_grpc
from crossdock.common.v1 import common_pb2
from crossdock.inventory.v1 import inventory_pb2 as inv
from crossdock.inventory.v1 import inventory_service_pb2 as inv_svc
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as order_svc
from crossdock.order.v1 import order_service_pb2_grpc as order_grpc
from crossdock.shipment.v1 import shipment_service_pb2_grpc as shipment_grpc
from nats.aio.client import Client as NATS

from localmesh.probes import grpc_health
from services.kit.client import open_channel
from services.kit.server import ServiceServer
from services.order.main import OrderConfig
from services.order.main import setup as order_setup
from tests.billing.service_support import running_billing
from tests.carrier_adapter.service_support import CarrierAdapter, running_carrier_adapter
from tests.carrier_adapter.service_support import service_env as carrier_env
from tests.fixtures.ports import free_port
from tests.fixtures.procs import die_with_parent
from tests.inventory.service_support import running_inventory
from tests.order.service_support import FAST as ORDER_FAST
from tests.shipment.service_support import Shipment, running_shipment, shipment_env
from tools.warehouse_sim import SimulatorSettings, WarehouseSimulator

PARTNER = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"
EAST, WEST = "EAST", "WEST"
SERVICES = ("inventory", "order", "carrier_adapter", "shipment", "billing")


@dataclass
class Spine:
    orders: order_grpc.OrderServiceStub
    inventory: inv_grpc.InventoryServiceStub
    shipments: shipment_grpc.ShipmentServiceStub
    billing: billing_grpc.BillingServiceStub
    carrier: CarrierAdapter
    simulator: WarehouseSimulator
    shipment_process: ShipmentProcess | None = None


def sqlite_urls(directory: Path) -> dict[str, str]:
    return {name: f"sqlite:///{directory / name}.db" for name in SERVICES}


@contextlib.asynccontextmanager
async def running_spine(
    db_urls: Mapping[str, str],
    nats_url: str,
    nc: NATS,
    *,
    carrier: Mapping[str, str] | None = None,
    shipment: Mapping[str, str] | None = None,
    shipment_as_process: bool = False,
) -> AsyncIterator[Spine]:
    """`carrier` / `shipment` override those services' settings (names without prefix).

    With `shipment_as_process`, shipment runs as its own OS process (`spine.shipment_process`),
    so a test can kill -9 it and start another on the same database and port.
    """
    async with contextlib.AsyncExitStack() as stack:
        inventory = await stack.enter_async_context(
            running_inventory(db_urls["inventory"], nats_url, nc)
        )
        inventory_target = f"127.0.0.1:{inventory.server.port}"
        adapter = await stack.enter_async_context(
            running_carrier_adapter(
                carrier_env(db_urls["carrier_adapter"], nats_url, **dict(carrier or {}))
            )
        )
        shipment_args = (
            db_urls["shipment"],
            nats_url,
            inventory_target,
            f"127.0.0.1:{adapter.server.port}",
        )
        process: ShipmentProcess | None = None
        if shipment_as_process:
            process = ShipmentProcess(shipment_env(*shipment_args, **dict(shipment or {})))
            stack.callback(process.kill)
            await process.start()
            channel = open_channel(process.target, default_timeout_seconds=10.0)
            stack.push_async_callback(channel.close)
            shipments = Shipment(shipment_grpc.ShipmentServiceStub(channel), process.target)
        else:
            shipments = await stack.enter_async_context(
                running_shipment(*shipment_args, **dict(shipment or {}))
            )
        orders = await stack.enter_async_context(
            running_order(db_urls["order"], nats_url, inventory_target, shipments.target)
        )
        billing = await stack.enter_async_context(running_billing(db_urls["billing"], nats_url))
        simulator = WarehouseSimulator(inventory.stub, SimulatorSettings(poll_seconds=0.2))
        stop = asyncio.Event()
        floor = asyncio.create_task(simulator.run(stop))
        try:
            yield Spine(
                orders, inventory.stub, shipments.stub, billing, adapter, simulator, process
            )
        finally:
            stop.set()
            await floor


class ShipmentProcess:
    """`python -m services.shipment.main` on a fixed free port, killable and restartable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self._env = {
            **os.environ,
            **env,
            "CROSSDOCK_SHIPMENT_GRPC_PORT": str(self.port),
            "CROSSDOCK_SHIPMENT_METRICS_PORT": str(free_port()),
        }
        self._proc: subprocess.Popen[bytes] | None = None

    async def start(self, timeout: float = 30.0) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "services.shipment.main"],
            env=self._env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while await asyncio.to_thread(grpc_health, self.target) != "SERVING":
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"shipment did not start (exit {self._proc.poll()})")
            await asyncio.sleep(0.1)

    def kill(self) -> None:
        """kill -9: no drain, no shutdown hooks; leases and in-flight calls are abandoned."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


@contextlib.asynccontextmanager
async def running_order(
    db_url: str, nats_url: str, inventory_target: str, shipment_target: str
) -> AsyncIterator[order_grpc.OrderServiceStub]:
    prefix = "CROSSDOCK_ORDER_"
    settings = {
        "DB_URL": db_url,
        "NATS_URL": nats_url,
        "GRPC_PORT": "0",
        "METRICS_PORT": "0",
        "BIND_HOST": "127.0.0.1",
        "INVENTORY_TARGET": inventory_target,
        "SHIPMENT_TARGET": shipment_target,
        "CONSUMER_ACK_WAIT_SECONDS": "5",
    }
    config = OrderConfig.from_env(
        {**ORDER_FAST, **{prefix + name: value for name, value in settings.items()}}
    )
    server = ServiceServer.from_config(config)
    try:
        await order_setup(server, config)
        port = await server.start()
        channel = open_channel(f"127.0.0.1:{port}", default_timeout_seconds=10.0)
        try:
            yield order_grpc.OrderServiceStub(channel)
        finally:
            await channel.close()
    finally:
        await server.shutdown()


# -- demo data ------------------------------------------------------------------------------


def warehouse_address(city: str, postal_code: str, region: str) -> common_pb2.Address:
    return common_pb2.Address(
        name="crossdock DC",
        lines=["100 Dock Rd"],
        city=city,
        region=region,
        postal_code=postal_code,
        country_code="US",
    )


async def seed_catalog(
    inventory: inv_grpc.InventoryServiceStub,
    items: Mapping[str, tuple[float, str]],
    stock: Mapping[tuple[str, str], int],
) -> None:
    """Items (sku → (kg per unit, USD price)), the two warehouses, and stock per (sku, site)."""
    for sku, (kg, price) in items.items():
        await inventory.CreateItem(
            inv_svc.CreateItemRequest(
                item=inv_svc.ItemInput(
                    sku=sku,
                    description=f"{sku} description",
                    unit_of_measure=inv.UNIT_OF_MEASURE_EACH,
                    dimensions=common_pb2.Dimensions(
                        length=30, width=20, height=10, unit=common_pb2.DIMENSION_UNIT_CENTIMETER
                    ),
                    weight=common_pb2.Weight(value=kg, unit=common_pb2.WEIGHT_UNIT_KILOGRAM),
                    active=True,
                    unit_price=_usd(price),
                )
            )
        )
    sites = {EAST: ("Atlanta", "30301", "GA"), WEST: ("Reno", "89501", "NV")}
    for location_id, (city, postal_code, region) in sites.items():
        await inventory.CreateLocation(
            inv_svc.CreateLocationRequest(
                location=inv_svc.LocationInput(
                    location_id=location_id,
                    name=f"{city} DC",
                    address=warehouse_address(city, postal_code, region),
                    active=True,
                )
            )
        )
    for number, ((sku, location_id), quantity) in enumerate(sorted(stock.items())):
        await inventory.ReceiveStock(
            inv_svc.ReceiveStockRequest(
                location_id=location_id,
                source=inv.RECEIPT_SOURCE_PURCHASE_ORDER,
                source_reference=f"PO-{number}",
                lines=[inv_svc.ReceiptLineInput(sku=sku, quantity=quantity)],
                idempotency_key=f"seed-receipt-{number:04d}",
            )
        )


def order_request(
    external_id: str, lines: list[tuple[str, int, str]]
) -> order_svc.CreateOrderRequest:
    """An order shipping to Beverly Hills; lines are (sku, quantity, USD unit price)."""
    return order_svc.CreateOrderRequest(
        partner_id=PARTNER,
        order=order_svc.OrderInput(
            external_order_id=external_id,
            customer=common_pb2.PartyRef(party_id=f"CUST-{external_id}", name="Ada"),
            ship_to=common_pb2.Address(
                name="Ada Lovelace",
                lines=["1 Rodeo Dr"],
                city="Beverly Hills",
                region="CA",
                postal_code="90210",
                country_code="US",
            ),
            lines=[
                order_svc.OrderLineInput(
                    sku=sku,
                    quantity=quantity,
                    unit_price=_usd(price),
                )
                for sku, quantity, price in lines
            ],
            currency_code="USD",
            backorder_policy=order_pb2.BACKORDER_POLICY_SHIP_AVAILABLE,
        ),
    )


def _usd(price: str) -> common_pb2.Money:
    units, _, cents = price.partition(".")
    return common_pb2.Money(
        currency_code="USD", units=int(units), nanos=int((cents + "00")[:2]) * 10_000_000
    )
