"""Reconciliation's pure rules: a drift is raised once, updated when seen again, closed when a
completed run no longer sees it, and a new finding when it comes back after closing."""

from __future__ import annotations

import pytest

from services.control_tower.domain.reconciliation import (
    Drift,
    FindingState,
    close,
    exception_subject,
    gone,
    seen_again,
    sight,
)

DRIFT = Drift("shp_1", "ord_1", "delivered at 2026-01-01T00:00:00Z, no invoice")


def test_a_new_drift_opens_one_finding() -> None:
    sighting = sight("check", DRIFT, None, 10.0)
    assert sighting.is_new
    finding = sighting.finding
    assert (finding.check, finding.subject_id, finding.order_id) == ("check", "shp_1", "ord_1")
    assert (finding.first_seen_at, finding.last_seen_at, finding.runs_seen) == (10.0, 10.0, 1)
    assert finding.is_open and finding.correction is None


def test_a_drift_seen_again_updates_its_finding_instead_of_raising_another() -> None:
    first = sight("check", DRIFT, None, 10.0).finding
    later = Drift("shp_1", "", "delivered at 2026-01-01T00:00:00Z, 2 invoices: A, B")
    sighting = sight("check", later, first, 20.0)
    assert not sighting.is_new
    again = sighting.finding
    assert again.evidence == later.evidence
    assert (again.first_seen_at, again.last_seen_at, again.runs_seen) == (10.0, 20.0, 2)
    # An order once known is kept when a later sighting does not name it.
    assert again.order_id == "ord_1"


def test_only_a_completed_run_closes_what_it_did_not_see() -> None:
    assert gone({"a", "b"}, {"b"}, completed=True) == {"a"}
    assert gone({"a", "b"}, {"b"}, completed=False) == set()
    assert gone({"a"}, {"a"}, completed=True) == set()


def test_a_closed_finding_is_not_seen_again_a_returning_drift_is_a_new_finding() -> None:
    closed = close(sight("check", DRIFT, None, 10.0).finding, 30.0)
    assert closed.state is FindingState.CLOSED and closed.closed_at == 30.0
    with pytest.raises(ValueError, match="closed"):
        seen_again(closed, DRIFT, 40.0)
    # The store only hands open findings to `sight`: after a close there is none.
    back = sight("check", DRIFT, None, 40.0)
    assert back.is_new and back.finding.first_seen_at == 40.0 and back.finding.runs_seen == 1


def test_each_finding_is_its_own_exception_subject() -> None:
    assert exception_subject("delivered_vs_invoiced", "shp_1", 7) == "delivered_vs_invoiced:shp_1:7"
