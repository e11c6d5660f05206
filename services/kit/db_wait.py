"""Wait for the service's database before starting, instead of failing the start.

A process started while its PostgreSQL is restarting, failing over, or cut off from it would
otherwise exit at its first query: a local mesh leaves it dead, and Kubernetes restarts it with
a back-off that grows to minutes. It waits instead, probing with back-off, up to
STARTUP_DATABASE_WAIT_SECONDS, then starts; an error that is not unavailability (a wrong
password, a missing database) fails at once. SQLite is a local file: there is nothing to wait
for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy import make_url, text

from services.kit.db import database_unavailable, make_engine

__all__ = ["retry_while_unavailable", "wait_for_database"]

log = logging.getLogger(__name__)

MAX_PROBE_INTERVAL_SECONDS = 5.0

T = TypeVar("T")


async def wait_for_database(url: str, *, timeout_seconds: float, stop: asyncio.Event) -> None:
    """Return once the database at `url` answers (or `stop` is set); after `timeout_seconds`
    of unavailability, raise the last error."""
    if not url or make_url(url).get_backend_name() == "sqlite":
        return
    deadline = time.monotonic() + timeout_seconds
    delay = 0.25
    waited = False
    while not stop.is_set():
        try:
            await asyncio.to_thread(_probe, url)
        except (sa_exc.OperationalError, sa_exc.TimeoutError) as error:
            if not database_unavailable(error) or time.monotonic() + delay > deadline:
                raise
            log.warning(
                "the database is unavailable; waiting for it before starting (%.0f s left): %s",
                deadline - time.monotonic(),
                getattr(error, "orig", None) or error,
            )
            waited = True
        else:
            if waited:
                log.info("the database answers; starting")
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, MAX_PROBE_INTERVAL_SECONDS)


async def retry_while_unavailable(
    fn: Callable[..., T], *args: Any, timeout_seconds: float, what: str
) -> T:
    """`fn(*args)` on a thread, retried with back-off while it fails because the database is
    unavailable, up to `timeout_seconds`: a start that the probe let through can still meet a
    database restarting a moment later (migrations run in one transaction, so a retry is safe).
    Any other error, or unavailability past the timeout, is raised."""
    deadline = time.monotonic() + timeout_seconds
    delay = 0.25
    while True:
        try:
            return await asyncio.to_thread(fn, *args)
        except Exception as error:
            if not database_unavailable(error) or time.monotonic() + delay > deadline:
                raise
            log.warning("%s waits for the database: %s", what, getattr(error, "orig", error))
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_PROBE_INTERVAL_SECONDS)


def _probe(url: str) -> None:
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()
