"""Time as a dependency: monotonic seconds for intervals, wall time for records, and sleep."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Protocol

from services.kit.clock import utc_now

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never steps back; only differences mean anything."""
        ...

    def now(self) -> datetime:
        """The current wall time, timezone-aware UTC."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return utc_now()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
