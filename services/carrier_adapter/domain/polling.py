"""Polling for carriers that do not push: which tracking numbers are due for a Track call now.

Pure: the service keeps one `PollState` row per live tracking number, calls `due_for_poll` on a
timer, tracks the numbers it returns, and writes back `last_polled_at` and the latest status.
The interval follows the status (a parcel out for delivery changes within hours, one waiting at
the carrier for days), polling stops at a terminal status, and a parcel with no news for
`give_up_after` stops being polled so a lost label cannot cost calls forever.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from services.carrier_adapter.domain.model import TERMINAL_STATUSES, TrackingStatus

__all__ = ["PollPolicy", "PollState", "due_for_poll"]

_DEFAULT_INTERVALS: Mapping[TrackingStatus, timedelta] = {
    TrackingStatus.PENDING: timedelta(hours=6),
    TrackingStatus.PICKED_UP: timedelta(hours=4),
    TrackingStatus.IN_TRANSIT: timedelta(hours=4),
    TrackingStatus.OUT_FOR_DELIVERY: timedelta(minutes=30),
    TrackingStatus.DELIVERY_FAILED: timedelta(hours=1),
    TrackingStatus.DELIVERY_DELAYED: timedelta(hours=2),
    TrackingStatus.ON_HOLD: timedelta(hours=2),
    TrackingStatus.READY_FOR_PICKUP: timedelta(hours=6),
    TrackingStatus.RETURNED_TO_SENDER: timedelta(hours=12),
    # An unmapped code says nothing about pace; poll like in-transit until someone maps it.
    TrackingStatus.UNKNOWN: timedelta(hours=4),
}


@dataclass(frozen=True)
class PollState:
    carrier: str
    tracking_number: str
    status: TrackingStatus
    label_created_at: datetime
    last_polled_at: datetime | None = None
    # When the carrier last reported a new scan; None before the first one.
    last_scan_at: datetime | None = None


@dataclass(frozen=True)
class PollPolicy:
    intervals: Mapping[TrackingStatus, timedelta] = field(
        default_factory=lambda: dict(_DEFAULT_INTERVALS)
    )
    give_up_after: timedelta = timedelta(days=30)
    # Per carrier per sweep, so one carrier's backlog cannot exhaust its rate limit at once.
    max_per_carrier: int = 100

    def interval(self, status: TrackingStatus) -> timedelta:
        return self.intervals.get(status, _DEFAULT_INTERVALS[TrackingStatus.UNKNOWN])

    def shortest_interval(self) -> timedelta:
        """No state polled more recently than this can be due (a cheap store-side filter)."""
        return min([*self.intervals.values(), _DEFAULT_INTERVALS[TrackingStatus.UNKNOWN]])

    def scaled(self, factor: float) -> PollPolicy:
        """Every interval times `factor` (below 1 for demos and tests that cannot wait hours)."""
        return replace(
            self, intervals={status: gap * factor for status, gap in self.intervals.items()}
        )


def due_for_poll(
    states: Iterable[PollState],
    now: datetime,
    policy: PollPolicy,
    push_carriers: frozenset[str] = frozenset(),
) -> list[PollState]:
    """The states to poll now, most overdue first, at most `max_per_carrier` per carrier."""
    overdue: dict[str, list[tuple[timedelta, PollState]]] = defaultdict(list)
    for state in states:
        if state.carrier in push_carriers or state.status in TERMINAL_STATUSES:
            continue
        last_news = state.last_scan_at or state.label_created_at
        if now - last_news > policy.give_up_after:
            continue
        if state.last_polled_at is None:
            # Never polled: due once the first interval has passed since the label was made.
            due_at = state.label_created_at + policy.interval(state.status)
        else:
            due_at = state.last_polled_at + policy.interval(state.status)
        if due_at <= now:
            overdue[state.carrier].append((now - due_at, state))
    picked: list[tuple[timedelta, PollState]] = []
    for entries in overdue.values():
        entries.sort(key=lambda item: (-item[0], item[1].tracking_number))
        picked.extend(entries[: policy.max_per_carrier])
    picked.sort(key=lambda item: (-item[0], item[1].carrier, item[1].tracking_number))
    return [state for _, state in picked]
