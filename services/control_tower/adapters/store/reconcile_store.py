"""Reconciliation's reads and writes, on the unit of work's connection: findings (each one's
workbench exception opened and closed in the same transaction), runs, and the checks' schedule.

A finding's exception is written through the exceptions store's signals, as the consumers write
theirs: an opening signal per sighting (latest evidence and sighting, one more occurrence), a
closing signal when the finding closes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, func, select, update

from services.control_tower.adapters.store import exception_store
from services.control_tower.adapters.store import tables as t
from services.control_tower.domain.exceptions import ExceptionKind, Signal
from services.control_tower.domain.reconciliation import (
    Correction,
    Finding,
    FindingState,
    Mode,
    RunRecord,
    exception_subject,
)
from services.kit.leases import lease_due
from services.kit.paging import keyset, next_page
from services.kit.statements import insert_new, new_row

_f = t.reconcile_findings
_r = t.reconcile_runs
_s = t.reconcile_schedule


def _finding(row: Any) -> Finding:
    correction = None
    if row.action:
        correction = Correction(
            action=row.action,
            result=row.result,
            corrected_at=float(row.corrected_at),
            succeeded=bool(row.correction_succeeded),
        )
    return Finding(
        check=row.check_name,
        subject_id=row.subject_id,
        order_id=row.order_id,
        evidence=row.evidence,
        first_seen_at=float(row.first_seen_at),
        last_seen_at=float(row.last_seen_at),
        runs_seen=int(row.runs_seen),
        state=FindingState.OPEN if row.closed_at is None else FindingState.CLOSED,
        closed_at=row.closed_at,
        correction=correction,
        finding_id=int(row.finding_id),
    )


def _signal(finding: Finding, *, opens: bool, at: float) -> Signal:
    return Signal(
        kind=ExceptionKind.RECONCILIATION_FINDING,
        subject_id=exception_subject(finding.check, finding.subject_id, finding.finding_id),
        opens=opens,
        seen_at=at,
        event_id=f"finding-{finding.finding_id}",
        event_subject=f"reconciliation.{finding.check}",
        order_id=finding.order_id,
        detail=finding.evidence,
    )


def open_findings(conn: Connection, check: str, subjects: Sequence[str]) -> dict[str, Finding]:
    """The open findings of `check` about these subjects, by subject."""
    if not subjects:
        return {}
    rows = conn.execute(
        select(_f)
        .where(
            _f.c.check_name == check,
            _f.c.subject_id.in_(sorted(set(subjects))),
            _f.c.closed_at.is_(None),
        )
        .with_for_update()
    ).all()
    return {str(row.subject_id): _finding(row) for row in rows}


def add_findings(conn: Connection, findings: Sequence[Finding]) -> list[Finding]:
    """New findings, each with its exception opened; the findings with their ids."""
    stored: list[Finding] = []
    for finding in findings:
        result = conn.execute(
            _f.insert().values(
                check_name=finding.check,
                subject_id=finding.subject_id,
                order_id=finding.order_id,
                evidence=finding.evidence[:1000],
                first_seen_at=finding.first_seen_at,
                last_seen_at=finding.last_seen_at,
                runs_seen=finding.runs_seen,
                closed_at=None,
                action="",
                result="",
                corrected_at=None,
                correction_succeeded=None,
            )
        )
        (finding_id,) = result.inserted_primary_key or (0,)
        stored.append(_with_id(finding, int(finding_id)))
    exception_store.record_signals(
        conn, [_signal(f, opens=True, at=f.first_seen_at) for f in stored], {}
    )
    return stored


def _with_id(finding: Finding, finding_id: int) -> Finding:
    return replace(finding, finding_id=finding_id)


def update_seen(conn: Connection, findings: Sequence[Finding]) -> None:
    """Open findings seen again: their sighting and evidence, and their exception's."""
    for finding in sorted(findings, key=lambda f: f.finding_id):
        conn.execute(
            update(_f)
            .where(_f.c.finding_id == finding.finding_id)
            .values(
                evidence=finding.evidence[:1000],
                order_id=finding.order_id,
                last_seen_at=finding.last_seen_at,
                runs_seen=finding.runs_seen,
            )
        )
    exception_store.record_signals(
        conn, [_signal(f, opens=True, at=f.last_seen_at) for f in findings], {}
    )


def record_corrections(
    conn: Connection, corrected: Sequence[tuple[int, Correction]]
) -> list[Finding]:
    """Each finding's latest correction: the owner's call and its answer. Returns the findings,
    as now stored, whose answer is new: a first answer, or one that differs from the last (a
    refusal repeated run after run is not news)."""
    if not corrected:
        return []
    rows = conn.execute(
        select(_f)
        .where(_f.c.finding_id.in_(sorted({finding_id for finding_id, _ in corrected})))
        .order_by(_f.c.finding_id)
        .with_for_update()
    ).all()
    stored = {int(row.finding_id): _finding(row) for row in rows}
    answered: dict[int, Finding] = {}
    for finding_id, correction in sorted(corrected, key=lambda pair: pair[0]):
        kept = replace(correction, result=correction.result[:1000])
        conn.execute(
            update(_f)
            .where(_f.c.finding_id == finding_id)
            .values(
                action=kept.action,
                result=kept.result,
                corrected_at=kept.corrected_at,
                correction_succeeded=kept.succeeded,
            )
        )
        before = stored.get(finding_id)
        if before is None:
            continue
        if _answer(before.correction) != _answer(kept):
            answered[finding_id] = replace(before, correction=kept)
        stored[finding_id] = replace(before, correction=kept)
    return list(answered.values())


def _answer(correction: Correction | None) -> tuple[str, str, bool] | None:
    """What the owner said, without when: the part of a correction worth announcing."""
    if correction is None:
        return None
    return (correction.action, correction.result, correction.succeeded)


