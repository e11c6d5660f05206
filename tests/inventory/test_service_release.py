"""ReleaseReservation with lines (a partial release) through the real service, on SQLite and
PostgreSQL: what it holds afterwards, its pick task, its key, its errors, and its race with a
pick confirmation."""

from __future__ import annotations

import asyncio

import grpc
from crossdock.events.v1 import inventory_events_pb2 as inv_events
from crossdock.inventory.v1 import inventory_pb2 as inv
from crossdock.inventory.v1 import inventory_service_pb2 as svc
from google.rpc import error_details_pb2

from services.kit.grpc_errors import details_of, status_from_error
from tests.fixtures.catalog import EAST, seed
from tests.fixtures.events import stream_messages
from tests.fixtures.running import Inventory
from tests.fixtures.waiting import wait_for
from tests.inventory.service_support import (
    RELEASED,
    open_picks,
    order_id,
    position,
    release_to_warehouse,
    reserve_request,
)


def _release(
    reservation_id: str, *lines: tuple[int, str, int], key: str
) -> svc.ReleaseReservationRequest:
    return svc.ReleaseReservationRequest(
        reservation_id=reservation_id,
        reason="line cancelled",
        lines=[svc.ReserveLine(order_line_number=n, sku=sku, quantity=q) for n, sku, q in lines],
        idempotency_key=key,
    )


def _held(answer: svc.ReleaseReservationResponse) -> list[tuple[int, str, int]]:
    return [(x.order_line_number, x.sku, x.quantity) for x in answer.reservation.lines]


def _violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    status = status_from_error(error)
    assert status is not None
    (bad_request,) = details_of(status, error_details_pb2.BadRequest)
    return {v.field: v.description for v in bad_request.field_violations}


def _reason(error: grpc.aio.AioRpcError) -> str:
    status = status_from_error(error)
    assert status is not None
    (info,) = details_of(status, error_details_pb2.ErrorInfo)
    return str(info.reason)


async def _reserved(inventory: Inventory, n: int) -> str:
    """An order holding line 1 = 4 SKU-A and line 2 = 3 SKU-B at EAST, released to the floor."""
    answer = await inventory.stub.ReserveStock(
        reserve_request(order_id(n), EAST, [("SKU-A", 4), ("SKU-B", 3)], f"reserve-key-{n:04d}")
    )
    await release_to_warehouse(inventory, order_id(n), answer.reservation.reservation_id)
    return answer.reservation.reservation_id


async def test_a_partial_release_keeps_the_rest_and_amends_the_pick(inventory: Inventory) -> None:
    stub = inventory.stub
    await seed(stub, ["SKU-A", "SKU-B"], {("SKU-A", EAST): 10, ("SKU-B", EAST): 5})
    rid = await _reserved(inventory, 1)
    request = _release(rid, (1, "SKU-A", 1), (2, "SKU-B", 3), key="release-part-1")

    answer = await stub.ReleaseReservation(request)

    assert answer.reservation.status == inv.RESERVATION_STATUS_ACTIVE
    assert _held(answer) == [(1, "SKU-A", 3)]
    a, b = await position(inventory, "SKU-A", EAST), await position(inventory, "SKU-B", EAST)
    assert (a.quantity_on_hand, a.quantity_reserved, b.quantity_reserved) == (10, 3, 0)
    (task,) = await open_picks(inventory)
    assert [(x.order_line_number, x.quantity) for x in task.lines] == [(1, 3)]

    # The same key answers the same and changes nothing.
    again = await stub.ReleaseReservation(request)
    assert again == answer
    assert (await position(inventory, "SKU-A", EAST)).quantity_reserved == 3

    # The floor confirming what the task said before is refused precisely, not with a 500.
    stale = svc.ConfirmPickRequest(
        pick_id=task.pick_id,
        lines=[
            inv.PickConfirmationLine(order_line_number=1, sku="SKU-A", quantity_picked=4),
            inv.PickConfirmationLine(order_line_number=2, sku="SKU-B", quantity_picked=3),
        ],
    )
    try:
        await stub.ConfirmPick(stale)
    except grpc.aio.AioRpcError as error:
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert set(_violations(error)) == {"lines[0].quantity_short", "lines[1].order_line_number"}
    else:
        raise AssertionError("a stale confirmation was accepted")

    # Releasing the rest is the whole release as before: one event, nothing for the partial one.
    whole = await stub.ReleaseReservation(
        svc.ReleaseReservationRequest(reservation_id=rid, reason="order cancelled")
    )
    assert whole.reservation.status == inv.RESERVATION_STATUS_RELEASED
    assert _held(whole) == [(1, "SKU-A", 3)]
    released = await wait_for(
        lambda: stream_messages(inventory.nc.jetstream(), "INVENTORY", RELEASED),
        lambda e: len(e) >= 1,
    )
    # The relay publishes in outbox order, so a partial-release event would have come first.
    (message,) = [inv_events.ReservationReleased.FromString(m.data) for m in released]
    assert message.reservation.status == inv.RESERVATION_STATUS_RELEASED
    assert [(x.sku, x.quantity) for x in message.reservation.lines] == [("SKU-A", 3)]
    assert message.reason == "order cancelled"
    assert await open_picks(inventory) == []


