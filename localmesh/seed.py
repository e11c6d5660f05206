"""Demo data through inventory's public gRPC API: items, two warehouses, stock. Idempotent.

Items and locations are created only when missing; stock arrives as one receipt per warehouse
with a fixed idempotency key, so a second run records nothing new.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from crossdock.common.v1 import common_pb2 as common
from crossdock.inventory.v1 import inventory_pb2 as inv
from crossdock.inventory.v1 import inventory_service_pb2 as svc
from crossdock.inventory.v1 import inventory_service_pb2_grpc as svc_grpc

CURRENCY = "USD"
CALL_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class DemoItem:
    sku: str
    description: str
    weight_kg: float
    dimensions_cm: tuple[float, float, float]
    unit_price_cents: int


@dataclass(frozen=True)
class DemoWarehouse:
    location_id: str
    name: str
    street: str
    city: str
    region: str
    postal_code: str
    stock: dict[str, int]


DEMO_ITEMS: Sequence[DemoItem] = (
    DemoItem("MUG-001", "Ceramic mug, 350 ml", 0.4, (12, 9, 10), 1200),
    DemoItem("TEE-BLK-M", "Cotton T-shirt, black, M", 0.2, (30, 25, 2), 1999),
    DemoItem("LAMP-DESK", "LED desk lamp", 1.3, (40, 18, 15), 4950),
    DemoItem("BOOK-ATLAS", "World atlas, hardcover", 1.8, (35, 27, 4), 3500),
    DemoItem("CHAIR-FOLD", "Folding chair", 4.5, (80, 45, 6), 8900),
)
DEMO_WAREHOUSES: Sequence[DemoWarehouse] = (
    DemoWarehouse(
        "WH-EAST",
        "East coast DC",
        "100 Distribution Way",
        "Newark",
        "NJ",
        "07114",
        {"MUG-001": 500, "TEE-BLK-M": 300, "LAMP-DESK": 120, "BOOK-ATLAS": 80, "CHAIR-FOLD": 40},
    ),
    DemoWarehouse(
        "WH-WEST",
        "West coast DC",
        "2500 Logistics Pkwy",
        "Reno",
        "NV",
        "89502",
        {"MUG-001": 400, "TEE-BLK-M": 250, "LAMP-DESK": 90, "CHAIR-FOLD": 60},
    ),
)


@dataclass
class SeedReport:
    items_created: int = 0
    locations_created: int = 0
    receipts_ensured: int = 0  # replays of the same receipt change nothing


def _money(cents: int) -> common.Money:
    return common.Money(
        currency_code=CURRENCY, units=cents // 100, nanos=(cents % 100) * 10_000_000
    )


def item_input(item: DemoItem) -> svc.ItemInput:
    length, width, height = item.dimensions_cm
    return svc.ItemInput(
        sku=item.sku,
        description=item.description,
        unit_of_measure=inv.UNIT_OF_MEASURE_EACH,
        dimensions=common.Dimensions(
            length=length, width=width, height=height, unit=common.DIMENSION_UNIT_CENTIMETER
        ),
        weight=common.Weight(value=item.weight_kg, unit=common.WEIGHT_UNIT_KILOGRAM),
        active=True,
        unit_price=_money(item.unit_price_cents),
    )


def location_input(warehouse: DemoWarehouse) -> svc.LocationInput:
    return svc.LocationInput(
        location_id=warehouse.location_id,
        name=warehouse.name,
        address=common.Address(
            name=warehouse.name,
            company="crossdock demo",
            lines=[warehouse.street],
            city=warehouse.city,
            region=warehouse.region,
            postal_code=warehouse.postal_code,
            country_code="US",
        ),
        active=True,
    )


def _exists(call: grpc.UnaryUnaryMultiCallable[Any, Any], request: object) -> bool:
    try:
        call(request, timeout=CALL_TIMEOUT_SECONDS)
    except grpc.RpcError as error:
        if isinstance(error, grpc.Call) and error.code() == grpc.StatusCode.NOT_FOUND:
            return False
        raise
    return True


def _create(call: grpc.UnaryUnaryMultiCallable[Any, Any], request: object) -> bool:
    """True when created; False when a concurrent seeder got there first."""
    try:
        call(request, timeout=CALL_TIMEOUT_SECONDS)
    except grpc.RpcError as error:
        if isinstance(error, grpc.Call) and error.code() == grpc.StatusCode.ALREADY_EXISTS:
            return False
        raise
    return True


def seed_demo_data(inventory_target: str) -> SeedReport:
    """Create what is missing; safe to run on every start."""
    report = SeedReport()
    with grpc.insecure_channel(inventory_target) as channel:
        stub = svc_grpc.InventoryServiceStub(channel)
        for item in DEMO_ITEMS:
            if not _exists(stub.GetItem, svc.GetItemRequest(sku=item.sku)):
                created = _create(stub.CreateItem, svc.CreateItemRequest(item=item_input(item)))
                report.items_created += int(created)
        for warehouse in DEMO_WAREHOUSES:
            request = svc.GetLocationRequest(location_id=warehouse.location_id)
            if not _exists(stub.GetLocation, request):
                create = svc.CreateLocationRequest(location=location_input(warehouse))
                report.locations_created += int(_create(stub.CreateLocation, create))
            receipt = svc.ReceiveStockRequest(
                location_id=warehouse.location_id,
                source=inv.RECEIPT_SOURCE_PURCHASE_ORDER,
                source_reference=f"SEED-{warehouse.location_id}",
                lines=[
                    svc.ReceiptLineInput(sku=sku, quantity=quantity)
                    for sku, quantity in sorted(warehouse.stock.items())
                ],
                idempotency_key=f"localmesh-seed-{warehouse.location_id}-v1",
            )
            stub.ReceiveStock(receipt, timeout=CALL_TIMEOUT_SECONDS)
            report.receipts_ensured += 1
    return report
