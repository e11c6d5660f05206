"""Order's background loops, each a kit PollingWorker.

- the saga command worker: leases due saga commands (kit `lease_due`, through the store) and
  sends them one by one, in queue order (app.saga_commands); woken after a commit that queued
  commands;
- the deadline sweeper: moves orders past their step deadline to EXCEPTION. Deadlines live in an
  indexed column (orders.step_deadline), so one cheap query per interval finds the overdue
  orders; each is ticked in its own unit of work.
"""

from __future__ import annotations

from services.kit.clock import Clock
from services.kit.uow import UnitsOfWork
from services.kit.workers import PollingWorker
from services.order.app import saga_commands, transitions
from services.order.app.saga_commands import SagaClients
from services.order.domain import FulfillmentSaga


class CommandWorker:
    """One worker per process: claim (lease) due commands, execute them in order, settle each."""

    def __init__(
        self,
        units: UnitsOfWork,
        saga: FulfillmentSaga,
        clients: SagaClients,
        clock: Clock,
        *,
        poll_interval: float = 0.5,
        batch_size: int = 50,
        max_backoff: float = 30.0,
        lease_seconds: float = 60.0,
    ) -> None:
        self._units = units
        self._saga = saga
        self._clients = clients
        self._clock = clock
        self._batch_size = batch_size
        self._max_backoff = max_backoff
        self._lease_seconds = lease_seconds
        # No drain timeout: the command in hand finishes, so its answer is not left unsettled.
        self.worker = PollingWorker(
            "order-saga-commands", self.run_once, interval=poll_interval, max_backoff=max_backoff
        )

    def start(self) -> None:
        self.worker.start()

    def wake(self) -> None:
        """Run now (called after a commit that queued commands)."""
        self.worker.wake()

    async def stop(self) -> None:
        """Finish the command in hand, then stop."""
        await self.worker.stop()

    async def run_once(self) -> int:
        """Execute every due command once; returns how many were claimed."""
        due = await self._units.run(
            saga_commands.claim_due_commands, self._clock(), self._batch_size, self._lease_seconds
        )
        for queued in due:
            if self.worker.stopping:
                break
            await saga_commands.execute_command(
                self._units,
                self._clients,
                self._saga,
                queued,
                self._clock,
                max_backoff=self._max_backoff,
            )
        return len(due)


class DeadlineSweeper:
    """Ticks every overdue order once per interval."""

    def __init__(
        self, units: UnitsOfWork, saga: FulfillmentSaga, clock: Clock, *, interval: float = 5.0
    ) -> None:
        self._units = units
        self._saga = saga
        self._clock = clock
        self.worker = PollingWorker("order-deadline-sweeper", self.sweep, interval=interval)

    def start(self) -> None:
        self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop()

    async def sweep(self) -> int:
        """Tick every overdue order once; returns how many moved to EXCEPTION."""
        now = self._clock()
        moved = 0
        for order_id in await self._units.run(transitions.overdue_order_ids, now):
            if await self._units.run(transitions.tick_overdue_order, self._saga, order_id, now):
                moved += 1
        return moved
