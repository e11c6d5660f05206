"""Running reconciliation checks: scan, record findings, correct, close, record the run.

Per check (services.control_tower.app.reconciliation.checks), one run:
- the scan's pages, each recorded in ONE unit of work: a drift with no open finding opens one
  (and its workbench exception), one with an open finding updates it (domain rules in
  services.control_tower.domain.reconciliation);
- in CORRECT mode, each page's drifts whose finding has no accepted correction yet go to the
  owner's RPC (`check.correct`), and the answers are recorded on the findings in one more unit of
  work. An accepted correction is not repeated on later runs: if the drift stays, the finding
  stays open with the owner's answer for an operator. A refusal is retried next run;
- when the scan COMPLETED, the check's open findings it did not see close (with their
  exceptions); a scan that failed midway saw part of the data and closes nothing;
- a run row: counts, duration, and the error when it failed.

Every finding that opens, gets a new answer from its owner, or closes is announced as a
`crossdock.reconciliation.finding.v1` event appended in the same unit of work that records it
(adapters.finding_events); a sighting of an open finding announces nothing.

Mode per check comes from ReconcileSettings (config: `reconcile_<check>_mode`, default
correct); `report_only=True` forces report-only for a run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from services.control_tower.adapters import finding_events
from services.control_tower.adapters.clients import OwnerRefused
from services.control_tower.adapters.finding_events import FindingChange
from services.control_tower.adapters.store import reconcile_store as store
from services.control_tower.app.reconciliation.checks import Check, CheckContext, ScanPage
from services.control_tower.domain.reconciliation import (
    Correction,
    Drift,
    Finding,
    FindingState,
    Mode,
    RunRecord,
    close,
    gone,
    sight,
)
from services.kit.errors import InvalidArgument
from services.kit.paging import page_size
from services.kit.uow import UnitOfWork, UnitsOfWork

log = logging.getLogger(__name__)

# (check, pages done, items scanned so far)
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ReconcileSettings:
    """Each check's mode and interval (None: the check's default), and whether the schedule
    runs at all."""

    modes: Mapping[str, Mode] = field(default_factory=dict)
    intervals: Mapping[str, float] = field(default_factory=dict)
    enabled: bool = True

    def mode_of(self, check: str) -> Mode:
        return self.modes.get(check, Mode.CORRECT)

    def interval_of(self, check: Check) -> float:
        return self.intervals.get(check.name, check.default_interval_seconds)


@dataclass(frozen=True)
class PageOutcome:
    """What recording one page did: findings that are new, and the ones to correct."""

    new: int
    to_correct: list[tuple[Finding, Drift]]


def record_page(
    uow: UnitOfWork, check: str, drifts: Sequence[Drift], seen_at: float
) -> PageOutcome:
    """One page's drifts: new findings opened (and announced), open ones updated, in one
    transaction."""
    # The same subject twice in a page: the last word wins (a scan should not, but pages may
    # overlap when the owner's data moves under the scan).
    by_subject = {drift.subject_id: drift for drift in drifts}
    existing = store.open_findings(uow.conn, check, list(by_subject))
    new: list[tuple[Finding, Drift]] = []
    again: list[tuple[Finding, Drift]] = []
    for subject, drift in sorted(by_subject.items()):
        sighting = sight(check, drift, existing.get(subject), seen_at)
        (new if sighting.is_new else again).append((sighting.finding, drift))
    stored = store.add_findings(uow.conn, [finding for finding, _ in new])
    finding_events.publish(uow, FindingChange.OPENED, stored)
    store.update_seen(uow.conn, [finding for finding, _ in again])
    pending = [
        (finding, drift)
        for finding, drift in [*zip(stored, (d for _, d in new), strict=True), *again]
        if finding.correction is None or not finding.correction.succeeded
    ]
    return PageOutcome(len(stored), pending)


def close_unseen(uow: UnitOfWork, check: str, seen: set[str], closed_at: float) -> int:
    """Close (and announce) the check's open findings that its completed run did not see."""
    open_now = store.open_of_check(uow.conn, check)
    closing = gone({f.subject_id for f in open_now}, seen, completed=True)
    closed = store.close_findings(
        uow.conn, [close(f, closed_at) for f in open_now if f.subject_id in closing], closed_at
    )
    finding_events.publish(uow, FindingChange.CLOSED, closed)
    return len(closed)


def finish_run(uow: UnitOfWork, run: RunRecord) -> RunRecord:
    """The run row, with the check's open findings after it."""
    opened = store.count_open(uow.conn, run.check).get(run.check, 0)
    done = replace(run, open_findings=opened)
    store.add_run(uow.conn, done)
    return done


@dataclass(frozen=True)
class RunSummary:
    """Every check's run, in the order they ran."""

    runs: list[RunRecord]

    @property
    def ok(self) -> bool:
        return all(run.ok for run in self.runs)


