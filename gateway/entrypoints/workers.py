"""The gateway's housekeeping worker, on the kit's PollingWorker.

One purge pass every PURGE_INTERVAL_SECONDS (the first one an interval after start): expired
Idempotency-Key records, the webhook delivery log past its retention, and idle push rate bucket
rows (push buckets are in memory now; rows come from replicas of an older version, mid-upgrade).
A failing pass is logged by the worker and retried after the interval.
"""

from __future__ import annotations

import functools
import logging
import time

from gateway.adapters.store import queries
from gateway.carrier_push import PUSH_ROUTE_CLASS
from gateway.webhooks import store as webhook_store
from services.kit.db import Database
from services.kit.workers import PollingWorker

log = logging.getLogger(__name__)

PURGE_INTERVAL_SECONDS = 300.0
# A pass in hand when the gateway stops gets this long to finish before it is cancelled.
PURGE_DRAIN_SECONDS = 5.0


async def purge_once(db: Database, webhook_log_retention_seconds: float) -> int:
    """One purge pass. Returns 0: the next pass waits a whole interval, whatever was purged."""
    purged = await db.run(queries.purge_idempotency, time.time())
    log.info("purged idempotency records", extra={"purged": purged})
    cutoff = time.time() - webhook_log_retention_seconds
    while await db.run(webhook_store.purge_log, cutoff) > 0:
        pass
    idle_before = time.time() - PURGE_INTERVAL_SECONDS
    await db.run(queries.purge_idle_buckets, PUSH_ROUTE_CLASS, idle_before)
    return 0


def purge_worker(db: Database, webhook_log_retention_seconds: float) -> PollingWorker:
    """The purge worker (not started)."""
    return PollingWorker(
        "gateway-purge",
        functools.partial(purge_once, db, webhook_log_retention_seconds),
        interval=PURGE_INTERVAL_SECONDS,
        max_backoff=PURGE_INTERVAL_SECONDS,
        initial_delay=PURGE_INTERVAL_SECONDS,
        drain_timeout=PURGE_DRAIN_SECONDS,
    )
