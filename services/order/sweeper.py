"""The step-timeout sweeper: moves orders past their step deadline to EXCEPTION via `on_tick`.

Deadlines live in an indexed column (orders.step_deadline), so one cheap query per interval
finds the overdue orders; each is ticked in its own unit of work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection

from services.kit.db import Database
from services.order import flow
from services.order.domain import FulfillmentSaga
from services.order.store import repository as repo

log = logging.getLogger(__name__)


class DeadlineSweeper:
    def __init__(
        self,
        db: Database,
        saga: FulfillmentSaga,
        clock: Callable[[], datetime],
        *,
        interval: float = 5.0,
    ) -> None:
        self._db = db
        self._saga = saga
        self._clock = clock
        self._interval = interval
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="order-deadline-sweeper")

    async def stop(self) -> None:
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            await task

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.sweep()
            except Exception:
                log.exception("deadline sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)

    async def sweep(self) -> int:
        """Tick every overdue order once; returns how many moved to EXCEPTION."""
        now = self._clock()
        moved = 0
        for order_id in await self._db.run(repo.overdue_order_ids, now):
            if await flow.run_retrying(self._db, self._tick, order_id, now):
                moved += 1
        return moved

    def _tick(self, conn: Connection, order_id: str, now: datetime) -> bool:
        loaded = repo.get_order(conn, order_id)
        if loaded is None:
            return False
        result = self._saga.on_tick(loaded.order, now)
        flow.commit(conn, loaded, result, now)
        return result.changed
