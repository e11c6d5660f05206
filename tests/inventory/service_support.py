"""Helpers for the tests that drive the real inventory service over gRPC and JetStream."""

from __future__ import annotations

from crossdock.events.v1 import order_events_pb2 as order_events
from crossdock.inventory.v1 import inventory_pb2 as inv
from crossdock.inventory.v1 import inventory_service_pb2 as svc

from services.inventory.domain.ids import encode_crockford
from tests.fixtures.events import publish_as_relay
from tests.fixtures.running import Inventory
from tests.fixtures.waiting import wait_for

RESERVED = "crossdock.inventory.reserved.v1"
RELEASED = "crossdock.inventory.reservation_released.v1"
PICKED = "crossdock.inventory.pick_completed.v1"
ADJUSTED = "crossdock.inventory.adjusted.v1"
RECEIVED = "crossdock.inventory.received.v1"


def order_id(n: int) -> str:
    return f"ord_{encode_crockford(n)}"


async def position(service: Inventory, sku: str, location_id: str) -> inv.InventoryPosition:
    answer = await service.stub.ListPositions(
        svc.ListPositionsRequest(sku=sku, location_id=location_id)
    )
    (found,) = answer.positions
    return found


def reserve_request(
    order: str, location_id: str, lines: list[tuple[str, int]], key: str, partial: bool = False
) -> svc.ReserveStockRequest:
    return svc.ReserveStockRequest(
        order_id=order,
        location_id=location_id,
        lines=[
            svc.ReserveLine(order_line_number=n, sku=sku, quantity=qty)
            for n, (sku, qty) in enumerate(lines, start=1)
        ],
        policy=inv.RESERVATION_POLICY_PARTIAL if partial else inv.RESERVATION_POLICY_ALL_OR_NOTHING,
        idempotency_key=key,
    )


async def open_picks(service: Inventory) -> list[inv.PickTask]:
    answer = await service.stub.ListPickTasks(svc.ListPickTasksRequest(status=inv.PICK_STATUS_OPEN))
    return list(answer.pick_tasks)


async def release_to_warehouse(service: Inventory, order: str, *reservation_ids: str) -> None:
    """Publish the order's `released` event and wait until inventory made every pick task."""
    await publish_as_relay(
        service.nc.jetstream(),
        order_events.OrderReleased(
            order_id=order, partner_id="p1", reservation_ids=list(reservation_ids)
        ),
        order,
    )
    await wait_for(
        lambda: open_picks(service),
        lambda tasks: set(reservation_ids) <= {t.reservation_id for t in tasks},
    )