async def test_bad_partial_releases_name_the_field(inventory: Inventory) -> None:
    stub = inventory.stub
    await seed(stub, ["SKU-A", "SKU-B"], {("SKU-A", EAST): 10, ("SKU-B", EAST): 5})
    rid = await _reserved(inventory, 2)

    async def refused(request: svc.ReleaseReservationRequest) -> grpc.aio.AioRpcError:
        try:
            await stub.ReleaseReservation(request)
        except grpc.aio.AioRpcError as error:
            return error
        raise AssertionError("the release was accepted")

    no_key = await refused(_release(rid, (1, "SKU-A", 1), key=""))
    assert no_key.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert list(_violations(no_key)) == ["idempotency_key"]

    too_much = await refused(
        _release(rid, (1, "SKU-A", 1), (3, "SKU-A", 1), (2, "SKU-B", 4), key="release-bad-1")
    )
    assert too_much.code() is grpc.StatusCode.INVALID_ARGUMENT
    violations = _violations(too_much)
    assert list(violations) == ["lines[1]", "lines[2]"]
    assert "holds 0 units of line 3" in violations["lines[1]"]
    assert "holds 3 units of line 2" in violations["lines[2]"]
    a, b = await position(inventory, "SKU-A", EAST), await position(inventory, "SKU-B", EAST)
    assert (a.quantity_reserved, b.quantity_reserved) == (4, 3)  # nothing half-written


async def test_a_picked_reservation_refuses_a_partial_release_like_a_whole_one(
    inventory: Inventory,
) -> None:
    stub = inventory.stub
    await seed(stub, ["SKU-A", "SKU-B"], {("SKU-A", EAST): 10, ("SKU-B", EAST): 5})
    rid = await _reserved(inventory, 3)
    (task,) = await open_picks(inventory)
    await stub.ConfirmPick(
        svc.ConfirmPickRequest(
            pick_id=task.pick_id,
            lines=[
                inv.PickConfirmationLine(order_line_number=1, sku="SKU-A", quantity_picked=4),
                inv.PickConfirmationLine(order_line_number=2, sku="SKU-B", quantity_picked=3),
            ],
        )
    )

    errors = []
    for request in (
        _release(rid, (1, "SKU-A", 1), key="release-late-1"),
        svc.ReleaseReservationRequest(reservation_id=rid),
    ):
        try:
            await stub.ReleaseReservation(request)
        except grpc.aio.AioRpcError as error:
            errors.append((error.code(), _reason(error)))
    assert errors == [(grpc.StatusCode.FAILED_PRECONDITION, "RESERVATION_NOT_ACTIVE")] * 2


async def test_a_confirmation_and_a_partial_release_racing_have_one_winner(
    inventory: Inventory,
) -> None:
    stub = inventory.stub
    rounds = 4
    await seed(stub, ["SKU-A", "SKU-B"], {("SKU-A", EAST): 40, ("SKU-B", EAST): 20})
    outcomes = []
    for n in range(rounds):
        rid = await _reserved(inventory, 10 + n)
        (task,) = [t for t in await open_picks(inventory) if t.reservation_id == rid]
        confirm = svc.ConfirmPickRequest(
            pick_id=task.pick_id,
            lines=[
                inv.PickConfirmationLine(order_line_number=1, sku="SKU-A", quantity_picked=4),
                inv.PickConfirmationLine(order_line_number=2, sku="SKU-B", quantity_picked=3),
            ],
        )
        partial = _release(rid, (1, "SKU-A", 1), key=f"race-release-{n}")
        confirmed, released = await asyncio.gather(
            stub.ConfirmPick(confirm), stub.ReleaseReservation(partial), return_exceptions=True
        )
        if isinstance(released, grpc.aio.AioRpcError):
            # The pick won: the release saw a consumed reservation.
            assert not isinstance(confirmed, BaseException)
            assert released.code() is grpc.StatusCode.FAILED_PRECONDITION
            outcomes.append("picked")
        else:
            # The release won: the confirmation no longer matches the amended task.
            assert isinstance(confirmed, grpc.aio.AioRpcError)
            assert confirmed.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert _held(released) == [(1, "SKU-A", 3), (2, "SKU-B", 3)]
            outcomes.append("released")

    picked, kept = outcomes.count("picked"), outcomes.count("released")
    a, b = await position(inventory, "SKU-A", EAST), await position(inventory, "SKU-B", EAST)
    # Each round either took its 4 + 3 units off the shelf, or still holds 3 + 3.
    assert (a.quantity_on_hand, a.quantity_reserved) == (40 - 4 * picked, 3 * kept)
    assert (b.quantity_on_hand, b.quantity_reserved) == (20 - 3 * picked, 3 * kept)
