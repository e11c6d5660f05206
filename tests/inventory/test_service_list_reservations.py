"""ListReservations through gRPC on SQLite files and PostgreSQL: filters and keyset pages."""

from __future__ import annotations

import grpc
import pytest
from crossdock.inventory.v1 import inventory_pb2 as inv
from crossdock.inventory.v1 import inventory_service_pb2 as svc
from google.rpc import error_details_pb2

from services.kit.grpc_errors import details_of, status_from_error
from tests.fixtures.catalog import EAST, WEST, seed
from tests.fixtures.running import Inventory
from tests.inventory.service_support import order_id, reserve_request


async def _all(inventory: Inventory, request: svc.ListReservationsRequest) -> list[inv.Reservation]:
    """Every page of `request`'s answer, each page no bigger than asked."""
    found: list[inv.Reservation] = []
    while True:
        answer = await inventory.stub.ListReservations(request)
        assert len(answer.reservations) <= (request.page_size or 100)
        found += answer.reservations
        if not answer.next_page_token:
            return found
        request.page_token = answer.next_page_token


async def test_filters_and_pages(inventory: Inventory) -> None:
    stub = inventory.stub
    # SKU-A1 shares a prefix with SKU-A: the SKU filter matches whole SKUs only.
    # sku-a differs from SKU-A by case only (SQLite's LIKE would not tell them apart).
    stock = {
        ("SKU-A", EAST): 50,
        ("SKU-A1", EAST): 50,
        ("SKU-B", WEST): 50,
        ("SKU-A", WEST): 50,
        ("sku-a", EAST): 50,
    }
    await seed(stub, ["SKU-A", "SKU-A1", "SKU-B", "sku-a"], stock)
    made = []
    for n in range(1, 6):
        lines = [("SKU-A", 1), ("SKU-A1", 2)] if n % 2 else [("SKU-A1", 3)]
        answer = await stub.ReserveStock(reserve_request(order_id(n), EAST, lines, f"key-{n:04d}"))
        made.append(answer.reservation)
    west = await stub.ReserveStock(
        reserve_request(order_id(6), WEST, [("SKU-B", 4), ("SKU-A", 1)], "key-0006")
    )
    lower = await stub.ReserveStock(reserve_request(order_id(7), EAST, [("sku-a", 1)], "key-0007"))
    await stub.ReleaseReservation(
        svc.ReleaseReservationRequest(reservation_id=made[0].reservation_id, reason="cancelled")
    )

    everything = await _all(inventory, svc.ListReservationsRequest(page_size=2))
    assert [r.reservation_id for r in everything] == [
        *(r.reservation_id for r in made),
        west.reservation.reservation_id,
        lower.reservation.reservation_id,
    ]
    assert everything[1].order_id == order_id(2)
    assert [(x.sku, x.quantity) for x in everything[1].lines] == [("SKU-A1", 3)]
    assert everything[1].HasField("create_time")

    active = await _all(
        inventory, svc.ListReservationsRequest(status=inv.RESERVATION_STATUS_ACTIVE, page_size=1)
    )
    assert [r.order_id for r in active] == [order_id(n) for n in (2, 3, 4, 5, 6, 7)]
    assert all(r.status == inv.RESERVATION_STATUS_ACTIVE for r in active)

    holding_a = await _all(inventory, svc.ListReservationsRequest(sku="SKU-A"))
    assert [r.order_id for r in holding_a] == [order_id(n) for n in (1, 3, 5, 6)]
    # A page filtered by SKU may be short of page_size and still have a next one: every page
    # together is the same list.
    paged = await _all(inventory, svc.ListReservationsRequest(sku="SKU-A", page_size=2))
    assert [r.reservation_id for r in paged] == [r.reservation_id for r in holding_a]
    lower_only = await _all(inventory, svc.ListReservationsRequest(sku="sku-a"))
    assert [r.order_id for r in lower_only] == [order_id(7)]
    at_east = await _all(
        inventory,
        svc.ListReservationsRequest(
            sku="SKU-A", location_id=EAST, status=inv.RESERVATION_STATUS_ACTIVE
        ),
    )
    assert [r.order_id for r in at_east] == [order_id(3), order_id(5)]
    of_order = await _all(inventory, svc.ListReservationsRequest(order_id=order_id(4)))
    assert [r.reservation_id for r in of_order] == [made[3].reservation_id]
    assert await _all(inventory, svc.ListReservationsRequest(sku="SKU-NONE")) == []


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (svc.ListReservationsRequest(page_size=1001), "page_size"),
        (svc.ListReservationsRequest(order_id="order-1"), "order_id"),
        (svc.ListReservationsRequest(sku="bad sku"), "sku"),
        (svc.ListReservationsRequest(status=99), "status"),  # type: ignore[arg-type]
        (svc.ListReservationsRequest(page_token="not-a-token"), "page_token"),
    ],
)
async def test_bad_requests_name_the_field(
    inventory: Inventory, request_: svc.ListReservationsRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await inventory.stub.ListReservations(request_)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    status = status_from_error(refused.value)
    assert status is not None
    (bad_request,) = details_of(status, error_details_pb2.BadRequest)
    assert [v.field for v in bad_request.field_violations] == [field]
