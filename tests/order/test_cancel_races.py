"""A cancel racing the warehouse's pick confirmation, and a cancel racing the label booking, 50
times each, on SQLite and on PostgreSQL: every try ends in one consistent outcome.

The real services run in-process (each on its own database of the backend under test, one
nats-server); the test is the warehouse floor (no simulator) and the sandbox carrier takes a
moment to book, so the cancel lands on both sides of each race. Whoever wins, the order ends
CANCELLED, every shipment CANCELLED with any label it got voided, the stock exactly as before,
and no invoice.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import grpc
from crossdock.billing.v1 import billing_service_pb2 as billing_svc
from crossdock.inventory.v1 import inventory_pb2 as inv
from crossdock.inventory.v1 import inventory_service_pb2 as inv_svc
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as order_svc
from crossdock.shipment.v1 import shipment_pb2
from crossdock.shipment.v1 import shipment_service_pb2 as shp_svc
from nats.aio.client import Client as NATS

from tests.fixtures.databases import NewDbUrl
from tests.fixtures.nats import NatsServer
from tests.fixtures.spine import (
    EAST,
    SERVICES,
    Spine,
    order_request,
    running_spine,
    seed_catalog,
)
from tests.fixtures.waiting import wait_for

TRIES = 50
ITEMS = {"KETTLE": (1.5, "40.00")}
STOCK = {("KETTLE", EAST): 500}
CARRIER = {"ACCOUNT_SANDBOX_LABEL_DELAY_SECONDS": "0.15", "ACCOUNT_SANDBOX_TIME_SCALE": "1"}


async def _open_task(spine: Spine, order_id: str) -> inv.PickTask:
    async def tasks() -> list[inv.PickTask]:
        answer = await spine.inventory.ListPickTasks(
            inv_svc.ListPickTasksRequest(status=inv.PICK_STATUS_OPEN, page_size=500)
        )
        return [t for t in answer.pick_tasks if t.order_id == order_id]

    (task,) = await wait_for(tasks, lambda t: len(t) == 1, timeout=30, interval=0.05)
    return task


async def _confirm(spine: Spine, task: inv.PickTask) -> bool:
    """True when the pick was confirmed, False when the cancel had withdrawn it first."""
    lines = [
        inv.PickConfirmationLine(
            order_line_number=x.order_line_number, sku=x.sku, quantity_picked=x.quantity
        )
        for x in task.lines
    ]
    for _ in range(20):
        try:
            await spine.inventory.ConfirmPick(
                inv_svc.ConfirmPickRequest(pick_id=task.pick_id, lines=lines)
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.ABORTED:
                # Ten floors confirm picks of one SKU at once: a lost optimistic race on the
                # stock position is ABORTED, which a WMS retries (the kit's transient codes).
                await asyncio.sleep(random.uniform(0.01, 0.05))
                continue
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
            assert "cancelled" in (error.details() or ""), error.details()
            return False
        return True
    raise AssertionError(f"pick {task.pick_id} lost its race 20 times")


async def _cancel(spine: Spine, order_id: str) -> None:
    answer = await spine.orders.CancelOrder(
        order_svc.CancelOrderRequest(order_id=order_id, reason="race")
    )
    assert answer.order.status == order_pb2.ORDER_STATUS_CANCELLED


async def _jitter(call: Callable[[], Awaitable[object]], most: float) -> object:
    await asyncio.sleep(random.uniform(0, most))
    return await call()


async def _shipments(spine: Spine, order_id: str) -> list[shipment_pb2.Shipment]:
    answer = await spine.shipments.ListShipments(shp_svc.ListShipmentsRequest(order_id=order_id))
    return list(answer.shipments)


async def _settled(spine: Spine, order_ids: list[str]) -> None:
    """The one consistent outcome, whoever won each race."""
    for order_id in order_ids:
        order = (await spine.orders.GetOrder(order_svc.GetOrderRequest(order_id=order_id))).order
        assert order.status == order_pb2.ORDER_STATUS_CANCELLED, order

        def done(found: list[shipment_pb2.Shipment]) -> bool:
            return all(
                s.status == shipment_pb2.SHIPMENT_STATUS_CANCELLED
                and (not s.label_id or s.label_void == shipment_pb2.LABEL_VOID_STATUS_VOIDED)
                for s in found
            )

        shipments = await wait_for(
            lambda order_id=order_id: _shipments(spine, order_id), done, timeout=30
        )
        assert done(shipments), shipments
        invoices = await spine.billing.ListInvoices(
            billing_svc.ListInvoicesRequest(order_id=order_id)
        )
        assert not invoices.invoices

    async def position() -> tuple[int, int]:
        answer = await spine.inventory.ListPositions(
            inv_svc.ListPositionsRequest(sku="KETTLE", location_id=EAST)
        )
        (p,) = answer.positions
        return int(p.quantity_on_hand), int(p.quantity_reserved)

    stock = await wait_for(position, lambda s: s == (500, 0), timeout=30)
    assert stock == (500, 0)


async def _race_pick(spine: Spine, n: int, outcomes: list[bool]) -> str:
    placed = await spine.orders.CreateOrder(order_request(f"RACE-PICK-{n}", [("KETTLE", 1, "40")]))
    order_id = placed.order.order_id
    task = await _open_task(spine, order_id)
    # The cancel withdraws the pick after its commit (a saga command): give the floor a spread
    # of delays around that so either side wins.
    confirmed, _ = await asyncio.gather(
        _jitter(lambda: _confirm(spine, task), 0.25),
        _jitter(lambda: _cancel(spine, order_id), 0.02),
    )
    outcomes.append(bool(confirmed))
    return str(order_id)


async def _race_label(spine: Spine, n: int) -> str:
    placed = await spine.orders.CreateOrder(order_request(f"RACE-LBL-{n}", [("KETTLE", 1, "40")]))
    order_id = placed.order.order_id
    assert await _confirm(spine, await _open_task(spine, order_id))
    # Packed: its label is due now and takes 0.15 s to book. Cancel somewhere around that.
    await wait_for(lambda: _shipments(spine, order_id), lambda s: len(s) == 1, timeout=30)
    await asyncio.sleep(random.uniform(0, 0.3))
    await _cancel(spine, order_id)
    return str(order_id)


async def _bounded(jobs: list[Callable[[], Awaitable[str]]], width: int = 10) -> list[str]:
    slots = asyncio.Semaphore(width)

    async def run(job: Callable[[], Awaitable[str]]) -> str:
        async with slots:
            return await job()

    return await asyncio.gather(*(run(job) for job in jobs))


async def test_cancel_racing_the_pick_confirmation(
    new_db_url: NewDbUrl, nats_server: NatsServer, nats_client: NATS
) -> None:
    urls = {name: new_db_url(name) for name in SERVICES}
    async with running_spine(
        urls, nats_server.url, nats_client, carrier=CARRIER, warehouse=False
    ) as spine:
        await seed_catalog(spine.inventory, ITEMS, STOCK)
        confirmed: list[bool] = []
        order_ids = await _bounded(
            [lambda n=n: _race_pick(spine, n, confirmed) for n in range(TRIES)]
        )
        await _settled(spine, order_ids)
    # Both sides of the race were exercised.
    assert any(confirmed) and not all(confirmed), confirmed


async def test_cancel_racing_the_label_booking(
    new_db_url: NewDbUrl, nats_server: NatsServer, nats_client: NATS
) -> None:
    urls = {name: new_db_url(name) for name in SERVICES}
    async with running_spine(
        urls, nats_server.url, nats_client, carrier=CARRIER, warehouse=False
    ) as spine:
        await seed_catalog(spine.inventory, ITEMS, STOCK)
        order_ids = await _bounded([lambda n=n: _race_label(spine, n) for n in range(TRIES)])
        await _settled(spine, order_ids)
        labels = [s.label_id for order_id in order_ids for s in await _shipments(spine, order_id)]
        # Every label the carrier booked belongs to a shipment, and _settled saw each voided.
        assert spine.carrier.label_bookings() == sum(1 for label in labels if label)
    assert any(labels), "no cancel landed after a booking started"
