"""The reconciler on a real tower store (SQLite and PostgreSQL), with a check defined here whose
scan yields what the test sets and whose correct() records its calls: findings are raised once
per drift, corrected once, closed when gone, never closed by a failed scan, and each open
finding is an exception in the workbench, opened and closed with it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest

from services.control_tower.adapters.clients import OwnerRefused
from services.control_tower.adapters.store import SERVICE, migrate
from services.control_tower.adapters.store import reconcile_store as store
from services.control_tower.app import reconcile, workbench
from services.control_tower.app.reconcile import FindingsQuery, Reconciler, ReconcileSettings
from services.control_tower.app.reconciliation.checks import CheckContext, ScanPage, registry
from services.control_tower.app.reconciliation.schedule import ReconcileScheduler
from services.control_tower.domain.exceptions import ExceptionKind, ExceptionView
from services.control_tower.domain.reconciliation import Drift, Finding, FindingState, Mode
from services.kit.db import Database
from services.kit.errors import InvalidArgument
from services.kit.uow import UnitsOfWork


@dataclass
class ListCheck:
    """A check over pages the test sets; `fail_after` pages, the scan raises."""

    name: str = "test_check"
    owner: str = "billing"
    action: str = "billing.Fix"
    default_interval_seconds: float = 60.0
    pages: list[ScanPage] = field(default_factory=list)
    fail_after: int | None = None
    refuse: bool = False
    corrected: list[str] = field(default_factory=list)
    scans: int = 0

    async def scan(self, ctx: CheckContext) -> AsyncIterator[ScanPage]:
        self.scans += 1
        for index, page in enumerate(self.pages):
            if self.fail_after is not None and index >= self.fail_after:
                raise ConnectionError("owner went away mid-scan")
            yield page

    async def correct(self, ctx: CheckContext, drift: Drift) -> str:
        self.corrected.append(drift.subject_id)
        if self.refuse:
            raise OwnerRefused(self.action, "FAILED_PRECONDITION", "not now")
        return f"fixed {drift.subject_id}"


def drift(subject: str, evidence: str = "missing") -> Drift:
    return Drift(subject, f"ord_{subject}", evidence)


def healthy(*sizes: int) -> list[ScanPage]:
    return [ScanPage(size) for size in sizes]


@pytest.fixture
def units(db_url: str) -> Iterator[UnitsOfWork]:
    migrate(db_url)
    database = Database(db_url, service=SERVICE)
    yield UnitsOfWork(database)
    database.engine.dispose()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def reconciler(units: UnitsOfWork, check: ListCheck, **modes: Mode) -> Reconciler:
    return Reconciler(
        units, registry(check), CheckContext(), ReconcileSettings(modes=modes), clock=Clock()
    )


async def findings(units: UnitsOfWork, **filters: object) -> list[Finding]:
    found, token = await units.run(
        reconcile.list_findings,
        FindingsQuery(page_size=1000, **filters),  # type: ignore[arg-type]
    )
    assert not token
    return found


async def exceptions(units: UnitsOfWork) -> list[ExceptionView]:
    query = workbench.ListQuery(kind=ExceptionKind.RECONCILIATION_FINDING, page_size=1000)
    found, _ = await units.run(workbench.list_exceptions, query)
    return found


async def test_healthy_runs_raise_nothing(units: UnitsOfWork) -> None:
    check = ListCheck(pages=healthy(500, 500, 17))
    tower = reconciler(units, check)
    for _ in range(2):
        summary = await tower.run()
        (run,) = summary.runs
        assert (run.scanned, run.drifts, run.new_findings, run.corrected, run.closed) == (
            1017,
            0,
            0,
            0,
            0,
        )
        assert run.ok and run.open_findings == 0
    assert await findings(units) == [] and await exceptions(units) == []
    assert len(await units.run(reconcile.runs_of, "test_check")) == 2


async def test_a_drift_is_raised_once_corrected_once_and_closed_when_gone(
    units: UnitsOfWork,
) -> None:
    check = ListCheck(pages=[ScanPage(500), ScanPage(3, [drift("s1", "first look")])])
    tower = reconciler(units, check)
    progress: list[tuple[str, int, int]] = []

    (run,) = (await tower.run(progress=lambda *p: progress.append(p))).runs
    assert progress == [("test_check", 1, 500), ("test_check", 2, 503)]
    assert (run.drifts, run.new_findings, run.corrected, run.open_findings) == (1, 1, 1, 1)
    assert check.corrected == ["s1"]
    (finding,) = await findings(units)
    assert (finding.subject_id, finding.order_id) == ("s1", "ord_s1")
    assert finding.evidence == "first look"
    assert finding.correction is not None and finding.correction.succeeded
    assert (finding.correction.action, finding.correction.result) == ("billing.Fix", "fixed s1")
    (exception,) = await exceptions(units)
    assert exception.is_open and exception.owner == "billing"
    assert exception.subject_id == f"test_check:s1:{finding.finding_id}"
    assert (exception.order_id, exception.detail) == ("ord_s1", "first look")

    # Seen again: the same finding, new evidence, no second correction (it was accepted).
    check.pages = [ScanPage(3, [drift("s1", "second look")])]
    (run,) = (await tower.run()).runs
    assert (run.drifts, run.new_findings, run.corrected, run.closed) == (1, 0, 0, 0)
    (again,) = await findings(units)
    assert again.finding_id == finding.finding_id
    assert (again.evidence, again.runs_seen) == ("second look", 2)
    assert again.last_seen_at > finding.last_seen_at
    assert check.corrected == ["s1"]
    (exception,) = await exceptions(units)
    assert exception.is_open and exception.detail == "second look" and exception.occurrences == 2

    # Gone: closed, and so is its exception.
    check.pages = healthy(3)
    (run,) = (await tower.run()).runs
    assert (run.closed, run.open_findings) == (1, 0)
    (closed,) = await findings(units, state=FindingState.CLOSED)
    assert closed.finding_id == finding.finding_id and closed.closed_at is not None
    (exception,) = await exceptions(units)
    assert not exception.is_open

    # Back after closing: a new finding, and a new exception.
    check.pages = [ScanPage(1, [drift("s1", "third look")])]
    (run,) = (await tower.run()).runs
    assert run.new_findings == 1
    newest, oldest = await findings(units)
    assert newest.finding_id != oldest.finding_id and newest.is_open and not oldest.is_open
    assert sorted(e.is_open for e in await exceptions(units)) == [False, True]


async def test_report_only_records_without_correcting(units: UnitsOfWork) -> None:
    check = ListCheck(pages=[ScanPage(2, [drift("s1"), drift("s2")])])
    # Report-only by the check's configured mode ...
    (run,) = (await reconciler(units, check, test_check=Mode.REPORT_ONLY).run()).runs
    assert (run.mode, run.new_findings, run.corrected) == (Mode.REPORT_ONLY, 2, 0)
    # ... or for one run, whatever the mode.
    (run,) = (await reconciler(units, check).run(report_only=True)).runs
    assert (run.mode, run.new_findings, run.corrected) == (Mode.REPORT_ONLY, 0, 0)
    assert check.corrected == []
    assert all(f.correction is None for f in await findings(units))
    # The next correcting run corrects them.
    (run,) = (await reconciler(units, check).run()).runs
    assert run.corrected == 2 and sorted(check.corrected) == ["s1", "s2"]


async def test_a_refused_correction_is_recorded_and_asked_again_next_run(
    units: UnitsOfWork,
) -> None:
    check = ListCheck(pages=[ScanPage(1, [drift("s1")])], refuse=True)
    tower = reconciler(units, check)
    (run,) = (await tower.run()).runs
    assert run.corrected == 0
    (finding,) = await findings(units)
    assert finding.correction is not None and not finding.correction.succeeded
    assert finding.correction.result == "FAILED_PRECONDITION: not now"
    await tower.run()
    assert check.corrected == ["s1", "s1"]


async def test_a_scan_that_fails_midway_closes_nothing(units: UnitsOfWork) -> None:
    check = ListCheck(pages=[ScanPage(1, [drift("s1")]), ScanPage(1, [drift("s2")])])
    tower = reconciler(units, check)
    await tower.run()
    # s2's page is never reached: the run failed, so s2 is not taken for gone.
    check.pages = [ScanPage(1, [drift("s1")]), ScanPage(1)]
    check.fail_after = 1
    (run,) = (await tower.run()).runs
    assert not run.ok and "owner went away mid-scan" in run.error
    assert (run.scanned, run.closed, run.open_findings) == (1, 0, 2)
    assert {f.subject_id for f in await findings(units, state=FindingState.OPEN)} == {"s1", "s2"}
    assert all(e.is_open for e in await exceptions(units))


async def test_an_unknown_check_is_refused_by_name(units: UnitsOfWork) -> None:
    with pytest.raises(InvalidArgument, match="no check 'nope'; the checks are test_check"):
        await reconciler(units, ListCheck()).run(["nope"])


async def test_two_replicas_on_one_database_run_each_due_check_once(sqlite_url: str) -> None:
    migrate(sqlite_url)
    databases = [Database(sqlite_url, service=SERVICE) for _ in range(2)]
    checks = [ListCheck(name="a_check", pages=healthy(1)), ListCheck(name="b_check")]
    now = [5000.0]
    schedulers = [
        ReconcileScheduler(
            Reconciler(
                UnitsOfWork(database),
                registry(*checks),
                CheckContext(),
                ReconcileSettings(intervals={"a_check": 600.0}),
                clock=lambda: now[0],
            ),
            clock=lambda: now[0],
        )
        for database in databases
    ]
    try:
        ran = await asyncio.gather(*(s.run_due() for s in schedulers))
        assert sorted(ran) == [0, 2] or sorted(ran) == [1, 1]
        assert [c.scans for c in checks] == [1, 1]
        # Not due again until its interval passed (a_check's configured, b_check's default).
        assert await asyncio.gather(*(s.run_due() for s in schedulers)) == [0, 0]
        now[0] += 60.0
        ran = await asyncio.gather(*(s.run_due() for s in schedulers))
        assert sum(ran) == 1 and [c.scans for c in checks] == [1, 2]
        now[0] += 540.0
        ran = await asyncio.gather(*(s.run_due() for s in schedulers))
        assert sum(ran) == 2 and [c.scans for c in checks] == [2, 3]
        schedule = await schedulers[0].reconciler.units.run(lambda uow: store.schedule_of(uow.conn))
        assert schedule == {"a_check": (5600.0 + 600.0, 0.0), "b_check": (5600.0 + 60.0, 0.0)}
    finally:
        for database in databases:
            database.engine.dispose()
