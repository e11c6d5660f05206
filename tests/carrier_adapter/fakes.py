"""Fakes for carrier-adapter tests: a clock tests drive by hand, and recording sinks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from services.carrier_adapter.domain.model import UnmappedCode
from services.carrier_adapter.domain.payload_log import RawPayload

START = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


class ManualClock:
    """Time moves only when the test says so.

    `sleep` parks the caller until `advance` moves time past its wake-up point. With
    `autojump=True`, sleep moves time forward itself (for retry loops whose waits we only want
    to record). `sleeps` lists every requested sleep.
    """

    def __init__(self, start: datetime = START, *, autojump: bool = False) -> None:
        self._now = start
        self._monotonic = 1000.0
        self.autojump = autojump
        self.sleeps: list[float] = []
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self._monotonic

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.autojump or seconds <= 0:
            self._move(max(0.0, seconds))
            await asyncio.sleep(0)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._monotonic + seconds, waiter))
        await waiter

    async def sleepers(self, count: int = 1) -> None:
        """Yield to the loop until `count` coroutines are parked in sleep (a sync point)."""
        for _ in range(1000):
            if len([w for _, w in self._waiters if not w.done()]) >= count:
                return
            await asyncio.sleep(0)
        raise AssertionError(f"expected {count} sleeper(s) on the clock")

    def advance(self, seconds: float) -> None:
        self._move(seconds)

    def _move(self, seconds: float) -> None:
        self._monotonic += seconds
        self._now += timedelta(seconds=seconds)
        due = [(at, w) for at, w in self._waiters if at <= self._monotonic]
        self._waiters = [(at, w) for at, w in self._waiters if at > self._monotonic]
        for _, waiter in due:
            if not waiter.done():
                waiter.set_result(None)


class Recorder:
    """A sink that keeps what it is given (payloads, unmapped codes)."""

    def __init__(self) -> None:
        self.items: list[object] = []

    def __call__(self, item: object) -> None:
        self.items.append(item)

    def payloads(self) -> list[RawPayload]:
        return [i for i in self.items if isinstance(i, RawPayload)]

    def unmapped(self) -> list[UnmappedCode]:
        return [i for i in self.items if isinstance(i, UnmappedCode)]
