"""The reconciliation benchmark's arithmetic: which orders a window counts, and when a run over
seeded histories is not consistent."""

from __future__ import annotations

from typing import Any

from bench.bench_reconcile import verdict, window_latencies
from bench.reconcile_runs import CheckRun


def test_a_window_counts_the_orders_planned_in_it_and_their_lifecycles() -> None:
    attempts: list[dict[str, Any]] = [
        {"planned_at": 9.9, "status": 201, "latency": 0.5, "order_id": "ord_before"},
        {"planned_at": 10.0, "status": 201, "latency": 0.010, "order_id": "ord_a"},
        {"planned_at": 11.0, "status": 201, "latency": 0.030, "order_id": "ord_b"},
        {"planned_at": 12.0, "status": 503, "latency": 0.002},
        {"planned_at": 13.0, "status": 0, "latency": None, "error": "ClientError"},
        {"planned_at": 20.0, "status": 201, "latency": 0.9, "order_id": "ord_after"},
    ]
    placed = {"ord_before": 9.9, "ord_a": 10.01, "ord_b": 11.03, "ord_after": 20.9}
    completed = {"ord_before": 40.0, "ord_a": 40.01}  # ord_b never completed

    window = window_latencies(attempts, placed, completed, 10.0, 20.0)

    assert window["offered"] == 4
    assert window["accepted"] == 2
    # Linear between ranks over the two 201s (10 ms, 30 ms): the 503 and the failure not counted.
    assert window["accept_p50_ms"] == 20.0
    assert window["accept_p99_ms"] == 29.8
    assert window["completed"] == 1
    assert window["placed_to_completed_p50_s"] == 30.0


def test_an_empty_window_reports_no_latency() -> None:
    window = window_latencies([], {}, {}, 0.0, 5.0)
    assert (window["offered"], window["accept_p50_ms"], window["placed_to_completed_p99_s"]) == (
        0,
        None,
        None,
    )


def test_a_finding_or_a_failed_check_makes_the_seeded_run_inconsistent() -> None:
    clean = CheckRun("labels", 500, 0, 0, 0, 0.4, "")
    drift = CheckRun("order_totals", 500, 2, 2, 2, 1.0, "")
    failed = CheckRun("event_flow", 10, 0, 0, 0, 0.1, "order.ListUnsent answered UNAVAILABLE")

    assert verdict([clean]) == []
    assert verdict([clean, drift, failed]) == [
        "order_totals: 2 findings",
        "event_flow: failed: order.ListUnsent answered UNAVAILABLE",
    ]
