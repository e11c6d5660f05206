"""Order to cash, end to end: 50 orders placed through gRPC travel through reservation, the
warehouse floor, packing, rate shopping, labels, carrier scans and invoicing to COMPLETED.

The services are the real ones (in-process, each with its own SQLite file, one nats-server);
the carrier is the sandbox in fast mode, pushing its signed webhooks with delivery exceptions,
duplicate and late (out-of-order) pushes turned on. The run includes split shipments (stock in
two warehouses), multi-package shipments, and hand-sent duplicate and out-of-order scans.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta
from decimal import Decimal
from pathlib import Path

from crossdock.billing.v1 import billing_pb2
from crossdock.billing.v1 import billing_service_pb2 as billing_svc
from crossdock.carrier.v1 import tracking_pb2
from crossdock.common.v1 import common_pb2
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
    WEST,
    Spine,
    order_request,
    running_spine,
    seed_catalog,
    sqlite_urls,
)
from tests.fixtures.waiting import wait_for

ITEMS = {
    "KETTLE": (1.5, "40.00"),
    "ANVIL": (12.0, "99.00"),
    "MUG": (0.4, "9.50"),
    "EAST-ONLY": (2.0, "25.00"),
    "WEST-ONLY": (2.0, "30.00"),
}
STOCK = {
    ("KETTLE", EAST): 500,
    ("ANVIL", EAST): 200,
    ("MUG", EAST): 500,
    ("EAST-ONLY", EAST): 100,
    ("WEST-ONLY", WEST): 100,
}
CARRIER = {
    "SANDBOX_PUSH": "direct",
    "SANDBOX_PUSH_INTERVAL_SECONDS": "0.2",
    "ACCOUNT_SANDBOX_TIME_SCALE": "40000",
    "ACCOUNT_SANDBOX_SEED": "7",
    "ACCOUNT_SANDBOX_EXCEPTION_RATE": "0.25",
    "ACCOUNT_SANDBOX_RETURN_RATE": "0",
    "ACCOUNT_SANDBOX_DUPLICATE_WEBHOOK_RATE": "0.3",
    "ACCOUNT_SANDBOX_LATE_WEBHOOK_RATE": "0.3",
}
ORDERS = 50


def basket(n: int) -> list[tuple[str, int, str]]:
    """Order n's lines: every 10th splits across both warehouses, every 7th is heavy."""
    lines = [("KETTLE", 1 + n % 3, "40.00"), ("MUG", 2, "9.50")]
    if n % 10 == 0:
        lines += [("EAST-ONLY", 1, "25.00"), ("WEST-ONLY", 2, "30.00")]
    if n % 7 == 0:
        lines.append(("ANVIL", 3, "99.00"))
    return lines


def dec(money: common_pb2.Money) -> Decimal:
    return Decimal(money.units) + Decimal(money.nanos) / Decimal(1_000_000_000)


async def all_shipments(spine: Spine) -> list[shipment_pb2.Shipment]:
    found: list[shipment_pb2.Shipment] = []
    token = ""
    while True:
        page = await spine.shipments.ListShipments(
            shp_svc.ListShipmentsRequest(page_size=100, page_token=token)
        )
        found += page.shipments
        token = page.next_page_token
        if not token:
            return found


async def all_invoices(spine: Spine) -> list[billing_pb2.Invoice]:
    found: list[billing_pb2.Invoice] = []
    token = ""
    while True:
        page = await spine.billing.ListInvoices(
            billing_svc.ListInvoicesRequest(page_size=100, page_token=token)
        )
        found += page.invoices
        token = page.next_page_token
        if not token:
            return found


