"""Per-call deadlines measured on the injected clock.

The call races a `clock.sleep(timeout)`: with a manual clock a test decides exactly when the
deadline passes. With the system clock, whose sleep is the event loop's own timer, the loop's
timeout (`asyncio.timeout`) measures the same deadline with the call awaited in place, which
spares two tasks and an `asyncio.wait` per carrier call. Either way the losing call is cancelled
and unwinds before DeadlineExpired is raised; a karrio call running in a worker thread cannot be
interrupted, which is why the HTTP transport also carries a socket timeout (see
carriers.karrio_http).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from services.carrier_adapter.adapters.reliability.clock import Clock, SystemClock

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
    if type(clock) is SystemClock:
        return await _on_loop_timer(call, timeout)
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


async def _on_loop_timer(call: Callable[[], Awaitable[T]], timeout: float) -> T:
    """`with_deadline` on the event loop's clock: the same outcomes as the race above."""
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            result = await call()
    except Exception:
        # Whatever the call raised while unwinding from our cancellation (the loop's
        # TimeoutError, or the call's own late error), the deadline is what the caller gets.
        if deadline.expired():
            raise DeadlineExpired(timeout) from None
        raise
    if deadline.expired():
        # The call swallowed the cancellation and returned; the race above drops that value too.
        raise DeadlineExpired(timeout)
    return result
