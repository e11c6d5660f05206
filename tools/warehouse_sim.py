"""A warehouse simulator: confirms open pick tasks through inventory's public gRPC API, and
receives return parcels the carrier delivered to the dock.

    python -m tools.warehouse_sim --inventory 127.0.0.1:50051 [--delay 0.5] [--short-rate 0.1]
        [--seed 7] [--location WH-EAST] [--poll 0.5]
        [--order 127.0.0.1:50052 --shipment 127.0.0.1:50053] [--return-delay 1] [--damage-rate 0.1]

It lives in tools/, not services/, because it is a stand-in for a real WMS floor: product code
never imports it, and it uses nothing but the contracts and the kit's client channel, exactly
like an external warehouse system would. Local runs and e2e tests start it next to the mesh.

Each open task is confirmed once, `delay` seconds after the simulator first saw it. With
probability `short_rate` per line, a random 1..quantity units are reported short. A seeded
`random.Random` makes a run reproducible.

Inventory may change a task between listing and confirming, as it would under a real floor: a
withdrawn (cancelled) task is dropped and never confirmed; an amended one (part of its
reservation released) is re-read and its current lines are confirmed instead.

Returns (with `--order` and `--shipment`): the dock's expected receipts are the returns still
AUTHORIZED (order ListReturns); one is received once its return parcel is DELIVERED (shipment
ListShipments by return id) and `return_delay` seconds have passed since the simulator first saw
it delivered. The receipt is what the parcel holds: inventory ReceiveStock at the parcel's
location, source RETURN, source_reference = the return id, idempotency key `return-receipt-<return
id>`, one line per SKU (and lot). Each SKU arrives DAMAGED (non-sellable, with a reason) with
probability `damage_rate`, drawn from the seed, the return id and the SKU, so a restarted
simulator sends the very same receipt and inventory replays it instead of receiving twice. A
return received some other way (no longer AUTHORIZED) is left alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from crossdock.inventory.v1 import inventory_pb2 as inv
from crossdock.inventory.v1 import inventory_service_pb2 as svc
from crossdock.inventory.v1 import inventory_service_pb2_grpc as svc_grpc
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as order_svc
from crossdock.order.v1 import order_service_pb2_grpc as order_grpc
from crossdock.shipment.v1 import shipment_pb2
from crossdock.shipment.v1 import shipment_service_pb2 as shipment_svc
from crossdock.shipment.v1 import shipment_service_pb2_grpc as shipment_grpc

from services.kit import event_loop, gc_policy
from services.kit.client import open_channel

log = logging.getLogger("warehouse_sim")


@dataclass(frozen=True)
class SimulatorSettings:
    delay_seconds: float = 0.0
    short_rate: float = 0.0
    seed: int | None = None
    location_id: str = ""
    poll_seconds: float = 0.5
    call_timeout_seconds: float = 5.0
    return_delay_seconds: float = 0.0
    damage_rate: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.damage_rate <= 1.0:
            raise ValueError(f"damage_rate must be within 0..1 (got {self.damage_rate})")


DAMAGE_REASON = "damaged in return transit"


class WarehouseSimulator:
    """Polls ListPickTasks and answers each open task with ConfirmPick; given the order and
    shipment stubs, also receives delivered return parcels (`receive_returns`)."""

    def __init__(
        self,
        stub: svc_grpc.InventoryServiceStub,
        settings: SimulatorSettings,
        *,
        orders: order_grpc.OrderServiceAsyncStub | None = None,
        shipments: shipment_grpc.ShipmentServiceAsyncStub | None = None,
    ) -> None:
        self._stub = stub
        self.settings = settings
        self._random = random.Random(settings.seed)
        self._first_seen: dict[str, float] = {}
        self._done: set[str] = set()
        self.confirmed: list[svc.ConfirmPickResponse] = []
        self._orders = orders
        self._shipments = shipments
        # Damage draws depend on this, the return and the SKU only (see the module docstring).
        self._damage_salt = str(settings.seed) if settings.seed is not None else secrets.token_hex()
        self._delivered_seen: dict[str, float] = {}
        self._returns_done: set[str] = set()
        self.received: list[svc.ReceiveStockResponse] = []

    def plan(self, task: inv.PickTask) -> list[inv.PickConfirmationLine]:
        """What the floor 'found' for each line: everything, or a random shortfall."""
        lines = []
        for line in task.lines:
            short = 0
            if self._random.random() < self.settings.short_rate:
                short = self._random.randint(1, line.quantity)
            lines.append(
                inv.PickConfirmationLine(
                    order_line_number=line.order_line_number,
                    sku=line.sku,
                    quantity_picked=line.quantity - short,
                    quantity_short=short,
                )
            )
        return lines

    async def step(self) -> int:
        """One poll: confirm every open task whose delay has passed; returns how many."""
        confirmed = 0
        token = ""
        while True:
            answer = await self._stub.ListPickTasks(
                svc.ListPickTasksRequest(
                    location_id=self.settings.location_id,
                    status=inv.PICK_STATUS_OPEN,
                    page_size=100,
                    page_token=token,
                ),
                timeout=self.settings.call_timeout_seconds,
            )
            now = time.monotonic()
            for task in answer.pick_tasks:
                # Only open tasks are asked for; a withdrawn one is never confirmed regardless.
                if task.pick_id in self._done or task.status != inv.PICK_STATUS_OPEN:
                    continue
                seen = self._first_seen.setdefault(task.pick_id, now)
                if now - seen < self.settings.delay_seconds:
                    continue
                if await self._confirm(task):
                    confirmed += 1
            token = answer.next_page_token
            if not token:
                return confirmed

    async def _confirm(self, task: inv.PickTask) -> bool:
        """Confirm `task` as it is now; False when it was withdrawn before we could."""
        # Each re-read follows an amendment, which only ever shrinks a task, so this ends.
        while True:
            request = svc.ConfirmPickRequest(pick_id=task.pick_id, lines=self.plan(task))
            try:
                response = await self._stub.ConfirmPick(
                    request, timeout=self.settings.call_timeout_seconds
                )
            except grpc.aio.AioRpcError as error:
                # Cancelled meanwhile (order cancelled): a real floor would just drop the task.
                if error.code() is grpc.StatusCode.FAILED_PRECONDITION:
                    self._done.add(task.pick_id)
                    return False
                if error.code() is not grpc.StatusCode.INVALID_ARGUMENT:
                    raise
                current = await self._open_task(task)
                if current is None:
                    self._done.add(task.pick_id)
                    return False
                if list(current.lines) == list(task.lines):
                    raise  # not a stale task: the confirmation itself is wrong
                log.info("pick %s was amended; confirming its current lines", task.pick_id)
                task = current
                continue
            self._done.add(task.pick_id)
            self.confirmed.append(response)
            log.info("confirmed pick %s for order %s", task.pick_id, task.order_id)
            return True

    async def _open_task(self, task: inv.PickTask) -> inv.PickTask | None:
        """The task as inventory has it now, if it is still open (there is no GetPickTask)."""
        token = ""
        while True:
            answer = await self._stub.ListPickTasks(
                svc.ListPickTasksRequest(
                    location_id=task.location_id,
                    status=inv.PICK_STATUS_OPEN,
                    page_size=100,
                    page_token=token,
                ),
                timeout=self.settings.call_timeout_seconds,
            )
            for candidate in answer.pick_tasks:
                if candidate.pick_id == task.pick_id:
                    return candidate
            token = answer.next_page_token
            if not token:
                return None

    # -- returns -------------------------------------------------------------------------------

    @property
    def receives_returns(self) -> bool:
        return self._orders is not None and self._shipments is not None

    def damaged(self, return_id: str, sku: str) -> bool:
        """Whether the SKU's units of this return arrive damaged (stable across restarts)."""
        draw = random.Random(f"{self._damage_salt}/{return_id}/{sku}").random()
        return draw < self.settings.damage_rate

    async def receive_returns(self) -> int:
        """One poll of the dock: receive every expected return whose parcel was delivered at
        least `return_delay` seconds ago; returns how many were received."""
        if not self.receives_returns:
            return 0
        received = 0
        async for order_return in self._expected_returns():
            return_id = order_return.return_id
            location = self.settings.location_id
            if return_id in self._returns_done or (
                location and order_return.return_location_id != location
            ):
                continue
            parcel = await self._delivered_parcel(return_id)
            if parcel is None:
                continue
            seen = self._delivered_seen.setdefault(return_id, time.monotonic())
            if time.monotonic() - seen < self.settings.return_delay_seconds:
                continue
            if await self._receive(return_id, parcel):
                received += 1
        return received

    async def _expected_returns(self) -> AsyncIterator[order_pb2.Return]:
        """Every return still AUTHORIZED: the goods the dock expects."""
        assert self._orders is not None
        token = ""
        while True:
            answer = await self._orders.ListReturns(
                order_svc.ListReturnsRequest(
                    status=order_pb2.RETURN_STATUS_AUTHORIZED, page_size=100, page_token=token
                ),
                timeout=self.settings.call_timeout_seconds,
            )
            for order_return in answer.returns:
                yield order_return
            token = answer.next_page_token
            if not token:
                return

    async def _delivered_parcel(self, return_id: str) -> shipment_pb2.Shipment | None:
        """The return's parcel once the carrier delivered it to the warehouse."""
        assert self._shipments is not None
        answer = await self._shipments.ListShipments(
            shipment_svc.ListShipmentsRequest(
                kind=shipment_pb2.SHIPMENT_KIND_RETURN,
                return_id=return_id,
                status=shipment_pb2.SHIPMENT_STATUS_DELIVERED,
                page_size=1,
            ),
            timeout=self.settings.call_timeout_seconds,
        )
        return answer.shipments[0] if answer.shipments else None

    def receipt_lines(
        self, return_id: str, parcel: shipment_pb2.Shipment
    ) -> list[svc.ReceiptLineInput]:
        """What the floor found in the parcel: one line per SKU (and lot), sellable or damaged."""
        units: dict[tuple[str, str], int] = {}
        for package in parcel.packages:
            for item in package.items:
                key = (item.sku, item.lot)
                units[key] = units.get(key, 0) + item.quantity
        lines = []
        for (sku, lot), quantity in sorted(units.items()):
            damaged = self.damaged(return_id, sku)
            lines.append(
                svc.ReceiptLineInput(
                    sku=sku,
                    quantity=quantity,
                    lot=lot,
                    condition=inv.STOCK_CONDITION_DAMAGED
                    if damaged
                    else inv.STOCK_CONDITION_SELLABLE,
                    reason=DAMAGE_REASON if damaged else "",
                )
            )
        return lines

    async def _receive(self, return_id: str, parcel: shipment_pb2.Shipment) -> bool:
        lines = self.receipt_lines(return_id, parcel)
        if not lines:
            self._returns_done.add(return_id)
            return False
        request = svc.ReceiveStockRequest(
            location_id=parcel.location_id,
            source=inv.RECEIPT_SOURCE_RETURN,
            source_reference=return_id,
            lines=lines,
            idempotency_key=f"return-receipt-{return_id}",
        )
        try:
            response = await self._stub.ReceiveStock(
                request, timeout=self.settings.call_timeout_seconds
            )
        except grpc.aio.AioRpcError as error:
            # The key received this return already, from another draw (a restart without seed).
            if error.code() is grpc.StatusCode.ALREADY_EXISTS:
                self._returns_done.add(return_id)
                return False
            raise
        self._returns_done.add(return_id)
        self.received.append(response)
        log.info("received return %s (parcel %s)", return_id, parcel.shipment_id)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set; transient gRPC errors are logged and retried."""
        while not stop.is_set():
            try:
                await self.step()
            except grpc.aio.AioRpcError as error:
                log.warning("inventory call failed: %s", error.code().name)
            try:
                await self.receive_returns()
            except grpc.aio.AioRpcError as error:
                log.warning("receiving returns failed: %s", error.code().name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.poll_seconds)


async def _main(args: argparse.Namespace) -> None:
    settings = SimulatorSettings(
        delay_seconds=args.delay,
        short_rate=args.short_rate,
        seed=args.seed,
        location_id=args.location,
        poll_seconds=args.poll,
        return_delay_seconds=args.return_delay,
        damage_rate=args.damage_rate,
    )
    channel = open_channel(args.inventory, default_timeout_seconds=5.0)
    others = [
        open_channel(t, default_timeout_seconds=5.0) for t in (args.order, args.shipment) if t
    ]
    orders: order_grpc.OrderServiceAsyncStub | None = None
    shipments: shipment_grpc.ShipmentServiceAsyncStub | None = None
    if args.order and args.shipment:
        orders = order_grpc.OrderServiceStub(others[0])
        shipments = shipment_grpc.ShipmentServiceStub(others[1])
    stop = asyncio.Event()
    try:
        simulator = WarehouseSimulator(
            svc_grpc.InventoryServiceStub(channel), settings, orders=orders, shipments=shipments
        )
        gc_policy.settle_heap()
        await simulator.run(stop)
    finally:
        for other in others:
            await other.close(None)
        await channel.close()


def _rate(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within 0..1 (got {raw})")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", required=True, help="host:port of inventory gRPC")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before confirming")
    parser.add_argument("--short-rate", type=float, default=0.0, help="chance a line is short")
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible shorts")
    parser.add_argument("--location", default="", help="only this location's tasks")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between polls")
    parser.add_argument("--order", default="", help="host:port of order gRPC (returns)")
    parser.add_argument("--shipment", default="", help="host:port of shipment gRPC (returns)")
    parser.add_argument(
        "--return-delay", type=float, default=0.0, help="seconds from parcel delivery to receipt"
    )
    parser.add_argument(
        "--damage-rate", type=_rate, default=0.0, help="chance a returned SKU arrives damaged"
    )
    args = parser.parse_args()
    if bool(args.order) != bool(args.shipment):
        parser.error("--order and --shipment go together (both are needed to receive returns)")
    logging.basicConfig(level=logging.INFO)
    event_loop.run(_main(args))


if __name__ == "__main__":
    main()