class Reconciler:
    """Runs checks against the tower's store; `checks` is the registry (tests pass their own)."""

    def __init__(
        self,
        units: UnitsOfWork,
        checks: Mapping[str, Check],
        ctx: CheckContext,
        settings: ReconcileSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        on_run: Callable[[RunRecord], None] | None = None,
    ) -> None:
        self.units = units
        self._on_run = on_run
        self.checks = dict(checks)
        self.ctx = ctx
        self.settings = settings or ReconcileSettings()
        self._clock = clock

    def resolve(self, names: Sequence[str] | None) -> list[Check]:
        """The checks named (every check for None or empty); INVALID_ARGUMENT for an unknown."""
        if not names:
            return [self.checks[name] for name in sorted(self.checks)]
        unknown = [name for name in names if name not in self.checks]
        if unknown:
            raise InvalidArgument.for_field(
                "checks",
                f"no check {', '.join(map(repr, unknown))}; the checks are "
                f"{', '.join(sorted(self.checks))}",
                "unknown_check",
            )
        return [self.checks[name] for name in dict.fromkeys(names)]

    async def run(
        self,
        names: Sequence[str] | None = None,
        report_only: bool = False,
        *,
        progress: Progress | None = None,
    ) -> RunSummary:
        runs = [
            await self.run_check(check, report_only=report_only, progress=progress)
            for check in self.resolve(names)
        ]
        return RunSummary(runs)

    async def run_check(
        self, check: Check, *, report_only: bool = False, progress: Progress | None = None
    ) -> RunRecord:
        mode = Mode.REPORT_ONLY if report_only else self.settings.mode_of(check.name)
        started = self._clock()
        scanned = drifts = new = corrected = closed = pages = 0
        seen: set[str] = set()
        error = ""
        try:
            async for page in check.scan(self.ctx):
                pages += 1
                scanned += page.scanned
                drifts += len(page.drifts)
                seen |= {drift.subject_id for drift in page.drifts}
                outcome = await self._record(check, page)
                new += outcome.new
                if mode is Mode.CORRECT and outcome.to_correct:
                    corrected += await self._correct(check, outcome.to_correct)
                if progress is not None:
                    progress(check.name, pages, scanned)
        except OwnerRefused as refusal:
            # An owner that cannot answer (down, refusing): recorded on the run, no traceback.
            log.warning(
                "reconciliation check %s stopped after %d pages: %s", check.name, pages, refusal
            )
            error = f"{refusal.call} answered {refusal}"
        except Exception as failure:
            # Recorded on the run; the check's open findings stay as they are.
            log.exception("reconciliation check %s failed after %d pages", check.name, pages)
            error = f"{type(failure).__name__}: {failure}"
        else:
            closed = await self.units.run(close_unseen, check.name, seen, self._clock())
        run = RunRecord(
            check=check.name,
            started_at=started,
            finished_at=self._clock(),
            mode=mode,
            scanned=scanned,
            drifts=drifts,
            new_findings=new,
            corrected=corrected,
            closed=closed,
            error=error,
        )
        done = await self.units.run(finish_run, run)
        if self._on_run is not None:
            self._on_run(done)
        return done

    async def _record(self, check: Check, page: ScanPage) -> PageOutcome:
        if not page.drifts:
            return PageOutcome(0, [])
        return await self.units.run(record_page, check.name, page.drifts, self._clock())

    async def _correct(self, check: Check, pending: list[tuple[Finding, Drift]]) -> int:
        """Ask the owner about each drift, then record every answer in one unit of work; how
        many the owner accepted."""
        answers: list[tuple[int, Correction]] = []
        for finding, drift in pending:
            try:
                result, ok = await check.correct(self.ctx, drift), True
            except OwnerRefused as refusal:
                result, ok = str(refusal), False
            correction = Correction(check.action, result, self._clock(), ok)
            answers.append((finding.finding_id, correction))
        await self.units.run(_record_corrections, answers)
        return sum(1 for _, c in answers if c.succeeded)


def _record_corrections(uow: UnitOfWork, answers: list[tuple[int, Correction]]) -> None:
    answered = store.record_corrections(uow.conn, answers)
    finding_events.publish(uow, FindingChange.CORRECTION_ANSWERED, answered)


@dataclass(frozen=True)
class FindingsQuery:
    check: str = ""
    state: FindingState | None = None
    page_size: int = 0
    page_token: str = ""


def list_findings(uow: UnitOfWork, query: FindingsQuery) -> tuple[list[Finding], str]:
    return store.page_findings(
        uow.conn,
        check=query.check,
        state=query.state,
        page_token=query.page_token,
        size=page_size(query.page_size),
    )


def runs_of(uow: UnitOfWork, check: str) -> list[RunRecord]:
    return store.runs_of(uow.conn, check)


@dataclass(frozen=True)
class GaugeState:
    """What the reconciliation gauges show: open findings and the latest run, by check."""

    open_findings: dict[str, int]
    last_runs: dict[str, RunRecord]


def gauge_state(uow: UnitOfWork) -> GaugeState:
    return GaugeState(store.count_open(uow.conn), store.last_runs(uow.conn))
