"""carrier-adapter's background work, each loop a kit PollingWorker: the payload-log flush, the
retention sweep, the tracking poll, and (from adapters.carriers.sandbox) the sandbox pushers.

Each ticks once per interval, whatever it handled: the payload buffer is empty after a flush,
one sweep deletes all that is due, and POLL_BATCH_SIZE Track calls per carrier per
POLL_INTERVAL_SECONDS is the carrier's rate budget. `stop` ends the loops, lets running
bookings finish and be stored, then flushes the payload log one last time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

from services.carrier_adapter.adapters.reliability.clock import Clock
from services.carrier_adapter.adapters.store.payload_buffer import PayloadBuffer
from services.carrier_adapter.app.booking import LabelBooker
from services.carrier_adapter.app.polling import TrackingPoller
from services.carrier_adapter.app.retention import sweep_retention
from services.carrier_adapter.domain.payload_log import RetentionPolicy
from services.kit.uow import UnitsOfWork
from services.kit.workers import PollingWorker

__all__ = ["Workers"]


class Workers:
    def __init__(
        self,
        units: UnitsOfWork,
        clock: Clock,
        *,
        payloads: PayloadBuffer,
        payload_flush_interval: timedelta,
        retention: RetentionPolicy,
        retention_sweep_interval: timedelta,
        poller: TrackingPoller,
        poll_interval: timedelta,
        booker: LabelBooker,
        others: Sequence[PollingWorker] = (),
    ) -> None:
        self._booker = booker

        async def flush_payloads() -> int:
            await payloads.flush(units.db)
            return 0

        async def sweep() -> int:
            await units.run(sweep_retention, retention, clock.now())
            return 0

        async def poll() -> int:
            await poller.sweep(lambda: self._poll.stopping)
            return 0

        # The first flush and sweep come one interval after start, as the first poll does.
        flush_seconds = payload_flush_interval.total_seconds()
        self._payloads = PollingWorker(
            "payload log flush",
            flush_payloads,
            interval=flush_seconds,
            initial_delay=flush_seconds,
            at_stop=lambda: payloads.flush(units.db),
        )
        sweep_seconds = retention_sweep_interval.total_seconds()
        self._sweep = PollingWorker(
            "retention sweep", sweep, interval=sweep_seconds, initial_delay=sweep_seconds
        )
        poll_seconds = poll_interval.total_seconds()
        self._poll = PollingWorker(
            "tracking poller", poll, interval=poll_seconds, initial_delay=poll_seconds
        )
        self._loops = [self._sweep, self._poll, *others]

    def start(self) -> None:
        for worker in (self._payloads, *self._loops):
            worker.start()

    async def stop(self) -> None:
        """End the loops; let running bookings finish and store their labels; flush payloads."""
        await asyncio.gather(*(worker.stop() for worker in self._loops))
        await self._booker.drain()
        await self._payloads.stop()
