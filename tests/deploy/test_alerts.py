"""The PrometheusRule's alerts: valid for promtool, firing past each threshold and only then, on
metrics the services really export."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from services.control_tower.domain.exceptions import KINDS, ExceptionKind
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


def test_the_business_flow_alerts_come_first_then_the_exceptions() -> None:
    groups = _rule()["spec"]["groups"]
    assert groups[0]["name"] == "crossdock.flows"
    assert [a["alert"] for a in groups[0]["rules"]] == [
        "CrossdockFlowSlaBreached",
        "CrossdockDeadLettersWaiting",
    ]
    assert groups[1]["name"] == "crossdock.exceptions"
    assert [a["alert"] for a in groups[1]["rules"]] == [
        "CrossdockExceptionsPastSla",
        "CrossdockDeadLetterExceptionsOpen",
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
        "CrossdockExceptionsPastSla",
        "CrossdockDeadLetterExceptionsOpen",
    }
    for alert in alerts:
        assert alert["labels"]["severity"] in {"warning", "critical"}, alert["alert"]
        assert {"summary", "description", "runbook"} <= set(alert["annotations"]), alert["alert"]


def test_exception_alerts_point_at_the_workbench_list_of_their_kind() -> None:
    groups = {group["name"]: group["rules"] for group in _rule()["spec"]["groups"]}
    for alert in groups["crossdock.exceptions"]:
        description = alert["annotations"]["description"]
        assert "`crossdock exceptions list --kind" in " ".join(description.split()), alert["alert"]


def test_rules_name_only_metrics_the_services_export() -> None:
    exprs = rule_exprs(_rule())
    assert unknown_metrics(exprs) == {}
    named = {name for expr in exprs.values() for name in selected_metrics(expr)}
    assert {
        "crossdock_flow_sla_breaches",
        "crossdock_dlq_depth",
        "crossdock_dlq_events_total",
        "crossdock_consumer_lag",
        "crossdock_exceptions_open",
        "crossdock_exceptions_oldest_age_seconds",
        "crossdock_exceptions_sla_seconds",
    } <= named


def test_a_misspelled_metric_in_a_rule_is_caught() -> None:
    rule = _rule()
    (alert,) = [a for a in _alerts(rule) if a["alert"] == "CrossdockDeadLetters"]
    alert["expr"] = alert["expr"].replace("crossdock_dlq_events_total", "crossdock_dlq_event_total")
    assert unknown_metrics(rule_exprs(rule)) == {
        "crossdock.events/CrossdockDeadLetters": ["crossdock_dlq_event_total"]
    }


# ---- exception kinds' SLAs ----------------------------------------------------------------------
# The tower exports each kind's configured SLA (crossdock_exceptions_sla_seconds) and the rule
# compares with it: these tests feed it, for every kind the domain has (a new kind included), the
# default SLAs and other ones a deployment could set.


def _owner(kind: ExceptionKind) -> str:
    """The owner label of a kind's series: its fixed owner, or for a kind whose owner varies (a
    dead letter's consuming service, a finding's check owner) one such owner."""
    return KINDS[kind].owner or ("billing" if kind is ExceptionKind.DEAD_LETTER else "shipment")


def _exception_series(kind: ExceptionKind, age: float, sla: float) -> list[Obj]:
    where = 'namespace="crossdock", job="control-tower", pod="control-tower-1"'
    owner = _owner(kind)
    return [
        {
            "series": f'crossdock_exceptions_open{{{where}, kind="{kind.label}", owner="{owner}"}}',
            "values": "1x10",
        },
        {
            "series": f'crossdock_exceptions_oldest_age_seconds{{{where}, kind="{kind.label}"}}',
            "values": f"{age:g}x10",
        },
        {
            "series": f'crossdock_exceptions_sla_seconds{{{where}, kind="{kind.label}"}}',
            "values": f"{sla:g}x10",
        },
    ]


def _sla_case(name: str, past: float, scale: float = 1) -> Obj:
    """Every kind's SLA `scale` times its default and its oldest exception `past` seconds beyond
    that SLA, for 10 minutes; the alert expected for each kind with a fixed owner once past it
    (dead letters have their own)."""
    fixed_owners = [kind for kind in ExceptionKind if kind is not ExceptionKind.DEAD_LETTER]
    labels = {"severity": "warning", "namespace": "crossdock"}
    fires = [
        {"exp_labels": {**labels, "kind": kind.label, "owner": _owner(kind)}}
        for kind in (fixed_owners if past > 0 else [])
    ]
    slas = {kind: KINDS[kind].default_sla * scale for kind in ExceptionKind}
    return {
        "name": name,
        "interval": "1m",
        "input_series": [
            series
            for kind in ExceptionKind
            for series in _exception_series(kind, slas[kind] + past, slas[kind])
        ],
        "alert_rule_test": [
            {"eval_time": "10m", "alertname": "CrossdockExceptionsPastSla", "exp_alerts": fires}
        ],
    }


def _run_sla_cases(rule: Obj, directory: Path, *tests: Obj) -> subprocess.CompletedProcess[str]:
    for alert in _alerts(rule):
        alert.pop("annotations", None)  # the static cases check the wording; these the thresholds
    write_rule_file(rule, directory / "rules.yaml")
    cases = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": list(tests)}
    (directory / "kinds-test.yaml").write_text(yaml.safe_dump(cases, sort_keys=False))
    return _promtool("test", "rules", directory / "kinds-test.yaml")


def test_each_exception_kind_alerts_past_its_default_sla_and_not_at_it(tmp_path: Path) -> None:
    # Owners vary only for dead letters (the consuming service) and findings (the check's owner).
    varying = {ExceptionKind.DEAD_LETTER, ExceptionKind.RECONCILIATION_FINDING}
    assert {kind for kind in ExceptionKind if not KINDS[kind].owner} == varying
    result = _run_sla_cases(
        _rule(), tmp_path, _sla_case("at the SLA", 0), _sla_case("a minute past the SLA", 60)
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_exception_kind_follows_a_configured_sla(tmp_path: Path) -> None:
    # Twice the default: quiet a minute past the default, firing a minute past the configured.
    result = _run_sla_cases(
        _rule(),
        tmp_path,
        _sla_case("at twice the default SLA", 0, scale=2),
        _sla_case("a minute past twice the default SLA", 60, scale=2),
        _sla_case("a minute past half the default SLA", 60, scale=0.5),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_rule_ignoring_the_configured_sla_fails_the_kinds_cases(tmp_path: Path) -> None:
    rule = _rule()
    (alert,) = [a for a in _alerts(rule) if a["alert"] == "CrossdockExceptionsPastSla"]
    # The default SLAs hard-coded, as a rule without the SLA series has them: right for the
    # defaults, wrong once a deployment sets its own.
    defaults = " or ".join(
        f'label_replace(vector({KINDS[kind].default_sla:g}), "kind", "{kind.label}", "", "")'
        for kind in ExceptionKind
    )
    alert["expr"] = alert["expr"].replace(
        "max by (namespace, kind) (crossdock_exceptions_sla_seconds)",
        f'label_replace({defaults}, "namespace", "crossdock", "", "")',
    )
    assert _run_sla_cases(rule, tmp_path, _sla_case("at the SLA", 0)).returncode == 0
    result = _run_sla_cases(rule, tmp_path, _sla_case("at twice the default SLA", 0, scale=2))
    assert result.returncode != 0
    assert "CrossdockExceptionsPastSla" in result.stdout + result.stderr


def test_dead_letter_exceptions_alert_after_the_dead_letter_sla() -> None:
    (alert,) = [a for a in _alerts(_rule()) if a["alert"] == "CrossdockDeadLetterExceptionsOpen"]
    minutes = int(alert["for"].removesuffix("m"))
    assert minutes * 60 == KINDS[ExceptionKind.DEAD_LETTER].default_sla
