"""Per-call deadlines measured on the injected clock.

The call races a `clock.sleep(timeout)`: with the system clock this is an ordinary timeout, and
with a manual clock a test decides exactly when the deadline passes. The losing call is
cancelled; a karrio call running in a worker thread cannot be interrupted, which is why the HTTP
transport also carries a socket timeout (see carriers.karrio_http).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from services.carrier_adapter.adapters.reliability.clock import Clock

__all__ = ["DeadlineExpired", "with_deadline"]

T = TypeVar("T")


class DeadlineExpired(Exception):
    """The call did not finish before its deadline (callers turn this into a domain error)."""

    def __init__(self, timeout_seconds: float) -> None:
        super().__init__(f"no result within {timeout_seconds:g}s")
        self.timeout_seconds = timeout_seconds


async def with_deadline(call: Callable[[], Awaitable[T]], timeout: float, clock: Clock) -> T:
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    work = asyncio.ensure_future(call())
    timer = asyncio.ensure_future(clock.sleep(timeout))
    try:
        await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Cancelled from outside (or finished): never leave either task running behind us.
        timer.cancel()
        if not work.done():
            work.cancel()
    if work.done() and not work.cancelled():
        return work.result()
    # Let the cancelled call unwind; asyncio.wait neither raises its error nor swallows our own
    # cancellation.
    await asyncio.wait({work})
    if not work.cancelled():
        work.exception()  # mark a late failure as seen; the deadline is what the caller gets
    raise DeadlineExpired(timeout)
