"""The warehouse simulator's dock (tools/warehouse_sim.py): return parcels are received once the
carrier delivered them and the dock delay passed, damaged at the configured rate, only by the
dock of their warehouse, once, and never when the return was received some other way.

The whole spine runs for real (tests/fixtures/spine.py) with no floor of its own: the test
drives the simulator's polls itself, and the carrier's scans arrive as sandbox webhooks.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from crossdock.inventory.v1 import inventory_pb2 as inv
from crossdock.inventory.v1 import inventory_service_pb2 as inv_svc
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as order_svc
from crossdock.shipment.v1 import shipment_pb2
from crossdock.shipment.v1 import shipment_service_pb2 as shp_svc
from nats.aio.client import Client as NATS

from services.carrier_adapter.domain.normalize import RawScan
from tests.fixtures.nats import NatsServer
from tests.fixtures.sandbox import sandbox_webhook
from tests.fixtures.spine import (
    EAST,
    PARTNER,
    WEST,
    Spine,
    order_request,
    running_spine,
    seed_catalog,
    sqlite_urls,
)
from tests.fixtures.waiting import wait_for
from tools.warehouse_sim import DAMAGE_REASON, SimulatorSettings, WarehouseSimulator

ITEMS = {"KETTLE": (1.5, "40.00"), "LAMP": (2.0, "25.00")}
STOCK = {("KETTLE", EAST): 20, ("LAMP", EAST): 20}


def test_the_damage_rate_is_a_probability() -> None:
    with pytest.raises(ValueError, match="damage_rate"):
        SimulatorSettings(damage_rate=1.5)


def dock(spine: Spine, **settings: object) -> WarehouseSimulator:
    return WarehouseSimulator(
        spine.inventory,
        SimulatorSettings(**settings),  # type: ignore[arg-type]
        orders=spine.orders,  # type: ignore[arg-type]
        shipments=spine.shipments,  # type: ignore[arg-type]
    )


async def deliver(spine: Spine, tracking_number: str) -> None:
    t0 = datetime.now(UTC) - timedelta(days=1)
    scans = [RawScan("PKP", "picked up", t0), RawScan("DLV", "delivered", t0 + timedelta(hours=20))]
    await spine.carrier.stub.IngestWebhook(sandbox_webhook(tracking_number, scans))


async def shipments(spine: Spine, **query: object) -> list[shipment_pb2.Shipment]:
    answer = await spine.shipments.ListShipments(shp_svc.ListShipmentsRequest(**query))  # type: ignore[arg-type]
    return list(answer.shipments)


async def one(spine: Spine, status: int, **query: object) -> shipment_pb2.Shipment:
    found = await wait_for(
        lambda: shipments(spine, **query), lambda s: len(s) == 1 and s[0].status == status
    )
    assert [s.status for s in found] == [status], found
    return found[0]


async def get_return(spine: Spine, return_id: str) -> order_pb2.Return:
    answer = await spine.orders.GetReturn(order_svc.GetReturnRequest(return_id=return_id))
    return answer.order_return


async def authorize(spine: Spine, order_id: str, *lines: tuple[int, int]) -> str:
    answer = await spine.orders.CreateReturn(
        order_svc.CreateReturnRequest(
            order_id=order_id,
            partner_id=PARTNER,
            order_return=order_svc.ReturnInput(
                lines=[
                    order_svc.ReturnLineInput(
                        order_line_number=number,
                        quantity=quantity,
                        disposition=order_pb2.RETURN_DISPOSITION_RESTOCK,
                        reason="DAMAGED",
                    )
                    for number, quantity in lines
                ]
            ),
        )
    )
    return str(answer.order_return.return_id)


async def position(spine: Spine, sku: str) -> inv.InventoryPosition:
    answer = await spine.inventory.ListPositions(
        inv_svc.ListPositionsRequest(sku=sku, location_id=EAST)
    )
    (found,) = answer.positions
    return found


async def test_the_dock_receives_delivered_return_parcels_once_after_its_delay(
    tmp_path: Path, nats_server: NatsServer, nats_client: NATS
) -> None:
    async with running_spine(
        sqlite_urls(tmp_path),
        nats_server.url,
        nats_client,
        carrier={"SANDBOX_PUSH": "off"},
        warehouse=False,
    ) as spine:
        await seed_catalog(spine.inventory, ITEMS, STOCK)
        floor = dock(spine, return_delay_seconds=1.0, damage_rate=1.0, seed=3)
        west = dock(spine, location_id=WEST)
        created = await spine.orders.CreateOrder(
            order_request("SIM-RMA-1", [("KETTLE", 3, "40.00"), ("LAMP", 2, "25.00")])
        )
        order_id = created.order.order_id
        assert await wait_for(floor.step, lambda confirmed: confirmed >= 1) == 1
        outbound = await one(spine, shipment_pb2.SHIPMENT_STATUS_MANIFESTED, order_id=order_id)
        await deliver(spine, outbound.tracking_number)
        await wait_for(
            lambda: spine.orders.GetOrder(order_svc.GetOrderRequest(order_id=order_id)),
            lambda o: o.order.status == order_pb2.ORDER_STATUS_COMPLETED,
        )
        kettle, lamp = await position(spine, "KETTLE"), await position(spine, "LAMP")

        damaged_id = await authorize(spine, order_id, (1, 2), (2, 1))
        other_id = await authorize(spine, order_id, (1, 1))
        manifested = shipment_pb2.SHIPMENT_STATUS_MANIFESTED
        parcel = await one(spine, manifested, return_id=damaged_id)
        other = await one(spine, manifested, return_id=other_id)
        assert await floor.receive_returns() == 0  # expected, but not at the dock yet

        # The other return's goods were received by hand before its parcel arrived: left alone.
        await spine.inventory.ReceiveStock(
            inv_svc.ReceiveStockRequest(
                location_id=EAST,
                source=inv.RECEIPT_SOURCE_RETURN,
                source_reference=other_id,
                lines=[inv_svc.ReceiptLineInput(sku="KETTLE", quantity=1)],
                idempotency_key=f"by-hand-{other_id}",
            )
        )
        await wait_for(
            lambda: get_return(spine, other_id),
            lambda r: r.status != order_pb2.RETURN_STATUS_AUTHORIZED,
        )

        delivered = shipment_pb2.SHIPMENT_STATUS_DELIVERED
        for each in (parcel, other):
            await deliver(spine, each.tracking_number)
            await one(spine, delivered, return_id=each.return_id)
        assert await floor.receive_returns() == 0  # delivered just now: the dock delay runs
        assert await west.receive_returns() == 0  # not that warehouse's parcel
        await asyncio.sleep(1.0)
        assert await floor.receive_returns() == 1
        assert await floor.receive_returns() == 0  # once
        assert west.received == []

        (receipt,) = [answer.receipt for answer in floor.received]
        assert (receipt.source, receipt.source_reference) == (inv.RECEIPT_SOURCE_RETURN, damaged_id)
        assert receipt.location_id == EAST
        assert [(ln.sku, ln.quantity, ln.condition, ln.reason) for ln in receipt.lines] == [
            ("KETTLE", 2, inv.STOCK_CONDITION_DAMAGED, DAMAGE_REASON),
            ("LAMP", 1, inv.STOCK_CONDITION_DAMAGED, DAMAGE_REASON),
        ]
        # Damaged units are held apart, not sellable again.
        assert (await position(spine, "KETTLE")).quantity_non_sellable == (
            kettle.quantity_non_sellable + 2
        )
        assert (await position(spine, "LAMP")).quantity_on_hand == lamp.quantity_on_hand
        received = await wait_for(
            lambda: get_return(spine, damaged_id),
            lambda r: r.status == order_pb2.RETURN_STATUS_CREDITED,
        )
        assert [(x.quantity_received, x.disposition) for x in received.lines] == [
            (2, order_pb2.RETURN_DISPOSITION_REFURBISH),
            (1, order_pb2.RETURN_DISPOSITION_REFURBISH),
        ]

        # The draws depend on the seed, the return and the SKU only: a restarted simulator
        # would send the very same receipt, which inventory replays instead of receiving twice.
        restarted = dock(spine, damage_rate=0.5, seed=3)
        again = dock(spine, damage_rate=0.5, seed=3)
        delivered_parcel = await one(spine, delivered, return_id=damaged_id)
        assert restarted.receipt_lines(damaged_id, delivered_parcel) == again.receipt_lines(
            damaged_id, delivered_parcel
        )
        sellable = dock(spine, seed=3)  # no damage rate: every unit comes back sellable
        assert {ln.condition for ln in sellable.receipt_lines(damaged_id, delivered_parcel)} == {
            inv.STOCK_CONDITION_SELLABLE
        }
