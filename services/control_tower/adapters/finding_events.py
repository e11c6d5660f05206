"""Reconciliation findings as `crossdock.reconciliation.finding.v1` events, the tower's only ones.

A finding is announced when it opens, when its owner gives a new answer to the check's
correction, and when it closes; never for a mere sighting, so a rerun that finds the same drift
publishes nothing. Each event is appended to the tower's outbox in the unit of work that makes
the change, so it commits or rolls back with it: a unit of work re-run after a conflict leaves
no row behind, and the relay publishes each row under its event id (`Nats-Msg-Id`), so a
relay retry is deduplicated by JetStream. The finding's id is the aggregate (`ce-subject`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from crossdock.events.v1 import reconciliation_events_pb2 as events_pb
from google.protobuf.timestamp_pb2 import Timestamp

from services.control_tower.adapters.reconcile_contracts import finding_to_proto
from services.control_tower.adapters.store import SERVICE
from services.control_tower.domain.exceptions import CHECK_OWNERS
from services.control_tower.domain.reconciliation import Finding
from services.kit.proto_values import timestamp
from services.kit.uow import EventMapper, Mapped, UnitOfWork


class FindingChange(enum.Enum):
    OPENED = events_pb.FINDING_CHANGE_OPENED
    CORRECTION_ANSWERED = events_pb.FINDING_CHANGE_CORRECTION_ANSWERED
    CLOSED = events_pb.FINDING_CHANGE_CLOSED


@dataclass(frozen=True)
class FindingChanged:
    """A finding as one change left it (stored: its id is set)."""

    change: FindingChange
    finding: Finding

    @property
    def occurred_at(self) -> float:
        if self.change is FindingChange.CLOSED and self.finding.closed_at is not None:
            return self.finding.closed_at
        if self.change is FindingChange.CORRECTION_ANSWERED and self.finding.correction:
            return self.finding.correction.corrected_at
        return self.finding.first_seen_at


mapper = EventMapper(SERVICE)


def _time(seconds: float) -> Timestamp:
    # The same rounding as the finding's own times (reconcile_contracts), so they compare equal.
    moment = timestamp(datetime.fromtimestamp(seconds, UTC))
    assert moment is not None
    return moment


@mapper.maps(FindingChanged)
def _finding_event(event: FindingChanged) -> Mapped:
    finding = event.finding
    if not finding.finding_id:
        raise ValueError(f"finding of {finding.check} on {finding.subject_id} is not stored yet")
    message = events_pb.ReconciliationFinding(
        finding=finding_to_proto(finding),
        change=event.change.value,
        owner=CHECK_OWNERS.get(finding.check, ""),
        occur_time=_time(event.occurred_at),
    )
    return message, str(finding.finding_id)


def publish(uow: UnitOfWork, change: FindingChange, findings: Iterable[Finding]) -> None:
    """Append one event per finding to the outbox of `uow`'s transaction."""
    # Named here rather than taken from the Database: the tower's units of work also serve its
    # projections and are opened without a mapper, and these are the only events it produces.
    publisher = UnitOfWork(uow.conn, mapper)
    for finding in findings:
        publisher.publish(FindingChanged(change, finding))
