"""Which tracking numbers are due for a poll: intervals by status, terminal stops, give-up."""

from __future__ import annotations

from datetime import timedelta

from services.carrier_adapter.domain.model import TrackingStatus
from services.carrier_adapter.domain.polling import PollPolicy, PollState, due_for_poll
from tests.carrier_adapter.fakes import START

NOW = START + timedelta(days=2)


def state(
    number: str, status: TrackingStatus, polled_ago: timedelta | None, **kw: object
) -> PollState:
    return PollState(
        carrier=str(kw.pop("carrier", "ups")),
        tracking_number=number,
        status=status,
        label_created_at=START,
        last_polled_at=None if polled_ago is None else NOW - polled_ago,
        last_scan_at=kw.pop("last_scan_at", NOW - timedelta(hours=1)),  # type: ignore[arg-type]
    )


def numbers(states: list[PollState]) -> list[str]:
    return [s.tracking_number for s in states]


def test_interval_follows_the_status() -> None:
    states = [
        state("ofd-due", TrackingStatus.OUT_FOR_DELIVERY, timedelta(minutes=31)),
        state("ofd-fresh", TrackingStatus.OUT_FOR_DELIVERY, timedelta(minutes=29)),
        state("transit-due", TrackingStatus.IN_TRANSIT, timedelta(hours=5)),
        state("transit-fresh", TrackingStatus.IN_TRANSIT, timedelta(hours=3)),
    ]
    assert set(numbers(due_for_poll(states, NOW, PollPolicy()))) == {"ofd-due", "transit-due"}


def test_terminal_and_push_carriers_are_never_polled() -> None:
    states = [
        state("delivered", TrackingStatus.DELIVERED, timedelta(days=1)),
        state("voided", TrackingStatus.CANCELLED, timedelta(days=1)),
        state("pushed", TrackingStatus.IN_TRANSIT, timedelta(days=1), carrier="sandbox"),
        state("returned", TrackingStatus.RETURNED_TO_SENDER, timedelta(days=1)),
    ]
    due = due_for_poll(states, NOW, PollPolicy(), push_carriers=frozenset({"sandbox"}))
    assert numbers(due) == ["returned"]  # still moving back to the shipper


def test_never_polled_waits_one_interval_from_the_label() -> None:
    young = PollState("ups", "young", TrackingStatus.PENDING, NOW - timedelta(hours=5))
    old = PollState("ups", "old", TrackingStatus.PENDING, NOW - timedelta(hours=7))
    assert numbers(due_for_poll([young, old], NOW, PollPolicy())) == ["old"]


def test_silent_parcels_are_given_up_after_the_limit() -> None:
    silent = state(
        "silent", TrackingStatus.IN_TRANSIT, timedelta(days=1),
        last_scan_at=NOW - timedelta(days=31),
    )  # fmt: skip
    assert due_for_poll([silent], NOW, PollPolicy(give_up_after=timedelta(days=30))) == []


def test_most_overdue_first_and_capped_per_carrier() -> None:
    states = [
        state(f"ups-{hours}", TrackingStatus.IN_TRANSIT, timedelta(hours=hours))
        for hours in (5, 9, 7, 6)
    ] + [state("fedex-1", TrackingStatus.IN_TRANSIT, timedelta(hours=8), carrier="fedex")]

    due = due_for_poll(states, NOW, PollPolicy(max_per_carrier=2))

    assert numbers(due) == ["ups-9", "fedex-1", "ups-7"]


def test_unknown_status_keeps_being_polled() -> None:
    stuck = state("odd", TrackingStatus.UNKNOWN, timedelta(hours=5))
    assert numbers(due_for_poll([stuck], NOW, PollPolicy())) == ["odd"]


def test_a_scaled_policy_keeps_the_pace_between_statuses() -> None:
    fast = PollPolicy(give_up_after=timedelta(days=2)).scaled(1 / 60)
    assert fast.interval(TrackingStatus.IN_TRANSIT) == timedelta(minutes=4)
    assert fast.interval(TrackingStatus.OUT_FOR_DELIVERY) == timedelta(seconds=30)
    assert fast.shortest_interval() == timedelta(seconds=30)
    assert fast.give_up_after == timedelta(days=2)
