"""Inventory through gRPC with real NATS, on SQLite files and PostgreSQL.

Each test starts the real service in-process (services.inventory.main.setup) on a free port and
checks state through RPCs and the events that reached JetStream.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from crossdock.events.v1 import inventory_events_pb2 as inv_events
from crossdock.events.v1 import order_events_pb2 as order_events
from crossdock.inventory.v1 import inventory_pb2 as inv
from crossdock.inventory.v1 import inventory_service_pb2 as svc
from google.rpc import error_details_pb2

from services.kit.grpc_errors import details_of, status_from_error
from tests.fixtures.catalog import EAST, WEST, item_input, seed
from tests.fixtures.events import publish_as_relay, stream_messages
from tests.fixtures.running import Inventory
from tests.fixtures.waiting import wait_for
from tests.inventory.service_support import (
    ADJUSTED,
    PICKED,
    RELEASED,
    RESERVED,
    order_id,
    position,
    reserve_request,
)


async def test_catalog_crud_and_pagination(inventory: Inventory) -> None:
    stub = inventory.stub
    for sku in ("SKU-A", "SKU-B", "SKU-C"):
        await stub.CreateItem(svc.CreateItemRequest(item=item_input(sku)))
    with pytest.raises(grpc.aio.AioRpcError) as duplicate:
        await stub.CreateItem(svc.CreateItemRequest(item=item_input("SKU-A")))
    assert duplicate.value.code() is grpc.StatusCode.ALREADY_EXISTS

    got = await stub.GetItem(svc.GetItemRequest(sku="SKU-B"))
    assert got.item.unit_price.units == 12 and got.item.unit_price.nanos == 500_000_000
    await stub.UpdateItem(svc.UpdateItemRequest(item=item_input("SKU-C", active=False)))

    first = await stub.ListItems(svc.ListItemsRequest(page_size=1))
    second = await stub.ListItems(
        svc.ListItemsRequest(page_size=1, page_token=first.next_page_token)
    )
    assert [i.sku for i in first.items] == ["SKU-A"]
    assert [i.sku for i in second.items] == ["SKU-B"]
    assert second.next_page_token == ""  # SKU-C is inactive and hidden by default
    everything = await stub.ListItems(svc.ListItemsRequest(include_inactive=True))
    assert [i.sku for i in everything.items] == ["SKU-A", "SKU-B", "SKU-C"]

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetItem(svc.GetItemRequest(sku="NOPE"))
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND


async def test_invalid_request_names_each_bad_field(inventory: Inventory) -> None:
    bad = svc.ReserveStockRequest(
        order_id="not-an-order",
        location_id=EAST,
        lines=[svc.ReserveLine(order_line_number=1, sku="SKU-A", quantity=0)],
        idempotency_key="key-00000001",
    )
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await inventory.stub.ReserveStock(bad)
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    status = status_from_error(error.value)
    assert status is not None
    (bad_request,) = details_of(status, error_details_pb2.BadRequest)
    fields = {v.field for v in bad_request.field_violations}
    assert {"order_id", "lines[0].quantity"} <= fields


async def test_reserve_is_idempotent_and_published_once(inventory: Inventory) -> None:
    stub = inventory.stub
    await seed(stub, ["SKU-A"], {("SKU-A", EAST): 10})
    request = reserve_request(order_id(1), EAST, [("SKU-A", 4)], "reserve-key-1")
    first = await stub.ReserveStock(request)
    again = await stub.ReserveStock(request)
    assert first.reservation.reservation_id == again.reservation.reservation_id
    assert first.reservation.status == inv.RESERVATION_STATUS_ACTIVE
    assert not first.shortfalls

    changed = reserve_request(order_id(1), EAST, [("SKU-A", 5)], "reserve-key-1")
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await stub.ReserveStock(changed)
    assert reused.value.code() is grpc.StatusCode.ALREADY_EXISTS

    found = await position(inventory, "SKU-A", EAST)
    assert (found.quantity_on_hand, found.quantity_reserved, found.quantity_available) == (10, 4, 6)
    events = await wait_for(
        lambda: stream_messages(inventory.nc.jetstream(), "INVENTORY", RESERVED),
        lambda e: len(e) >= 1,
    )
    await asyncio.sleep(0.3)  # give a (wrong) second publish the chance to show up
    events = await stream_messages(inventory.nc.jetstream(), "INVENTORY", RESERVED)
    assert len(events) == 1
    message = inv_events.StockReserved.FromString(events[0].data)
    assert message.reservation.reservation_id == first.reservation.reservation_id
    assert events[0].headers["ce-subject"] == first.reservation.reservation_id


async def test_availability_across_the_network_and_partial_policy(inventory: Inventory) -> None:
    stub = inventory.stub
    await seed(stub, ["SKU-A"], {("SKU-A", EAST): 3, ("SKU-A", WEST): 5})
    network = await stub.GetAvailability(svc.GetAvailabilityRequest(skus=["SKU-A"]))
    assert network.availability[0].quantity_available == 8
    east_only = await stub.GetAvailability(
        svc.GetAvailabilityRequest(skus=["SKU-A"], location_ids=[EAST])
    )
    assert east_only.availability[0].quantity_available == 3

    all_or_nothing = await stub.ReserveStock(
        reserve_request(order_id(2), EAST, [("SKU-A", 5)], "aon-key-0001")
    )
    assert not all_or_nothing.HasField("reservation")
    assert [(s.sku, s.quantity) for s in all_or_nothing.shortfalls] == [("SKU-A", 5)]
    partial = await stub.ReserveStock(
        reserve_request(order_id(2), EAST, [("SKU-A", 5)], "partial-key-1", partial=True)
    )
    assert partial.reservation.lines[0].quantity == 3
    assert [(s.sku, s.quantity) for s in partial.shortfalls] == [("SKU-A", 2)]


async def test_availability_with_items_marks_known_active_inactive_and_unknown_skus(
    inventory: Inventory,
) -> None:
    stub = inventory.stub
    await seed(stub, ["SKU-A", "SKU-OLD"], {("SKU-A", EAST): 3, ("SKU-OLD", WEST): 2})
    await stub.UpdateItem(svc.UpdateItemRequest(item=item_input("SKU-OLD", active=False)))
    skus = ["SKU-OLD", "SKU-NOPE", "SKU-A"]

    with_items = await stub.GetAvailability(
        svc.GetAvailabilityRequest(skus=skus, include_items=True)
    )
    assert with_items.items_included
    assert [(a.sku, a.item_known, a.item_active) for a in with_items.availability] == [
        ("SKU-OLD", True, False),
        ("SKU-NOPE", False, False),
        ("SKU-A", True, True),
    ]

    # The stock figures are the same with or without items; an unknown SKU has none.
    plain = await stub.GetAvailability(svc.GetAvailabilityRequest(skus=skus))
    assert not plain.items_included
    assert not any(a.item_known or a.item_active for a in plain.availability)

    def stock(answer: svc.GetAvailabilityResponse) -> list[tuple[str, int, list[str]]]:
        return [
            (a.sku, a.quantity_available, [p.location_id for p in a.positions])
            for a in answer.availability
        ]

    assert stock(with_items) == stock(plain)
    assert stock(plain) == [("SKU-OLD", 2, [WEST]), ("SKU-NOPE", 0, []), ("SKU-A", 3, [EAST])]

    # Each position answered is the whole position, as ListPositions gives it.
    await stub.ReserveStock(reserve_request(order_id(3), EAST, [("SKU-A", 1)], "items-key-01"))
    listed = await stub.ListPositions(svc.ListPositionsRequest())
    by_key = {(p.sku, p.location_id): p for p in listed.positions}
    assert by_key[("SKU-A", EAST)].quantity_reserved == 1
    for include_items in (True, False):
        answer = await stub.GetAvailability(
            svc.GetAvailabilityRequest(skus=skus, include_items=include_items)
        )
        answered = [p for a in answer.availability for p in a.positions]
        assert answered == [by_key[(p.sku, p.location_id)] for p in answered]
        assert len(answered) == 2


async def test_racing_reservations_for_the_last_unit_have_one_winner(
    inventory: Inventory,
) -> None:
    stub = inventory.stub
    await seed(stub, ["SKU-A"], {("SKU-A", EAST): 1})
    racers = 8
    answers = await asyncio.gather(
        *(
            stub.ReserveStock(
                reserve_request(order_id(100 + n), EAST, [("SKU-A", 1)], f"race-key-{n:04d}")
            )
            for n in range(racers)
        )
    )
    winners = [a for a in answers if a.HasField("reservation")]
    assert len(winners) == 1
    assert sum(1 for a in answers if a.shortfalls) == racers - 1
    found = await position(inventory, "SKU-A", EAST)
    assert (found.quantity_on_hand, found.quantity_reserved) == (1, 1)


async def test_release_event_creates_pick_and_short_pick_writes_off(inventory: Inventory) -> None:
    stub = inventory.stub
    await seed(stub, ["SKU-A"], {("SKU-A", EAST): 10})
    order = order_id(3)
    reserved = await stub.ReserveStock(reserve_request(order, EAST, [("SKU-A", 4)], "pick-key-01"))
    reservation_id = reserved.reservation.reservation_id
    await publish_as_relay(
        inventory.nc.jetstream(),
        order_events.OrderReleased(
            order_id=order, partner_id="p1", reservation_ids=[reservation_id]
        ),
        order,
    )

    async def open_picks() -> list[inv.PickTask]:
        answer = await stub.ListPickTasks(
            svc.ListPickTasksRequest(location_id=EAST, status=inv.PICK_STATUS_OPEN)
        )
        return list(answer.pick_tasks)

    tasks = await wait_for(open_picks, lambda t: len(t) == 1)
    assert [t.reservation_id for t in tasks] == [reservation_id]
    confirmation = svc.ConfirmPickRequest(
        pick_id=tasks[0].pick_id,
        lines=[
            inv.PickConfirmationLine(
                order_line_number=1, sku="SKU-A", quantity_picked=3, quantity_short=1
            )
        ],
    )
    confirmed = await stub.ConfirmPick(confirmation)
    assert confirmed.pick_task.status == inv.PICK_STATUS_COMPLETED
    await stub.ConfirmPick(confirmation)  # a retried confirmation is a no-op

    found = await position(inventory, "SKU-A", EAST)
    # 10 on hand - 3 picked - 1 written off; nothing reserved any more.
    assert (found.quantity_on_hand, found.quantity_reserved) == (6, 0)
    picked = await wait_for(
        lambda: stream_messages(inventory.nc.jetstream(), "INVENTORY", PICKED),
        lambda e: len(e) == 1,
    )
    message = inv_events.PickCompleted.FromString(picked[0].data)
    assert message.order_id == order and message.lines[0].quantity_short == 1
    assert picked[0].headers["x-correlation-id"]
    adjusted = await wait_for(
        lambda: stream_messages(inventory.nc.jetstream(), "INVENTORY", ADJUSTED),
        lambda e: len(e) == 1,
    )
    write_off = inv_events.StockAdjusted.FromString(adjusted[0].data)
    assert write_off.adjustment.quantity_delta == -1
    assert write_off.adjustment.reason == inv.ADJUSTMENT_REASON_SHRINKAGE


async def test_cancel_before_pick_releases_stock_and_withdraws_pick(inventory: Inventory) -> None:
    stub = inventory.stub
    await seed(stub, ["SKU-A"], {("SKU-A", EAST): 5})
    order = order_id(4)
    reserved = await stub.ReserveStock(reserve_request(order, EAST, [("SKU-A", 5)], "cancel-key1"))
    reservation_id = reserved.reservation.reservation_id
    await publish_as_relay(
        inventory.nc.jetstream(),
        order_events.OrderReleased(
            order_id=order, partner_id="p1", reservation_ids=[reservation_id]
        ),
        order,
    )
    await wait_for(
        lambda: stub.ListPickTasks(svc.ListPickTasksRequest(status=inv.PICK_STATUS_OPEN)),
        lambda answer: len(answer.pick_tasks) == 1,
    )
    await publish_as_relay(
        inventory.nc.jetstream(),
        order_events.OrderCancelled(order_id=order, partner_id="p1", reason="customer"),
        order,
    )
    found = await wait_for(
        lambda: position(inventory, "SKU-A", EAST), lambda p: p.quantity_reserved == 0
    )
    assert (found.quantity_on_hand, found.quantity_available) == (5, 5)
    cancelled = await stub.ListPickTasks(svc.ListPickTasksRequest(status=inv.PICK_STATUS_CANCELLED))
    assert [t.reservation_id for t in cancelled.pick_tasks] == [reservation_id]
    released = await wait_for(
        lambda: stream_messages(inventory.nc.jetstream(), "INVENTORY", RELEASED),
        lambda e: len(e) == 1,
    )
    message = inv_events.ReservationReleased.FromString(released[0].data)
    assert message.reservation.status == inv.RESERVATION_STATUS_RELEASED
    # Releasing again through the RPC is harmless and changes nothing.
    again = await stub.ReleaseReservation(
        svc.ReleaseReservationRequest(reservation_id=reservation_id, reason="retry")
    )
    assert again.reservation.status == inv.RESERVATION_STATUS_RELEASED


async def test_adjustments_never_go_below_reserved(inventory: Inventory) -> None:
    stub = inventory.stub
    await seed(stub, ["SKU-A"], {("SKU-A", WEST): 5})
    await stub.ReserveStock(reserve_request(order_id(5), WEST, [("SKU-A", 4)], "adjust-key-1"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.AdjustStock(
            svc.AdjustStockRequest(
                sku="SKU-A",
                location_id=WEST,
                quantity_delta=-2,
                reason=inv.ADJUSTMENT_REASON_DAMAGE,
                idempotency_key="adjust-damage-1",
            )
        )
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    found_request = svc.AdjustStockRequest(
        sku="SKU-A",
        location_id=WEST,
        quantity_delta=3,
        reason=inv.ADJUSTMENT_REASON_FOUND,
        idempotency_key="adjust-found-1",
    )
    first = await stub.AdjustStock(found_request)
    again = await stub.AdjustStock(found_request)
    assert first.adjustment.adjustment_id == again.adjustment.adjustment_id
    found = await position(inventory, "SKU-A", WEST)
    assert (found.quantity_on_hand, found.quantity_reserved) == (8, 4)
