"""The shipment worker: packs queued picks into shipments, books their labels, and voids the
labels of cancelled shipments.

One kit PollingWorker runs both steps: it takes due picks and due label bookings with a lease
(services.kit.leases), so several replicas never pack or book the same thing at once and a
crashed worker's lease runs out for another to take over; then it calls inventory and
carrier-adapter (app.booking), at most `concurrency` calls at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from services.kit.workers import PollingWorker
from services.shipment.app import booking as steps
from services.shipment.app import cancellation, shipments

T = TypeVar("T")


@dataclass(frozen=True)
class WorkerSettings:
    poll_interval_seconds: float = 0.5
    batch_size: int = 50
    concurrency: int = 16
    lease_seconds: float = 120.0


class ShipmentWorker:
    def __init__(self, booking: steps.Booking, settings: WorkerSettings) -> None:
        self._booking = booking
        self._settings = settings
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._worker = PollingWorker(
            "shipment-worker", self.run_once, interval=settings.poll_interval_seconds
        )

    def start(self) -> None:
        self._worker.start()

    async def stop(self) -> None:
        """Finish the work in hand, then stop."""
        await self._worker.stop()

    def wake(self) -> None:
        self._worker.wake()

    async def run_once(self) -> int:
        """Pack every due pick, then book every due label, once; returns how many were tried."""
        s, units = self._settings, self._booking.units
        now = self._booking.clock().timestamp()
        picks = await units.run(shipments.take_due_picks, now, s.batch_size, s.lease_seconds)
        packed = await self._each(steps.pack_pick(self._booking, pick) for pick in picks)
        if any(packed):
            self.wake()  # their labels are due now
        due = await units.run(shipments.take_due_labels, now, s.batch_size, s.lease_seconds)
        await self._each(steps.book_label(self._booking, shipment) for shipment in due)
        voids = await units.run(cancellation.take_due_voids, now, s.batch_size, s.lease_seconds)
        await self._each(steps.void_label(self._booking, shipment) for shipment in voids)
        return len(picks) + len(due) + len(voids)

    async def _each(self, jobs: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
        async def bounded(job: Coroutine[Any, Any, T]) -> T:
            async with self._slots:
                return await job

        return await asyncio.gather(*(bounded(job) for job in jobs))
