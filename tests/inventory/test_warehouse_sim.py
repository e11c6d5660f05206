"""The warehouse simulator (tools/warehouse_sim.py) against the real inventory service.

Inventory can change a pick task between the simulator's ListPickTasks and its ConfirmPick (an
order cancelled, or some of its lines). `_ChangedAfterListing` stages exactly that: it is the real
stub, except that the change runs right after the first listing returns.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from crossdock.inventory.v1 import inventory_pb2 as inv
from crossdock.inventory.v1 import inventory_service_pb2 as svc

from tests.fixtures.catalog import EAST, item_input, seed
from tests.fixtures.running import Inventory
from tests.inventory.service_support import (
    open_picks,
    order_id,
    position,
    release_to_warehouse,
    reserve_request,
)
from tools.warehouse_sim import SimulatorSettings, WarehouseSimulator


class _ChangedAfterListing:
    """The inventory stub, with `change` run once between the first listing and what follows."""

    def __init__(self, stub: Any, change: Callable[[], Awaitable[object]]) -> None:
        self._stub = stub
        self._change: Callable[[], Awaitable[object]] | None = change
        self.listings = 0

    async def ListPickTasks(self, request: Any, **kwargs: Any) -> Any:
        self.listings += 1
        answer = await self._stub.ListPickTasks(request, **kwargs)
        change, self._change = self._change, None
        if change is not None:
            await change()
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stub, name)


async def _reserved_and_released(inventory: Inventory, n: int, quantity: int) -> str:
    answer = await inventory.stub.ReserveStock(
        reserve_request(order_id(n), EAST, [("SKU-A", quantity)], f"sim-key-{n:04d}")
    )
    reservation_id = answer.reservation.reservation_id
    await release_to_warehouse(inventory, order_id(n), reservation_id)
    return reservation_id


async def test_confirms_picks_with_seeded_shorts(inventory: Inventory) -> None:
    await seed(inventory.stub, ["SKU-A"], {("SKU-A", EAST): 50})
    for n in range(3):
        await _reserved_and_released(inventory, 200 + n, 5)
    simulator = WarehouseSimulator(inventory.stub, SimulatorSettings(short_rate=1.0, seed=7))
    assert await simulator.step() == 3
    assert await simulator.step() == 0  # nothing open is left, nothing is confirmed twice
    shorts = [line.quantity_short for r in simulator.confirmed for line in r.lines]
    assert all(1 <= short <= 5 for short in shorts)
    found = await position(inventory, "SKU-A", EAST)
    assert found.quantity_reserved == 0
    assert found.quantity_on_hand == 50 - 15  # picked and written-off units both left the books


async def test_never_confirms_a_task_withdrawn_after_listing(inventory: Inventory) -> None:
    await seed(inventory.stub, ["SKU-A"], {("SKU-A", EAST): 10})
    reservation_id = await _reserved_and_released(inventory, 300, 4)

    async def cancel_the_order() -> None:
        await inventory.stub.ReleaseReservation(
            svc.ReleaseReservationRequest(reservation_id=reservation_id, reason="cancelled")
        )

    stub = _ChangedAfterListing(inventory.stub, cancel_the_order)
    simulator = WarehouseSimulator(stub, SimulatorSettings())  # type: ignore[arg-type]

    assert await simulator.step() == 0
    assert await simulator.step() == 0
    assert simulator.confirmed == []
    cancelled = await inventory.stub.ListPickTasks(
        svc.ListPickTasksRequest(status=inv.PICK_STATUS_CANCELLED)
    )
    assert [t.reservation_id for t in cancelled.pick_tasks] == [reservation_id]
    found = await position(inventory, "SKU-A", EAST)
    assert (found.quantity_on_hand, found.quantity_reserved) == (10, 0)


async def test_confirms_the_current_lines_of_a_task_amended_after_listing(
    inventory: Inventory,
) -> None:
    await seed(inventory.stub, ["SKU-A"], {("SKU-A", EAST): 10})
    reservation_id = await _reserved_and_released(inventory, 400, 5)

    async def cancel_two_units() -> None:
        await inventory.stub.ReleaseReservation(
            svc.ReleaseReservationRequest(
                reservation_id=reservation_id,
                reason="line reduced",
                lines=[svc.ReserveLine(order_line_number=1, sku="SKU-A", quantity=2)],
                idempotency_key="reduce-line-1",
            )
        )

    stub = _ChangedAfterListing(inventory.stub, cancel_two_units)
    simulator = WarehouseSimulator(stub, SimulatorSettings())  # type: ignore[arg-type]

    assert await simulator.step() == 1

    (confirmed,) = simulator.confirmed
    assert confirmed.pick_task.status == inv.PICK_STATUS_COMPLETED
    assert [(x.quantity_picked, x.quantity_short) for x in confirmed.lines] == [(3, 0)]
    assert stub.listings == 2  # the step's listing, then one re-read of the amended task
    found = await position(inventory, "SKU-A", EAST)
    assert (found.quantity_on_hand, found.quantity_reserved) == (7, 0)


async def test_a_confirmation_wrong_in_itself_is_not_retried(inventory: Inventory) -> None:
    """The simulator records no lots, so a lot-controlled pick is refused as it stands."""
    await seed(inventory.stub, [], {})
    await inventory.stub.CreateItem(
        svc.CreateItemRequest(item=item_input("SKU-L", lot_controlled=True))
    )
    await inventory.stub.ReceiveStock(
        svc.ReceiveStockRequest(
            location_id=EAST,
            source=inv.RECEIPT_SOURCE_PURCHASE_ORDER,
            source_reference="PO-L",
            lines=[svc.ReceiptLineInput(sku="SKU-L", quantity=2, lot="LOT-1")],
            idempotency_key="receipt-lot-1",
        )
    )
    answer = await inventory.stub.ReserveStock(
        reserve_request(order_id(500), EAST, [("SKU-L", 1)], "sim-key-lot1")
    )
    await release_to_warehouse(inventory, order_id(500), answer.reservation.reservation_id)
    simulator = WarehouseSimulator(inventory.stub, SimulatorSettings())

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await simulator.step()

    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert len(await open_picks(inventory)) == 1
