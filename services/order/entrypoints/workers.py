"""Order's background loops, each a kit PollingWorker.

- the saga command worker: leases due saga commands (kit `lease_due`, through the store), sends
  them (different orders' concurrently, one order's in queue order) and settles every answer in
  one transaction (app.saga_commands); woken after a commit that queued commands. CreateOrder
  hands it the commands it queued already leased (`send_now`): they are sent and settled the
  same way at once, without a round's claim transaction;
- the deadline sweeper: moves orders past their step deadline to EXCEPTION. Deadlines live in an
  indexed column (orders.step_deadline), so one cheap query per interval finds the overdue
  orders; each is ticked in its own unit of work.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Sequence

from services.kit.clock import Clock
from services.kit.uow import UnitsOfWork
from services.kit.workers import PollingWorker
from services.order.adapters.store import repository as repo
from services.order.app import saga_commands, transitions
from services.order.app.saga_commands import SagaClients
from services.order.domain import FulfillmentSaga

log = logging.getLogger(__name__)


class CommandWorker:
    """One worker per process: claim (lease) due commands, send them, settle the answers.

    A round is one transaction to claim, the sends (up to `send_concurrency` orders at once, one
    order's commands in queue order), and one transaction to settle every answer.
    """

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
        send_concurrency: int = 32,
    ) -> None:
        if send_concurrency < 1:
            raise ValueError("send_concurrency must be at least 1")
        self._units = units
        self._saga = saga
        self._clients = clients
        self._clock = clock
        self._batch_size = batch_size
        self._max_backoff = max_backoff
        self._lease_seconds = lease_seconds
        self._send_concurrency = send_concurrency
        self._sending_at_once: set[asyncio.Task[None]] = set()
        # Orders sent to at once through `send_now`, bounded like a round's.
        self._at_once_slots = asyncio.Semaphore(send_concurrency)
        # The context `send_now`'s tasks run in, like the rounds: not the one of the call that
        # hands the commands over, whose deadline would bound the sends and whose correlation
        # id and trace would tag them.
        self._context = contextvars.copy_context()
        # No drain timeout: the sends in hand finish and are settled, so no answer is left behind.
        self.worker = PollingWorker(
            "order-saga-commands", self.run_once, interval=poll_interval, max_backoff=max_backoff
        )

    @property
    def lease_seconds(self) -> float:
        """How long a claimed command is the worker's alone (and a command sent at once)."""
        return self._lease_seconds

    def start(self) -> None:
        self.worker.start()

    def wake(self) -> None:
        """Run now (called after a commit that queued commands)."""
        self.worker.wake()

    def send_now(self, queued: Sequence[repo.QueuedCommand]) -> None:
        """Send commands a unit of work has just queued leased to this worker (CreateOrder's
        reservations, `lease_seconds`) and settle their answers, in a task of their own.

        The same sends and settle as a round's, without the round's claim transaction and
        wake-up. A command not sent (stopping) or not settled (a crash) is taken by a round
        when its lease runs out, as a claimed one would be.
        """
        if not queued:
            return
        task = asyncio.get_running_loop().create_task(
            self._send_at_once(list(queued)), context=self._context.copy()
        )
        self._sending_at_once.add(task)
        task.add_done_callback(self._sending_at_once.discard)

    async def drain_sends(self) -> None:
        """Wait until the commands handed to `send_now` are sent and settled."""
        while self._sending_at_once:
            await asyncio.gather(*self._sending_at_once)

    async def stop(self) -> None:
        """Send nothing new, settle the answers in hand, then stop."""
        await self.worker.stop()
        await self.drain_sends()

    async def run_once(self) -> int:
        """Send every due command once and settle the answers; returns how many were claimed.

        A command not sent (stopping, or behind an unexpected failure of its order) stays leased
        and goes again when its lease runs out. An unexpected send failure is raised after the
        answers in hand are settled, so the worker backs off as before.
        """
        due = await self._units.run(
            saga_commands.claim_due_commands, self._clock(), self._batch_size, self._lease_seconds
        )
        if not due:
            return 0
        await self._send_and_settle(due)
        return len(due)

    async def _send_at_once(self, queued: list[repo.QueuedCommand]) -> None:
        try:
            async with self._at_once_slots:
                await self._send_and_settle(queued)
        except Exception:
            # Nothing to back off from here: the commands left unsent stay leased.
            log.exception("sending saga commands at once failed; they go again after their lease")

    async def _send_and_settle(self, due: Sequence[repo.QueuedCommand]) -> None:
        """Send leased commands and settle every answer in one transaction; an unexpected send
        failure is raised after the answers in hand are settled."""
        sends = await saga_commands.send_commands(
            self._clients,
            due,
            concurrency=self._send_concurrency,
            stopping=lambda: self.worker.stopping,
            max_backoff=self._max_backoff,
        )
        if sends.sent:
            settle = saga_commands.settle_round(self._saga, self._clock, sends.sent)
            for result in await self._units.run_batch(settle, sends.sent):
                if not result.ok:
                    # Rolled back alone; the command stays leased and is sent again later.
                    log.error(
                        "settling saga command %s (%s) of order %s failed",
                        result.item.queued.id,
                        type(result.item.queued.command).__name__,
                        result.item.queued.order_id,
                        exc_info=result.error,
                    )
        if len(sends.errors) == 1:
            raise sends.errors[0]
        if sends.errors:
            raise ExceptionGroup("saga commands failed to send", sends.errors)


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
