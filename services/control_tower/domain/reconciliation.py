"""Reconciliation: scheduled checks that compare what the owners believe, and their findings.

A check scans for drifts (one subject the owners disagree about, with the evidence). Pure rules
turn a run's drifts into findings, so a drift is raised once, not once per run:
- a drift with no open finding of its (check, subject) opens a new finding;
- a drift seen again updates the open finding's last sighting and evidence (runs_seen + 1);
- an open finding its check's COMPLETED run did not see closes (the drift is gone); a run whose
  scan failed midway saw only part of the data, so it closes nothing;
- a drift seen after its finding closed opens a NEW finding (a new episode, audited apart).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


class Mode(enum.Enum):
    """What a check does about a drift: only record it, or also ask its owner to correct it."""

    REPORT_ONLY = "report_only"
    CORRECT = "correct"


class FindingState(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Drift:
    """One subject the owners disagree about, as a check's scan found it."""

    subject_id: str
    order_id: str
    evidence: str


@dataclass(frozen=True, slots=True)
class Correction:
    """What the owner answered to the check's corrective call."""

    action: str
    result: str
    corrected_at: float
    succeeded: bool


@dataclass(frozen=True)
class Finding:
    """A drift's episode: open from its first sighting until a completed run no longer sees it."""

    check: str
    subject_id: str
    order_id: str
    evidence: str
    first_seen_at: float
    last_seen_at: float
    runs_seen: int = 1
    state: FindingState = FindingState.OPEN
    closed_at: float | None = None
    correction: Correction | None = None
    # 0 until stored.
    finding_id: int = 0

    @property
    def is_open(self) -> bool:
        return self.state is FindingState.OPEN


def new_finding(check: str, drift: Drift, seen_at: float) -> Finding:
    return Finding(
        check=check,
        subject_id=drift.subject_id,
        order_id=drift.order_id,
        evidence=drift.evidence,
        first_seen_at=seen_at,
        last_seen_at=seen_at,
    )


def seen_again(finding: Finding, drift: Drift, seen_at: float) -> Finding:
    """The open finding, seen by a later run: latest evidence and sighting, one more run."""
    if not finding.is_open:
        raise ValueError(f"finding {finding.finding_id} is closed: a new sighting opens a new one")
    return replace(
        finding,
        evidence=drift.evidence,
        order_id=finding.order_id or drift.order_id,
        last_seen_at=max(finding.last_seen_at, seen_at),
        runs_seen=finding.runs_seen + 1,
    )


def close(finding: Finding, closed_at: float) -> Finding:
    return replace(finding, state=FindingState.CLOSED, closed_at=closed_at)


@dataclass(frozen=True)
class Sighting:
    """What to do with one drift: a new finding, or the open one updated."""

    finding: Finding
    is_new: bool


def sight(check: str, drift: Drift, open_finding: Finding | None, seen_at: float) -> Sighting:
    """The rule for one drift given its subject's open finding (None when none is open: never
    seen, or its finding closed, which makes this a new episode)."""
    if open_finding is None:
        return Sighting(new_finding(check, drift, seen_at), True)
    return Sighting(seen_again(open_finding, drift, seen_at), False)


def gone(open_subjects: set[str], seen_subjects: set[str], *, completed: bool) -> set[str]:
    """The open findings' subjects that a run did not see: closed only after a completed scan."""
    return open_subjects - seen_subjects if completed else set()


def exception_subject(check: str, subject_id: str, finding_id: int) -> str:
    """The workbench exception of a finding: one per finding (episode), as an order exception
    is one per episode, so a drift that comes back opens a new exception."""
    return f"{check}:{subject_id}:{finding_id}"


@dataclass(frozen=True)
class RunRecord:
    """One run of one check, as stored and summarized."""

    check: str
    started_at: float
    finished_at: float
    mode: Mode
    scanned: int = 0
    drifts: int = 0
    new_findings: int = 0
    corrected: int = 0
    closed: int = 0
    open_findings: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def duration(self) -> float:
        return max(0.0, self.finished_at - self.started_at)
