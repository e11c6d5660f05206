"""The one polling worker every background loop runs on.

A worker repeats one async job, `work() -> int` (how many items it handled):
- it runs again at once while the job finds work, and sleeps `interval` when it finds none;
- `wake()` ends the sleep early (after a commit that queued work for it);
- a failing run is logged and the next one waits with exponential backoff and full jitter,
  capped at `max_backoff`, so a dead dependency is not hammered;
- `stop()` is a graceful drain: no new run starts, the run in hand finishes (up to
  `drain_timeout`, then it is cancelled), then the `at_stop` jobs run once (final flushes).

Jobs that loop over many items check `worker.stopping` between items to end a drain early.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

__all__ = ["PollingWorker", "backoff_delay"]


def backoff_delay(failures: int, *, base: float, cap: float) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**(failures - 1))]."""
    if failures <= 0:
        return 0.0
    return random.uniform(0, min(cap, base * 2 ** min(failures - 1, 32)))


class PollingWorker:
    """Runs `work` until stopped; see the module doc."""

    def __init__(
        self,
        name: str,
        work: Callable[[], Awaitable[int]],
        *,
        interval: float,
        max_backoff: float = 30.0,
        drain_timeout: float | None = None,
        at_stop: Callable[[], Awaitable[object]] | None = None,
        initial_delay: float = 0.0,
    ) -> None:
        if interval <= 0:
            raise ValueError("a polling interval must be positive")
        self.name = name
        self._work = work
        self.interval = interval
        self.max_backoff = max_backoff
        self._drain_timeout = drain_timeout
        self._at_stop = at_stop
        self._initial_delay = initial_delay
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.failures = 0  # consecutive failed runs

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        """Run now instead of at the end of the current sleep."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        """Let the run in hand finish, then run the final job; idempotent."""
        self._stopping.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), self._drain_timeout)
            except TimeoutError:
                log.warning(
                    "%s did not drain in %.1f s; cancelling it", self.name, self._drain_timeout
                )
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._at_stop is not None:
            at_stop, self._at_stop = self._at_stop, None
            try:
                await at_stop()
            except Exception:
                log.exception("final job of %s failed", self.name)

    async def run_once(self) -> int:
        """One run of the job, outside the loop (tests, CLIs)."""
        return await self._work()

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0 and not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _loop(self) -> None:
        await self._sleep(self._initial_delay)
        while not self._stopping.is_set():
            try:
                handled = await self._work()
            except Exception:
                self.failures += 1
                log.exception("%s failed (%d in a row)", self.name, self.failures)
                await self._sleep(
                    max(
                        self.interval,
                        backoff_delay(self.failures, base=self.interval, cap=self.max_backoff),
                    )
                )
                continue
            self.failures = 0
            if handled <= 0:
                await self._sleep(self.interval)
