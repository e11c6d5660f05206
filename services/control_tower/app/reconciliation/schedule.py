"""Reconciliation on a schedule: one replica runs each due check, then sets its next run.

Every `poll` seconds a worker leases the due checks in `reconcile_schedule` (services.kit.leases:
the lease is the row's `lease_until`, so another replica skips a check while one runs it), runs
each, then sets `next_run_at = now + the check's interval` and releases it. A replica that dies
mid-run loses its lease when it runs out and the check is run again by another: a run is
idempotent (findings are raised once per drift; a re-emitted event is applied once).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from services.control_tower.adapters.store import reconcile_store as store
from services.control_tower.app.reconcile import Reconciler
from services.kit.uow import UnitOfWork
from services.kit.workers import PollingWorker

# How long a lease lasts beyond the time it is taken: longer than any check's run.
DEFAULT_LEASE_SECONDS = 3600.0


def _ensure(uow: UnitOfWork, first_runs: dict[str, float]) -> None:
    store.ensure_scheduled(uow.conn, first_runs)


def _lease(uow: UnitOfWork, names: list[str], now: float, until: float) -> list[str]:
    return store.lease_due_checks(uow.conn, names, now, until)


def _finish(uow: UnitOfWork, name: str, next_run_at: float) -> None:
    store.finish_scheduled(uow.conn, name, next_run_at)


class ReconcileScheduler:
    """Runs the reconciler's checks when due (a kit PollingWorker)."""

    def __init__(
        self,
        reconciler: Reconciler,
        *,
        poll: float = 30.0,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.reconciler = reconciler
        self._lease_seconds = lease_seconds
        self._clock = clock
        self._scheduled = False
        # A run in hand at shutdown is cancelled after a while; its schedule row is still
        # released (the `finally` below), so another replica runs it at its next time.
        self.worker = PollingWorker(
            "control-tower-reconcile", self.run_due, interval=poll, drain_timeout=10.0
        )

    async def run_due(self) -> int:
        """Lease the due checks, run them, schedule their next runs; how many ran (0 sleeps
        the worker its interval)."""
        units = self.reconciler.units
        checks = self.reconciler.checks
        if not self._scheduled:
            # A check new to the database runs at once (then on its interval).
            now = self._clock()
            await units.run(_ensure, {name: now for name in checks})
            self._scheduled = True
        now = self._clock()
        due = await units.run(_lease, sorted(checks), now, now + self._lease_seconds)
        for name in due:
            check = checks[name]
            try:
                await self.reconciler.run_check(check)
            finally:
                interval = self.reconciler.settings.interval_of(check)
                await units.run(_finish, name, self._clock() + interval)
        return len(due)

    def start(self) -> None:
        self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop()