async def test_fifty_orders_go_from_placed_to_completed_with_one_invoice_per_shipment(
    tmp_path: Path, nats_server: NatsServer, nats_client: NATS
) -> None:
    urls = sqlite_urls(tmp_path)
    async with running_spine(urls, nats_server.url, nats_client, carrier=CARRIER) as spine:
        await seed_catalog(spine.inventory, ITEMS, STOCK)
        placed = await asyncio.gather(
            *(
                spine.orders.CreateOrder(order_request(f"E2E-{n:03d}", basket(n)))
                for n in range(ORDERS)
            )
        )
        orders = {answer.order.order_id: answer.order for answer in placed}
        assert len(orders) == ORDERS

        async def statuses() -> dict[str, int]:
            answers = await asyncio.gather(
                *(spine.orders.GetOrder(order_svc.GetOrderRequest(order_id=i)) for i in orders)
            )
            return {a.order.order_id: a.order.status for a in answers}

        final = await wait_for(
            statuses,
            lambda s: all(v == order_pb2.ORDER_STATUS_COMPLETED for v in s.values()),
            timeout=240,
            interval=0.5,
        )
        stuck = {
            i: order_pb2.OrderStatus.Name(s)
            for i, s in final.items()
            if s != order_pb2.ORDER_STATUS_COMPLETED
        }
        assert not stuck, stuck

        shipments = await all_shipments(spine)
        invoices = await all_invoices(spine)

        # Every shipment delivered; split orders shipped from both warehouses.
        assert {s.status for s in shipments} == {shipment_pb2.SHIPMENT_STATUS_DELIVERED}
        by_order: dict[str, list[shipment_pb2.Shipment]] = {}
        for s in shipments:
            by_order.setdefault(s.order_id, []).append(s)
        assert set(by_order) == set(orders)
        split = {
            o for o, group in by_order.items() if {s.location_id for s in group} == {EAST, WEST}
        }
        assert len(split) == len([n for n in range(ORDERS) if n % 10 == 0])
        assert any(len(s.packages) > 1 for s in shipments), "heavy orders need several boxes"

        # Exactly one invoice per shipment; amounts = goods at the order's prices + freight.
        assert sorted(i.shipment_id for i in invoices) == sorted(s.shipment_id for s in shipments)
        shipment_of = {s.shipment_id: s for s in shipments}
        for invoice in invoices:
            shipment = shipment_of[invoice.shipment_id]
            prices = {ln.line_number: dec(ln.unit_price) for ln in orders[invoice.order_id].lines}
            goods = sum(
                (
                    prices[item.order_line_number] * item.quantity
                    for package in shipment.packages
                    for item in package.items
                ),
                Decimal(0),
            )
            freight = [
                ln for ln in invoice.lines if ln.kind == billing_pb2.INVOICE_LINE_KIND_FREIGHT
            ]
            assert [dec(ln.amount) for ln in freight] == [dec(shipment.rate.total_charge)]
            assert dec(invoice.total) == goods + dec(shipment.rate.total_charge), invoice
        # Gapless numbers across the run.
        numbers = sorted(int(i.invoice_number.rsplit("-", 1)[1]) for i in invoices)
        assert numbers == list(range(numbers[0], numbers[0] + len(invoices)))

        # At least one delivery exception that was followed by delivery.
        timelines = await asyncio.gather(
            *(
                spine.shipments.GetTracking(shp_svc.GetTrackingRequest(shipment_id=s.shipment_id))
                for s in shipments
            )
        )
        recovered = [
            t
            for t in timelines
            if tracking_pb2.TRACKING_STATUS_DELIVERY_FAILED in [e.status for e in t.events]
            and t.events[-1].status == tracking_pb2.TRACKING_STATUS_DELIVERED
        ]
        assert recovered, "the run should include an exception followed by delivery"

        # A duplicate webhook and an out-of-order scan for a delivered shipment change nothing.
        target = timelines[0]
        number = shipment_of[target.shipment_id].tracking_number
        delivered_at = target.events[-1].occur_time.ToDatetime(tzinfo=UTC)
        duplicate = RawScan("DLV", "Delivered", delivered_at)
        late = RawScan("ARR", "Arrived at facility", delivered_at - timedelta(hours=5))
        await spine.carrier.stub.IngestWebhook(sandbox_webhook(number, [duplicate]))
        await spine.carrier.stub.IngestWebhook(sandbox_webhook(number, [late]))
        after = await wait_for(
            lambda: spine.shipments.GetTracking(
                shp_svc.GetTrackingRequest(shipment_id=target.shipment_id)
            ),
            lambda t: len(t.events) > len(target.events),
            timeout=30,
        )
        assert len(after.events) == len(target.events) + 1  # the late scan, not the duplicate
        assert after.status == shipment_pb2.SHIPMENT_STATUS_DELIVERED
        again = await all_invoices(spine)
        assert len(again) == len(invoices)
        order = await spine.orders.GetOrder(
            order_svc.GetOrderRequest(order_id=shipment_of[target.shipment_id].order_id)
        )
        assert order.order.status == order_pb2.ORDER_STATUS_COMPLETED
