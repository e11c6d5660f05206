"""Order + inventory through gRPC with real NATS, on SQLite files and PostgreSQL.

The fulfillment saga runs for real: order reserves through inventory's gRPC, inventory's events
come back over JetStream, and the warehouse simulator confirms picks. Every wait is a bounded
poll for a state, never a timing assertion.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from crossdock.events.v1 import order_events_pb2
from crossdock.inventory.v1 import inventory_pb2 as inv
from crossdock.inventory.v1 import inventory_service_pb2 as inv_svc
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as svc
from google.rpc import error_details_pb2
from nats.aio.client import Client as NATS

from services.kit.grpc_errors import details_of, status_from_error
from tests.fixtures.catalog import EAST, WEST, item_input, seed
from tests.fixtures.events import stream_messages
from tests.fixtures.nats import NatsServer
from tests.fixtures.waiting import wait_for
from tests.order.service_support import PARTNER, Mesh, order_request, running_mesh

S = order_pb2


@pytest.fixture
async def mesh(
    db_urls: dict[str, str], nats_server: NatsServer, nats_client: NATS
) -> AsyncIterator[Mesh]:
    async with running_mesh(db_urls, nats_server.url, nats_client) as running:
        yield running


async def until(
    mesh: Mesh, order_id: str, done: Callable[[order_pb2.Order], bool]
) -> order_pb2.Order:
    answer = await wait_for(
        lambda: mesh.orders.GetOrder(svc.GetOrderRequest(order_id=order_id)),
        lambda response: done(response.order),
    )
    return answer.order


async def positions(mesh: Mesh, sku: str) -> dict[str, tuple[int, int]]:
    answer = await mesh.inventory.ListPositions(inv_svc.ListPositionsRequest(sku=sku))
    return {p.location_id: (p.quantity_on_hand, p.quantity_reserved) for p in answer.positions}


async def pick_all(mesh: Mesh, expected: int) -> None:
    """Let the simulated floor confirm `expected` open picks (they appear asynchronously)."""
    confirmed = 0

    async def step() -> int:
        nonlocal confirmed
        confirmed += await mesh.simulator.step()
        return confirmed

    await wait_for(step, lambda n: n >= expected)
    assert confirmed == expected


async def test_full_allocation_reserves_releases_and_picks(mesh: Mesh) -> None:
    await seed(mesh.inventory, ["SKU-A", "SKU-B"], {("SKU-A", EAST): 10, ("SKU-B", EAST): 10})
    created = await mesh.orders.CreateOrder(order_request([("SKU-A", 2), ("SKU-B", 3)]))
    order_id = created.order.order_id
    assert not created.replayed

    released = await until(mesh, order_id, lambda o: o.status == S.ORDER_STATUS_RELEASED)
    assert [line.quantity_allocated for line in released.lines] == [2, 3]
    assert await positions(mesh, "SKU-A") == {EAST: (10, 2)}

    await pick_all(mesh, 1)
    picked = await until(mesh, order_id, lambda o: o.status == S.ORDER_STATUS_PICKED)
    assert [line.quantity_picked for line in picked.lines] == [2, 3]
    assert await positions(mesh, "SKU-A") == {EAST: (8, 0)}

    timeline = await mesh.orders.GetOrderTimeline(svc.GetOrderTimelineRequest(order_id=order_id))
    statuses = [e.to_status for e in timeline.entries if e.to_status]
    assert statuses[:1] == [S.ORDER_STATUS_PLACED]
    assert S.ORDER_STATUS_PICKED in statuses
    assert all(e.occur_time.seconds for e in timeline.entries)
    assert any(e.correlation_id for e in timeline.entries)


async def test_partial_allocation_backorders_then_fills_on_receipt(mesh: Mesh) -> None:
    await seed(mesh.inventory, ["SKU-A"], {("SKU-A", EAST): 2})
    created = await mesh.orders.CreateOrder(order_request([("SKU-A", 5)]))
    order_id = created.order.order_id
    # The 2 units show as allocated as soon as their reservation answers; the other 3 are
    # backordered once the planning round settles (after asking the other locations too).
    partial = await until(mesh, order_id, lambda o: o.lines[0].quantity_backordered > 0)
    assert (partial.lines[0].quantity_allocated, partial.lines[0].quantity_backordered) == (2, 3)

    await mesh.inventory.ReceiveStock(
        inv_svc.ReceiveStockRequest(
            location_id=EAST,
            source=inv.RECEIPT_SOURCE_PURCHASE_ORDER,
            source_reference="PO-77",
            lines=[inv_svc.ReceiptLineInput(sku="SKU-A", quantity=3)],
            idempotency_key="receipt-po-77",
        )
    )
    filled = await until(
        mesh,
        order_id,
        lambda o: (
            o.lines[0].quantity_backordered == 0
            and o.lines[0].quantity_allocated + o.lines[0].quantity_picked == 5
        ),
    )
    assert filled.status != S.ORDER_STATUS_BACKORDERED
    assert (await positions(mesh, "SKU-A"))[EAST][0] >= 3


async def test_split_across_warehouses(mesh: Mesh) -> None:
    await seed(mesh.inventory, ["SKU-A"], {("SKU-A", EAST): 3, ("SKU-A", WEST): 4})
    created = await mesh.orders.CreateOrder(order_request([("SKU-A", 6)]))
    order = await until(mesh, created.order.order_id, lambda o: o.status == S.ORDER_STATUS_RELEASED)
    assert order.lines[0].quantity_allocated == 6
    held = await positions(mesh, "SKU-A")
    assert held[EAST][1] + held[WEST][1] == 6
    assert held[EAST][1] > 0 and held[WEST][1] > 0
    await pick_all(mesh, 2)  # one pick task per warehouse
    await until(mesh, created.order.order_id, lambda o: o.status == S.ORDER_STATUS_PICKED)


async def test_short_pick_reallocates_from_another_location(mesh: Mesh) -> None:
    # Only EAST can fill the whole order, so the planner holds everything there.
    await seed(mesh.inventory, ["SKU-A"], {("SKU-A", EAST): 4, ("SKU-A", WEST): 3})
    created = await mesh.orders.CreateOrder(order_request([("SKU-A", 4)]))
    order_id = created.order.order_id
    await until(mesh, order_id, lambda o: o.status == S.ORDER_STATUS_RELEASED)
    assert await positions(mesh, "SKU-A") == {EAST: (4, 4), WEST: (3, 0)}

    tasks = await wait_for(
        lambda: mesh.inventory.ListPickTasks(
            inv_svc.ListPickTasksRequest(status=inv.PICK_STATUS_OPEN)
        ),
        lambda answer: len(answer.pick_tasks) == 1,
    )
    (task,) = tasks.pick_tasks
    await mesh.inventory.ConfirmPick(
        inv_svc.ConfirmPickRequest(
            pick_id=task.pick_id,
            lines=[
                inv.PickConfirmationLine(
                    order_line_number=1, sku="SKU-A", quantity_picked=3, quantity_short=1
                )
            ],
        )
    )
    # The short unit is re-reserved at WEST (EAST has nothing left) and released to pick.
    await wait_for(lambda: positions(mesh, "SKU-A"), lambda p: p.get(WEST) == (3, 1))
    await pick_all(mesh, 1)
    done = await until(mesh, order_id, lambda o: o.lines[0].quantity_picked == 4)
    assert done.lines[0].quantity_backordered == 0
    assert await positions(mesh, "SKU-A") == {EAST: (0, 0), WEST: (2, 0)}


async def test_cancel_before_pick_releases_the_stock(mesh: Mesh) -> None:
    await seed(mesh.inventory, ["SKU-A"], {("SKU-A", EAST): 5})
    created = await mesh.orders.CreateOrder(order_request([("SKU-A", 5)]))
    order_id = created.order.order_id
    await until(mesh, order_id, lambda o: o.status == S.ORDER_STATUS_RELEASED)
    await wait_for(
        lambda: mesh.inventory.ListPickTasks(
            inv_svc.ListPickTasksRequest(status=inv.PICK_STATUS_OPEN)
        ),
        lambda answer: len(answer.pick_tasks) == 1,
    )
    cancelled = await mesh.orders.CancelOrder(
        svc.CancelOrderRequest(order_id=order_id, reason="customer changed their mind")
    )
    assert cancelled.order.status == S.ORDER_STATUS_CANCELLED
    assert await wait_for(lambda: positions(mesh, "SKU-A"), lambda p: p[EAST] == (5, 0)) == {
        EAST: (5, 0)
    }
    open_tasks = await mesh.inventory.ListPickTasks(
        inv_svc.ListPickTasksRequest(status=inv.PICK_STATUS_OPEN)
    )
    assert list(open_tasks.pick_tasks) == []
    assert await mesh.simulator.step() == 0
    again = await mesh.orders.CancelOrder(svc.CancelOrderRequest(order_id=order_id))
    assert again.order.status == S.ORDER_STATUS_CANCELLED  # cancelling twice is harmless


async def test_two_orders_race_for_the_last_unit(mesh: Mesh) -> None:
    await seed(mesh.inventory, ["SKU-A"], {("SKU-A", EAST): 1})
    first = await mesh.orders.CreateOrder(order_request([("SKU-A", 1)], external_id="RACE-1"))
    second = await mesh.orders.CreateOrder(order_request([("SKU-A", 1)], external_id="RACE-2"))
    ids = [first.order.order_id, second.order.order_id]

    async def both() -> list[order_pb2.Order]:
        answers = [await mesh.orders.GetOrder(svc.GetOrderRequest(order_id=i)) for i in ids]
        return [a.order for a in answers]

    settled = await wait_for(
        both,
        lambda orders: (
            sorted(o.lines[0].quantity_allocated for o in orders) == [0, 1]
            and sorted(o.lines[0].quantity_backordered for o in orders) == [0, 1]
        ),
    )
    assert sum(o.lines[0].quantity_allocated for o in settled) == 1
    assert await positions(mesh, "SKU-A") == {EAST: (1, 1)}


async def test_invalid_orders_are_rejected_with_field_violations(mesh: Mesh) -> None:
    await seed(mesh.inventory, ["SKU-A"], {("SKU-A", EAST): 5})
    await mesh.inventory.CreateItem(inv_svc.CreateItemRequest(item=_inactive_item("SKU-OLD")))
    bad = order_request([("SKU-NOPE", 1), ("SKU-OLD", 1), ("SKU-A", 1)])
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await mesh.orders.CreateOrder(bad)
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    violations = _violations(error.value)
    assert violations["order.lines[0].sku"] == "sku_exists"
    assert violations["order.lines[1].sku"] == "sku_active"
    assert "order.lines[2].sku" not in violations

    incomplete = order_request([("SKU-A", 1)])
    del incomplete.order.ship_to.lines[:]
    incomplete.order.ship_to.city = ""
    with pytest.raises(grpc.aio.AioRpcError) as shape:
        await mesh.orders.CreateOrder(incomplete)
    assert shape.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert {"order.ship_to.lines", "order.ship_to.city"} <= set(_violations(shape.value))

    listed = await mesh.orders.ListOrders(svc.ListOrdersRequest(partner_id=PARTNER))
    assert list(listed.orders) == []  # nothing half-written stays behind


async def test_duplicate_create_is_idempotent_and_mismatch_is_already_exists(
    mesh: Mesh,
) -> None:
    await seed(mesh.inventory, ["SKU-A"], {("SKU-A", EAST): 10})
    request = order_request([("SKU-A", 2)], external_id="DUP-1")
    first = await mesh.orders.CreateOrder(request)
    again = await mesh.orders.CreateOrder(request)
    assert again.replayed and again.order.order_id == first.order.order_id

    changed = order_request([("SKU-A", 3)], external_id="DUP-1")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await mesh.orders.CreateOrder(changed)
    assert error.value.code() is grpc.StatusCode.ALREADY_EXISTS
    status = status_from_error(error.value)
    assert status is not None
    (info,) = details_of(status, error_details_pb2.ErrorInfo)
    assert info.metadata["order_id"] == first.order.order_id
    assert "order.lines[0].quantity" in info.metadata["differences"]

    await mesh.orders.CreateOrder(order_request([("SKU-A", 1)], external_id="DUP-2"))
    page_one = await mesh.orders.ListOrders(svc.ListOrdersRequest(partner_id=PARTNER, page_size=1))
    page_two = await mesh.orders.ListOrders(
        svc.ListOrdersRequest(partner_id=PARTNER, page_size=1, page_token=page_one.next_page_token)
    )
    assert [o.external_order_id for o in page_one.orders] == ["DUP-1"]
    assert [o.external_order_id for o in page_two.orders] == ["DUP-2"]
    assert page_two.next_page_token == ""


async def test_pick_timeout_puts_order_in_exception_then_retry_recovers(
    db_urls: dict[str, str], nats_server: NatsServer, nats_client: NATS
) -> None:
    tiny = {"PICK_TIMEOUT_SECONDS": "0.5"}
    async with running_mesh(db_urls, nats_server.url, nats_client, tiny) as mesh:
        await seed(mesh.inventory, ["SKU-A"], {("SKU-A", EAST): 5})
        created = await mesh.orders.CreateOrder(order_request([("SKU-A", 2)]))
        order_id = created.order.order_id
        stuck = await until(mesh, order_id, lambda o: o.exception_reason != "")
        assert "AWAIT_PICK" in stuck.exception_reason
        assert stuck.status == S.ORDER_STATUS_EXCEPTION
        listed = await mesh.orders.ListOrders(
            svc.ListOrdersRequest(partner_id=PARTNER, status=S.ORDER_STATUS_EXCEPTION)
        )
        assert [o.order_id for o in listed.orders] == [order_id]
        timeline = await mesh.orders.GetOrderTimeline(
            svc.GetOrderTimelineRequest(order_id=order_id)
        )
        assert any(
            e.kind == S.TIMELINE_ENTRY_KIND_EXCEPTION and "timeout" in e.detail
            for e in timeline.entries
        )

        retried = await mesh.orders.RetryOrderStep(svc.RetryOrderStepRequest(order_id=order_id))
        assert retried.order.exception_reason == ""
        await pick_all(mesh, 1)
        picked = await until(mesh, order_id, lambda o: o.lines[0].quantity_picked == 2)
        assert picked.exception_reason == ""

        # The move to EXCEPTION and the retry were published through the outbox, as one
        # episode: raised with the step and reason the order showed, cleared by the retry.
        js = nats_client.jetstream()
        (raised,) = await wait_for(
            lambda: stream_messages(js, "ORDER", "crossdock.order.exception_raised.v1"),
            lambda found: len(found) == 1,
        )
        (cleared,) = await wait_for(
            lambda: stream_messages(js, "ORDER", "crossdock.order.exception_cleared.v1"),
            lambda found: len(found) == 1,
        )
        assert raised.headers["ce-subject"] == cleared.headers["ce-subject"] == order_id
        opened = order_events_pb2.OrderExceptionRaised.FromString(raised.data)
        closed = order_events_pb2.OrderExceptionCleared.FromString(cleared.data)
        assert (opened.order_id, opened.partner_id, opened.episode, opened.reason) == (
            order_id,
            PARTNER,
            1,
            stuck.exception_reason,
        )
        assert opened.step == S.FULFILLMENT_STEP_AWAIT_PICK
        assert (closed.order_id, closed.episode, closed.clearance) == (
            order_id,
            1,
            order_events_pb2.ORDER_EXCEPTION_CLEARANCE_RETRIED,
        )


def _violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    status = status_from_error(error)
    assert status is not None
    (bad_request,) = details_of(status, error_details_pb2.BadRequest)
    return {v.field: v.reason for v in bad_request.field_violations}


def _inactive_item(sku: str) -> inv_svc.ItemInput:
    return item_input(sku, active=False)