def open_of_check(conn: Connection, check: str) -> list[Finding]:
    """Every open finding of a check (few: each is a drift someone must see)."""
    rows = conn.execute(
        select(_f)
        .where(_f.c.check_name == check, _f.c.closed_at.is_(None))
        .order_by(_f.c.finding_id)
    ).all()
    return [_finding(row) for row in rows]


def close_findings(
    conn: Connection, findings: Iterable[Finding], closed_at: float
) -> list[Finding]:
    """Close open findings and their exceptions. Returns the ones this call closed: a finding a
    concurrent run closed first is left out, so each close is recorded and announced once."""
    closing = {finding.finding_id: finding for finding in findings}
    if not closing:
        return []
    rows = conn.execute(
        update(_f)
        .where(_f.c.finding_id.in_(sorted(closing)), _f.c.closed_at.is_(None))
        .values(closed_at=closed_at)
        .returning(_f.c.finding_id)
    ).all()
    closed = [closing[finding_id] for finding_id in sorted(int(row.finding_id) for row in rows)]
    exception_store.record_signals(
        conn, [_signal(f, opens=False, at=closed_at) for f in closed], {}
    )
    return closed


def count_open(conn: Connection, check: str | None = None) -> dict[str, int]:
    """Open findings by check (every check with at least one)."""
    query = select(_f.c.check_name, func.count()).where(_f.c.closed_at.is_(None))
    if check is not None:
        query = query.where(_f.c.check_name == check)
    rows = conn.execute(query.group_by(_f.c.check_name)).all()
    return {str(name): int(n) for name, n in rows}


def page_findings(
    conn: Connection, *, check: str, state: FindingState | None, page_token: str, size: int
) -> tuple[list[Finding], str]:
    """A page of findings, newest first, filtered by check ("" any) and state (None any)."""
    query = select(_f)
    if check:
        query = query.where(_f.c.check_name == check)
    if state is FindingState.OPEN:
        query = query.where(_f.c.closed_at.is_(None))
    elif state is FindingState.CLOSED:
        query = query.where(_f.c.closed_at.is_not(None))
    query = keyset(query, _f.c.finding_id, page_token, size, key_type=int, descending=True)
    rows = conn.execute(query).all()
    found, token = next_page(rows, size, key=lambda row: int(row.finding_id))
    return [_finding(row) for row in found], token


def add_run(conn: Connection, run: RunRecord) -> int:
    result = conn.execute(
        _r.insert().values(
            check_name=run.check,
            mode=run.mode.value,
            started_at=run.started_at,
            finished_at=run.finished_at,
            scanned=run.scanned,
            drifts=run.drifts,
            new_findings=run.new_findings,
            corrected=run.corrected,
            closed=run.closed,
            open_findings=run.open_findings,
            error=run.error[:1000],
        )
    )
    (run_id,) = result.inserted_primary_key or (0,)
    return int(run_id)


def _run(row: Any) -> RunRecord:
    return RunRecord(
        check=row.check_name,
        started_at=float(row.started_at),
        finished_at=float(row.finished_at),
        mode=Mode(row.mode),
        scanned=int(row.scanned),
        drifts=int(row.drifts),
        new_findings=int(row.new_findings),
        corrected=int(row.corrected),
        closed=int(row.closed),
        open_findings=int(row.open_findings),
        error=row.error,
    )


def last_runs(conn: Connection) -> dict[str, RunRecord]:
    """Each check's latest run."""
    latest = select(func.max(_r.c.run_id)).group_by(_r.c.check_name).scalar_subquery()
    rows = conn.execute(select(_r).where(_r.c.run_id.in_(latest))).all()
    return {str(row.check_name): _run(row) for row in rows}


def runs_of(conn: Connection, check: str) -> list[RunRecord]:
    """Every run of a check, oldest first."""
    rows = conn.execute(select(_r).where(_r.c.check_name == check).order_by(_r.c.run_id)).all()
    return [_run(row) for row in rows]


_NEW_SCHEDULE = insert_new(_s)


def ensure_scheduled(conn: Connection, first_runs: dict[str, float]) -> None:
    """A schedule row for each check that has none (its first run at the given time)."""
    if not first_runs:
        return
    conn.execute(
        new_row(_NEW_SCHEDULE, conn),
        [
            {"check_name": name, "next_run_at": at, "lease_until": 0.0}
            for name, at in sorted(first_runs.items())
        ],
    )


def lease_due_checks(
    conn: Connection, names: Sequence[str], now: float, lease_until: float
) -> list[str]:
    """The due checks among `names` whose lease ran out, leased until `lease_until` (one replica
    runs each)."""
    if not names:
        return []
    query = (
        select(_s.c.check_name)
        .where(
            _s.c.check_name.in_(sorted(names)),
            _s.c.next_run_at <= now,
            _s.c.lease_until <= now,
        )
        .order_by(_s.c.next_run_at, _s.c.check_name)
    )
    rows = lease_due(
        conn,
        query,
        table=_s,
        key=_s.c.check_name,
        lease_column=_s.c.lease_until,
        lease_until=lease_until,
    )
    return [str(row.check_name) for row in rows]


def finish_scheduled(conn: Connection, name: str, next_run_at: float) -> None:
    """The check ran: its next run, and its lease released."""
    conn.execute(
        update(_s).where(_s.c.check_name == name).values(next_run_at=next_run_at, lease_until=0.0)
    )


def schedule_of(conn: Connection) -> dict[str, tuple[float, float]]:
    """check → (next run, lease until)."""
    rows = conn.execute(select(_s)).all()
    return {str(r.check_name): (float(r.next_run_at), float(r.lease_until)) for r in rows}
