"""The PrometheusRule's alerts: valid for promtool, firing past each threshold and only then, on
metrics the services really export."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.k8s import OVERLAYS, Obj, one, rendered
from tests.deploy.prometheus import (
    promtool,
    rule_exprs,
    selected_metrics,
    unknown_metrics,
    write_rule_file,
)

PROMTOOL_TESTS = Path(__file__).parent / "promtool" / "alerts-test.yaml"


def _rule(overlay: str = "prod") -> Obj:
    rule = one(rendered(overlay), "PrometheusRule", "crossdock")
    assert rule is not None, f"{overlay}: no PrometheusRule crossdock"
    return copy.deepcopy(rule)


def _alerts(rule: Obj) -> list[Obj]:
    return [r for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r]


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_promtool_accepts_the_rules(tmp_path: Path, overlay: str) -> None:
    result = _promtool("check", "rules", write_rule_file(_rule(overlay), tmp_path / "rules.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alerts(_rule(overlay)))} rules found" in result.stdout


def test_promtool_rejects_a_broken_expression(tmp_path: Path) -> None:
    rule = _rule()
    _alerts(rule)[0]["expr"] = "sum by (job) (rate(crossdock_dlq_events_total[15m])"
    result = _promtool("check", "rules", write_rule_file(rule, tmp_path / "rules.yaml"))
    assert result.returncode != 0
    assert "parse error" in result.stdout + result.stderr


def _run_unit_tests(rule: Obj, directory: Path) -> subprocess.CompletedProcess[str]:
    write_rule_file(rule, directory / "rules.yaml")
    shutil.copy(PROMTOOL_TESTS, directory / "alerts-test.yaml")
    return _promtool("test", "rules", directory / "alerts-test.yaml")


def test_each_alert_fires_past_its_threshold_and_not_below(tmp_path: Path) -> None:
    result = _run_unit_tests(_rule(), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_changed_threshold_fails_the_unit_tests(tmp_path: Path) -> None:
    rule = _rule()
    (lag,) = [a for a in _alerts(rule) if a["alert"] == "CrossdockConsumerLagHigh"]
    lag["expr"] = lag["expr"].replace("> 1000", "> 5000")
    result = _run_unit_tests(rule, tmp_path)
    assert result.returncode != 0
    assert "CrossdockConsumerLagHigh" in result.stdout + result.stderr


def test_the_business_flow_alerts_come_first() -> None:
    groups = _rule()["spec"]["groups"]
    assert groups[0]["name"] == "crossdock.flows"
    assert [a["alert"] for a in groups[0]["rules"]] == [
        "CrossdockFlowSlaBreached",
        "CrossdockDeadLettersWaiting",
    ]


def test_a_broken_sla_breach_rule_fails_the_unit_tests(tmp_path: Path) -> None:
    rule = _rule()
    (breach,) = [a for a in _alerts(rule) if a["alert"] == "CrossdockFlowSlaBreached"]
    # Summed over the replicas, one flow's 3 breaches would read 6.
    breach["expr"] = breach["expr"].replace("max by", "sum by")
    result = _run_unit_tests(rule, tmp_path)
    assert result.returncode != 0
    assert "CrossdockFlowSlaBreached" in result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    cases = yaml.safe_load(PROMTOOL_TESTS.read_text())["tests"]
    checks = [check for case in cases for check in case["alert_rule_test"]]
    for alert in _alerts(_rule()):
        mine = [check for check in checks if check["alertname"] == alert["alert"]]
        assert any(check["exp_alerts"] for check in mine), f"{alert['alert']}: no firing case"
        assert any(not check["exp_alerts"] for check in mine), f"{alert['alert']}: no quiet case"


def test_every_alert_says_how_bad_what_and_what_to_do() -> None:
    alerts = _alerts(_rule())
    assert {a["alert"] for a in alerts} >= {
        "CrossdockFlowSlaBreached",
        "CrossdockDeadLettersWaiting",
        "CrossdockDeadLetters",
        "CrossdockConsumerLagHigh",
        "CrossdockOutboxStale",
        "CrossdockRelayPublishFailures",
        "CrossdockGrpcErrorRatioHigh",
    }
    for alert in alerts:
        assert alert["labels"]["severity"] in {"warning", "critical"}, alert["alert"]
        assert {"summary", "description", "runbook"} <= set(alert["annotations"]), alert["alert"]


def test_rules_name_only_metrics_the_services_export() -> None:
    exprs = rule_exprs(_rule())
    assert unknown_metrics(exprs) == {}
    named = {name for expr in exprs.values() for name in selected_metrics(expr)}
    assert {
        "crossdock_flow_sla_breaches",
        "crossdock_dlq_depth",
        "crossdock_dlq_events_total",
        "crossdock_consumer_lag",
    } <= named


def test_a_misspelled_metric_in_a_rule_is_caught() -> None:
    rule = _rule()
    (alert,) = [a for a in _alerts(rule) if a["alert"] == "CrossdockDeadLetters"]
    alert["expr"] = alert["expr"].replace("crossdock_dlq_events_total", "crossdock_dlq_event_total")
    assert unknown_metrics(rule_exprs(rule)) == {
        "crossdock.events/CrossdockDeadLetters": ["crossdock_dlq_event_total"]
    }
