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

from sqlalchemy import exc as sa_exc
from sqlalchemy import make_url, text

from services.kit.db import database_unavailable, make_engine

__all__ = ["wait_for_database"]

log = logging.getLogger(__name__)

MAX_PROBE_INTERVAL_SECONDS = 5.0


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


def _probe(url: str) -> None:
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()
