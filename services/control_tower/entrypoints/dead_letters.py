"""The dead letters' watcher: the DLQ stream, polled, kept in step with the workbench.

Dead letters are not events of the catalog: each consumer writes its own to the DLQ stream
(`crossdock.dlq.<durable>`). Every `interval` seconds the watcher lists them (read-only: the
tower's NATS user may read DLQ messages) and, in one transaction, opens an exception per new
letter and closes those whose letter is gone (redriven or discarded, by anyone).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from nats.js import JetStreamContext

from services.control_tower.adapters import exception_contracts
from services.control_tower.app import workbench
from services.kit.dlq import list_dead_letters
from services.kit.uow import UnitsOfWork
from services.kit.workers import PollingWorker

log = logging.getLogger(__name__)


class DeadLetterWatcher:
    """Polls the DLQ stream (a kit PollingWorker)."""

    def __init__(
        self,
        units: UnitsOfWork,
        js: JetStreamContext,
        *,
        interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._units = units
        self._js = js
        self._clock = clock
        self.worker = PollingWorker("control-tower-dead-letters", self.run_once, interval=interval)

    async def run_once(self) -> int:
        """One look at the whole DLQ; 0, so the worker sleeps its interval in between."""
        letters = await list_dead_letters(self._js)
        signals = [exception_contracts.letter_signal(letter) for letter in letters]
        await self._units.run(workbench.sync_dead_letters, signals, self._clock())
        return 0

    def start(self) -> None:
        self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop()
