"""carrier-adapter's background work: payload-log writes, retention sweeps, the sandbox pusher.

Connectors record payloads synchronously, mid-call; `PayloadBuffer` holds them and a periodic
flush writes them in one unit of work, so logging never adds a database round trip to a carrier
call. `Background` runs periodic jobs until shutdown, then runs their final flushes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import Connection

from services.carrier_adapter.domain.payload_log import RawPayload, RetentionPolicy
from services.carrier_adapter.store.payloads import append_payloads, sweep_payloads
from services.carrier_adapter.store.quotes import purge_expired_quotes
from services.kit.db import Database

__all__ = ["Background", "PayloadBuffer", "sweep"]

log = logging.getLogger(__name__)

# Beyond this many unwritten records (database down for long) the oldest are dropped: the log
# is for audit and debugging, and must never take the service's memory with it.
MAX_BUFFERED = 50_000


class PayloadBuffer:
    """A PayloadSink that keeps records until `flush` writes them."""

    def __init__(self) -> None:
        self._pending: list[RawPayload] = []
        self.dropped = 0

    def __call__(self, record: RawPayload) -> None:
        self._pending.append(record)
        if len(self._pending) > MAX_BUFFERED:
            del self._pending[0]
            self.dropped += 1

    async def flush(self, db: Database) -> int:
        batch, self._pending = self._pending, []
        if not batch:
            return 0
        try:
            await db.run(append_payloads, batch)
        except BaseException:
            self._pending[:0] = batch  # keep them for the next flush
            raise
        return len(batch)


def sweep(conn: Connection, policy: RetentionPolicy, now: datetime, quote_grace: timedelta) -> int:
    """One retention pass: the payload log's bounds, and quotes long past their expiry."""
    purge_expired_quotes(conn, now - quote_grace)
    return sweep_payloads(conn, policy, now)


class Background:
    def __init__(self) -> None:
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._finally: list[Callable[[], Awaitable[object]]] = []

    @property
    def stopping(self) -> asyncio.Event:
        return self._stopping

    def every(self, seconds: float, job: Callable[[], Awaitable[object]], name: str) -> None:
        """Run `job` every `seconds` until stop; a failing run is logged and retried next time."""

        async def loop() -> None:
            while not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), seconds)
                if self._stopping.is_set():
                    return
                try:
                    await job()
                except Exception:
                    log.exception("background job %s failed", name)

        self.spawn(loop(), name)

    def spawn(self, work: Awaitable[None], name: str) -> None:
        async def guarded() -> None:
            await work

        self._tasks.append(asyncio.create_task(guarded(), name=name))

    def at_stop(self, job: Callable[[], Awaitable[object]]) -> None:
        """Run `job` once after the loops ended (final flushes), in the order added."""
        self._finally.append(job)

    async def stop(self) -> None:
        self._stopping.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for job in self._finally:
            try:
                await job()
            except Exception:
                log.exception("final background job failed")
