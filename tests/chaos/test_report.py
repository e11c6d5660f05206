"""A chaos report says what happened: faults by kind, the workload, the verdict, and a plot."""

from __future__ import annotations

import json
from pathlib import Path

from localmesh.chaos.checker import Report, Violation
from localmesh.chaos.nemesis import FaultRecord
from localmesh.chaos.report import RunReport
from localmesh.chaos.workload import Outcome, WorkloadLog

T0 = 1_800_000_000.0


def workload() -> WorkloadLog:
    log = WorkloadLog(started=T0, ended=T0 + 60)
    for n in range(40):
        order_id = f"ord_{n}"
        log.accepted[order_id] = f"key-{n}"
        log.outcomes.append(Outcome(T0 + n, "order", "ok", order_id))
        log.final[order_id] = ("CANCELLED" if n % 10 == 0 else "COMPLETED", T0 + n + 8)
    log.outcomes.append(Outcome(T0 + 21, "order", "503"))
    return log


def faults() -> list[FaultRecord]:
    return [
        FaultRecord("kill_replica", "order#2", T0 + 10, T0 + 13, recovery_seconds=2.5),
        FaultRecord("cut_nats", "billing#1", T0 + 20, T0 + 40),
    ]


def test_a_clean_run_reports_zero_violations_with_faults_and_a_plot(tmp_path: Path) -> None:
    report = RunReport(
        seed=4,
        duration_seconds=60,
        shape={"replicas": 2, "nats nodes": 3, "db": "postgres"},
        workload=workload(),
        faults=faults(),
        verdict=Report((), {"orders_terminal": 40}, ()),
        recoveries={"relay failover": [1.5, 4.0]},
    )

    paths = report.write(tmp_path)

    data = json.loads(paths["json"].read_text())
    assert data["ok"] is True
    assert data["faults_by_kind"] == {"kill_replica": 1, "cut_nats": 1}
    assert data["workload"]["orders_accepted"] == 40
    assert data["workload"]["orders_final"] == {"COMPLETED": 36, "CANCELLED": 4}
    assert data["workload"]["calls"]["order 503"] == 1
    text = paths["summary"].read_text()
    assert "kill_replica" in text and "order#2" in text and "back in 2.5 s" in text
    assert "recovery relay failover: median 4.0 s, max 4.0 s over 2" in text
    assert text.rstrip().endswith("RESULT: zero violations")
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_violation_or_a_fault_not_injected_fails_the_run(tmp_path: Path) -> None:
    violated = Report((Violation("no_lost_events", ("ev_1",), "missing"),), {}, ())
    report = RunReport(1, 60, {}, workload(), faults(), violated)
    assert not report.ok
    assert report.summary().endswith("RESULT: VIOLATIONS (see above)")

    not_injected = [FaultRecord("restart_postgres", "", T0, note="not injected: refused")]
    clean = Report((), {}, ())
    assert not RunReport(1, 60, {}, workload(), not_injected, clean).ok
