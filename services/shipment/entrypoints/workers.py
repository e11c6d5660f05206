"""The shipment worker: packs queued picks into shipments, books their labels, and voids the
labels of cancelled shipments.

- Hand-over: a consumer queues a pick (or a return's units) already leased to this worker
  (`hand_over_lease`) and hands it over after its commit (`pack_now`); the worker packs it and
  books the label of the shipment it became at once, in a task of its own, without a claim
  transaction. The shipment is created with its label leased to the packer, so booking needs
  no claim either.
- Rounds (a kit PollingWorker): one transaction leases every kind of due work (services.kit
  leases): picks that were not handed over (another replica's, a crashed process's whose lease
  ran out, retries), label bookings to retry, label voids. Several replicas never pack or book
  the same thing at once, and a crashed worker's lease runs out for another to take over.

Both call inventory and carrier-adapter (app.booking), at most `concurrency` jobs at a time
between them.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from services.kit.workers import PollingWorker
from services.shipment.app import booking as steps
from services.shipment.app import shipments
from services.shipment.domain.shipment import PendingPick

T = TypeVar("T")

log = logging.getLogger(__name__)


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
        # Picks handed over and not finished: by id (a consumer batch re-run after a rolled
        # back savepoint hands the same pick over twice), and their tasks (drained at stop).
        self._picks_in_hand: set[str] = set()
        self._handed_over: set[asyncio.Task[None]] = set()
        # The context handed-over picks are packed in, like the rounds': not the consumer's,
        # whose correlation id and trace would tag the calls.
        self._context = contextvars.copy_context()

    def start(self) -> None:
        self._worker.start()

    async def stop(self) -> None:
        """Take no more work, finish the work in hand (rounds' and handed over), then stop."""
        await self._worker.stop()
        while self._handed_over:
            await asyncio.gather(*self._handed_over)

    def wake(self) -> None:
        self._worker.wake()

    # -- hand-over -------------------------------------------------------------------------

    def hand_over_lease(self) -> float | None:
        """How long a pick queued for `pack_now` is leased to this worker; None once it is
        stopping (queue the pick due, for a round of this process or of the next)."""
        return None if self._worker.stopping else self._settings.lease_seconds

    def pack_now(self, pick: PendingPick) -> None:
        """Pack and book a pick a committed unit of work queued leased to this worker.

        A pick not packed (stopping, a crash) is taken by a round when its lease runs out.
        """
        if self._worker.stopping or pick.pick_id in self._picks_in_hand:
            return
        self._picks_in_hand.add(pick.pick_id)
        task = asyncio.get_running_loop().create_task(
            self._pack_handed_over(pick), context=self._context.copy()
        )
        self._handed_over.add(task)
        task.add_done_callback(self._handed_over.discard)

    async def _pack_handed_over(self, pick: PendingPick) -> None:
        try:
            async with self._slots:
                await steps.pack_and_book(self._booking, pick, self._settings.lease_seconds)
        except Exception:
            # Steps settle their own failures; this is a database outage: the lease runs out.
            log.exception("packing handed-over pick %s failed; a round takes it", pick.pick_id)
        finally:
            self._picks_in_hand.discard(pick.pick_id)

    # -- rounds ----------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Pack (and book) every due pick, book every due label, void every due label, once;
        returns how many were tried."""
        s, booking = self._settings, self._booking
        now = booking.clock().timestamp()
        due = await booking.units.run(shipments.take_due_work, now, s.batch_size, s.lease_seconds)
        await self._each(
            [
                *(steps.pack_and_book(booking, pick, s.lease_seconds) for pick in due.picks),
                *(steps.book_label(booking, shipment) for shipment in due.labels),
                *(steps.void_label(booking, shipment) for shipment in due.voids),
            ]
        )
        return len(due)

    async def _each(self, jobs: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
        async def bounded(job: Coroutine[Any, Any, T]) -> T:
            async with self._slots:
                return await job

        return await asyncio.gather(*(bounded(job) for job in jobs))
