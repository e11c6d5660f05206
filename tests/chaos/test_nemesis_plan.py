"""The nemesis's schedule: reproducible from its seed, every kind when there is time, no overlap."""

from __future__ import annotations

import itertools

from localmesh.chaos.nemesis import ALL_KINDS, FaultKind, PlanSettings, plan


def test_same_seed_same_schedule_other_seed_other_order() -> None:
    settings = PlanSettings(seed=7, duration_seconds=600)
    assert plan(settings) == plan(settings)
    other = plan(PlanSettings(seed=8, duration_seconds=600))
    assert [f.kind for f in other] != [f.kind for f in plan(settings)]


def test_a_short_run_has_every_kind_once_and_faults_never_overlap() -> None:
    settings = PlanSettings(seed=1, duration_seconds=180, cut_seconds=10, pause_seconds=33)
    faults = plan(settings)
    assert {f.kind for f in faults} == set(ALL_KINDS)
    for earlier, later in itertools.pairwise(faults):
        assert later.at >= earlier.at + earlier.hold + settings.gap_seconds
    last = faults[-1]
    assert last.at + last.hold <= settings.duration_seconds
    assert faults[0].at == settings.warmup_seconds


def test_holds_follow_the_kind() -> None:
    settings = PlanSettings(seed=3, duration_seconds=900, cut_seconds=20, pause_seconds=35)
    for fault in plan(settings):
        if fault.kind in (FaultKind.CUT_NATS, FaultKind.CUT_POSTGRES):
            assert fault.hold == 20
        elif fault.kind is FaultKind.PAUSE_CONSUMER:
            assert fault.hold == 35
        else:
            assert fault.hold == settings.restart_after_seconds


def test_only_the_asked_kinds() -> None:
    kinds = (FaultKind.KILL_REPLICA, FaultKind.RESTART_POSTGRES)
    faults = plan(PlanSettings(seed=0, duration_seconds=120, kinds=kinds))
    assert faults and {f.kind for f in faults} == set(kinds)
