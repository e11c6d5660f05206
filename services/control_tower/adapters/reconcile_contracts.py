"""Reconciliation runs and findings → tower.proto messages."""

from __future__ import annotations

from datetime import UTC, datetime

from crossdock.tower.v1 import tower_pb2
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from services.control_tower.domain.reconciliation import Finding, FindingState, Mode, RunRecord
from services.kit.proto_values import timestamp

MODES = {
    Mode.REPORT_ONLY: tower_pb2.RECONCILIATION_MODE_REPORT_ONLY,
    Mode.CORRECT: tower_pb2.RECONCILIATION_MODE_CORRECT,
}
STATES = {
    tower_pb2.FINDING_STATE_OPEN: FindingState.OPEN,
    tower_pb2.FINDING_STATE_CLOSED: FindingState.CLOSED,
}
_STATE_OF = {state: number for number, state in STATES.items()}


def _time(seconds: float) -> Timestamp:
    moment = timestamp(datetime.fromtimestamp(seconds, UTC))
    assert moment is not None
    return moment


def _duration(seconds: float) -> Duration:
    return Duration(seconds=int(seconds), nanos=int((seconds % 1) * 1e9))


def run_to_proto(run: RunRecord) -> tower_pb2.ReconciliationRun:
    return tower_pb2.ReconciliationRun(
        check=run.check,
        mode=MODES[run.mode],
        start_time=_time(run.started_at),
        duration=_duration(run.duration),
        scanned=run.scanned,
        drifts=run.drifts,
        new_findings=run.new_findings,
        corrected=run.corrected,
        closed=run.closed,
        open_findings=run.open_findings,
        error=run.error,
    )


def finding_to_proto(finding: Finding) -> tower_pb2.Finding:
    message = tower_pb2.Finding(
        finding_id=finding.finding_id,
        check=finding.check,
        subject_id=finding.subject_id,
        order_id=finding.order_id,
        evidence=finding.evidence,
        state=_STATE_OF[finding.state],
        first_seen_time=_time(finding.first_seen_at),
        last_seen_time=_time(finding.last_seen_at),
        runs_seen=finding.runs_seen,
    )
    if finding.closed_at is not None:
        message.close_time.CopyFrom(_time(finding.closed_at))
    if finding.correction is not None:
        message.action = finding.correction.action
        message.result = finding.correction.result
        message.corrected = finding.correction.succeeded
        message.correct_time.CopyFrom(_time(finding.correction.corrected_at))
    return message
