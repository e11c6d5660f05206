"""Run the control tower's reconciliation checks over gRPC, one RunReconciliation call per check
(as `crossdock reconcile run` does), and keep each run's summary as plain values."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from crossdock.tower.v1 import tower_pb2, tower_pb2_grpc

from services.kit.client import open_channel

_UNAVAILABLE = "UNAVAILABLE"


@dataclass(frozen=True)
class CheckRun:
    """One check's run: what it read and found, and how long it took (the tower's clock)."""

    check: str
    scanned: int
    drifts: int
    new_findings: int
    open_findings: int
    seconds: float
    error: str
    # Runs made: more than 1 when the first found an owner UNAVAILABLE and was run again.
    attempts: int = 1

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _run(run: tower_pb2.ReconciliationRun, attempts: int) -> CheckRun:
    return CheckRun(
        run.check,
        run.scanned,
        run.drifts,
        run.new_findings,
        run.open_findings,
        run.duration.ToTimedelta().total_seconds(),
        run.error,
        attempts,
    )


def check_names() -> list[str]:
    """Every check the tower runs, in its registry's order (one call per check, so each one's
    share of the time shows)."""
    from services.control_tower.app.reconciliation.checks import CHECKS

    return list(CHECKS)


async def run_checks(
    target: str,
    checks: Sequence[str],
    *,
    report_only: bool = True,
    timeout_seconds: float = 3600.0,
    unavailable_retries: int = 2,
) -> list[CheckRun]:
    """Each named check once, in turn. report_only: drifts are recorded, nothing is corrected
    (a benchmark measures the scan, and a seeded history must need no correction).

    A run that failed because an owner was UNAVAILABLE is run again (up to
    `unavailable_retries` times, 2 s apart): just after a mesh starts, the tower's channel to an
    owner that started after it may still be backing off from its first refused connection."""
    channel = open_channel(target, default_timeout_seconds=timeout_seconds)
    try:
        stub = tower_pb2_grpc.TowerServiceStub(channel)
        runs: list[CheckRun] = []
        for name in checks:
            for attempt in range(1, unavailable_retries + 2):
                answer = await stub.RunReconciliation(
                    tower_pb2.RunReconciliationRequest(checks=[name], report_only=report_only),
                    timeout=timeout_seconds,
                )
                done = [_run(run, attempt) for run in answer.runs]
                if attempt > unavailable_retries or not any(
                    _UNAVAILABLE in run.error for run in done
                ):
                    break
                await asyncio.sleep(2.0)
            runs += done
        return runs
    finally:
        await channel.close(None)
