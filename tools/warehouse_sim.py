"""A warehouse simulator: confirms open pick tasks through inventory's public gRPC API.

    python -m tools.warehouse_sim --inventory 127.0.0.1:50051 [--delay 0.5] [--short-rate 0.1]
        [--seed 7] [--location WH-EAST] [--poll 0.5]

It lives in tools/, not services/, because it is a stand-in for a real WMS floor: product code
never imports it, and it uses nothing but the contracts and the kit's client channel, exactly
like an external warehouse system would. Local runs and e2e tests start it next to the mesh.

Each open task is confirmed once, `delay` seconds after the simulator first saw it. With
probability `short_rate` per line, a random 1..quantity units are reported short. A seeded
`random.Random` makes a run reproducible.

Inventory may change a task between listing and confirming, as it would under a real floor: a
withdrawn (cancelled) task is dropped and never confirmed; an amended one (part of its
reservation released) is re-read and its current lines are confirmed instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass

import grpc
from crossdock.inventory.v1 import inventory_pb2 as inv
from crossdock.inventory.v1 import inventory_service_pb2 as svc
from crossdock.inventory.v1 import inventory_service_pb2_grpc as svc_grpc

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


class WarehouseSimulator:
    """Polls ListPickTasks and answers each open task with ConfirmPick."""

    def __init__(self, stub: svc_grpc.InventoryServiceStub, settings: SimulatorSettings) -> None:
        self._stub = stub
        self.settings = settings
        self._random = random.Random(settings.seed)
        self._first_seen: dict[str, float] = {}
        self._done: set[str] = set()
        self.confirmed: list[svc.ConfirmPickResponse] = []

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

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set; transient gRPC errors are logged and retried."""
        while not stop.is_set():
            try:
                await self.step()
            except grpc.aio.AioRpcError as error:
                log.warning("inventory call failed: %s", error.code().name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.poll_seconds)


async def _main(args: argparse.Namespace) -> None:
    settings = SimulatorSettings(
        delay_seconds=args.delay,
        short_rate=args.short_rate,
        seed=args.seed,
        location_id=args.location,
        poll_seconds=args.poll,
    )
    channel = open_channel(args.inventory, default_timeout_seconds=5.0)
    stop = asyncio.Event()
    try:
        await WarehouseSimulator(svc_grpc.InventoryServiceStub(channel), settings).run(stop)
    finally:
        await channel.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", required=True, help="host:port of inventory gRPC")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before confirming")
    parser.add_argument("--short-rate", type=float, default=0.0, help="chance a line is short")
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible shorts")
    parser.add_argument("--location", default="", help="only this location's tasks")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between polls")
    logging.basicConfig(level=logging.INFO)
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
