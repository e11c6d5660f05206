"""The Grafana dashboard: it loads, is laid out in its rows, ships as the sidecar's ConfigMap, and
every query names metrics the services export."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from services.carrier_adapter.adapters.metrics import CarrierMetrics
from services.control_tower.domain.exceptions import KINDS, ExceptionKind
from services.kit.metrics import ServiceMetrics
from tests.deploy.k8s import OVERLAYS, one, rendered
from tests.deploy.prometheus import (
    DASHBOARD,
    exported_series,
    grafana_to_promql,
    rule_exprs,
    selected_metrics,
    unknown_metrics,
)

# Top to bottom: business flows (the control tower's series) first, technical health after.
ROWS = (
    "Business flows",
    "Event consumers",
    "Outbox and relay",
    "gRPC",
    "Partner API (gateway)",
    "Carriers",
)
GRID_WIDTH = 24

Dashboard = dict[str, Any]


def _dashboard() -> Dashboard:
    loaded: Dashboard = json.loads(DASHBOARD.read_text())
    return loaded


def _queries(dashboard: Dashboard) -> dict[str, str]:
    """Every PromQL query of the dashboard (panels and template variables), by where it is."""
    queries: dict[str, str] = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            where = f"panel {panel['title']!r} {target['refId']}"
            queries[where] = grafana_to_promql(target["expr"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            queries[f"variable {variable['name']}"] = grafana_to_promql(text)
    return queries


def _rows(dashboard: Dashboard) -> dict[str, list[Dashboard]]:
    """The panels under each row, in order; panels before the first row fail the layout test."""
    rows: dict[str, list[Dashboard]] = {}
    current: list[Dashboard] | None = None
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            current = rows.setdefault(panel["title"], [])
        else:
            assert current is not None, f"panel {panel['title']!r} is above the first row"
            current.append(panel)
    return rows


def test_the_dashboard_loads_with_its_identity() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "crossdock-health"
    assert dashboard["title"] == "crossdock"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"namespace", "job"} <= set(variables)


def test_rows_come_in_order_and_none_is_empty() -> None:
    rows = _rows(_dashboard())
    assert tuple(rows) == ROWS
    assert all(rows.values()), [title for title, panels in rows.items() if not panels]


def test_every_panel_queries_the_chosen_prometheus() -> None:
    panels = [p for p in _dashboard()["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in _dashboard()["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]
        assert panel.get("description"), f"{panel['title']}: say what the panel shows"


def test_panels_do_not_overlap() -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in _dashboard()["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= GRID_WIDTH, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']!r} overlaps {taken[(x, y)]!r}"
                taken[(x, y)] = panel["title"]


def test_every_query_names_metrics_the_services_export() -> None:
    assert unknown_metrics(_queries(_dashboard())) == {}


def test_the_technical_health_is_all_there() -> None:
    named = {name for q in _queries(_dashboard()).values() for name in selected_metrics(q)}
    assert {
        "crossdock_consumer_lag",
        "crossdock_dlq_events_total",
        "crossdock_outbox_backlog",
        "crossdock_outbox_oldest_age_seconds",
        "crossdock_events_published_total",
        "crossdock_relay_batch_size_count",
        "crossdock_relay_publish_failures_total",
        "crossdock_consumer_events_total",
        "crossdock_consumer_batch_size_count",
        "crossdock_handler_latency_seconds_bucket",
        "crossdock_grpc_requests_total",
        "crossdock_grpc_server_handling_seconds_bucket",
        "crossdock_http_requests_total",
        "crossdock_http_request_seconds_bucket",
        "crossdock_carrier_calls_total",
        "crossdock_carrier_unmapped_codes_total",
    } <= named


def test_the_business_flows_row_shows_every_flow_and_exception_series_and_each_outbox_age() -> None:
    flows = _rows(_dashboard())["Business flows"]
    named = {
        name
        for panel in flows
        for target in panel["targets"]
        for name in selected_metrics(grafana_to_promql(target["expr"]))
    }
    assert named == {
        "crossdock_flow_items",
        "crossdock_flow_sla_breaches",
        "crossdock_flow_oldest_age_seconds",
        "crossdock_dlq_depth",
        "crossdock_consumer_pending",
        # Each service's own gauge: the tower cannot read the services' outboxes.
        "crossdock_outbox_oldest_age_seconds",
        "crossdock_exceptions_open",
        "crossdock_exceptions_oldest_age_seconds",
        "crossdock_exceptions_sla_seconds",
    }


def _red_from(thresholds: Dashboard) -> float:
    (red,) = [step["value"] for step in thresholds["steps"] if step["color"] == "red"]
    return float(red)


def test_the_oldest_exception_panel_turns_red_at_each_kinds_sla() -> None:
    """Thresholds cannot follow the tower's SLA series: they copy the kinds' default SLAs, a
    kind without an override (a new one) getting the panel's default. The configured SLAs are
    the panel's second query, bars of one colour."""
    panel = next(
        p for p in _dashboard()["panels"] if p["title"] == "Oldest open exception per kind"
    )
    age, sla = panel["targets"]
    assert age["legendFormat"] == "{{kind}}"  # what the overrides match
    assert selected_metrics(grafana_to_promql(sla["expr"])) == ["crossdock_exceptions_sla_seconds"]
    assert sla["legendFormat"] == "{{kind}} SLA"
    assert {
        "matcher": {"id": "byFrameRefID", "options": sla["refId"]},
        "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": "blue"}}],
    } in panel["fieldConfig"]["overrides"]
    default = _red_from(panel["fieldConfig"]["defaults"]["thresholds"])
    by_kind = {
        override["matcher"]["options"]: _red_from(prop["value"])
        for override in panel["fieldConfig"]["overrides"]
        for prop in override["properties"]
        if override["matcher"]["id"] == "byName" and prop["id"] == "thresholds"
    }
    assert set(by_kind) <= {kind.label for kind in ExceptionKind}
    for kind in ExceptionKind:
        assert by_kind.get(kind.label, default) == KINDS[kind].default_sla, kind.label


def test_a_misspelled_flow_metric_is_caught() -> None:
    dashboard = copy.deepcopy(_dashboard())
    panel = next(p for p in dashboard["panels"] if p["title"] == "SLA breaches per flow")
    panel["targets"][0]["expr"] = panel["targets"][0]["expr"].replace(
        "crossdock_flow_sla_breaches", "crossdock_flow_sla_breach"
    )
    assert unknown_metrics(_queries(dashboard)) == {
        "panel 'SLA breaches per flow' A": ["crossdock_flow_sla_breach"]
    }


def test_what_an_alert_watches_is_on_the_dashboard() -> None:
    rule = one(rendered("prod"), "PrometheusRule", "crossdock")
    assert rule is not None
    alerted = {name for q in rule_exprs(rule).values() for name in selected_metrics(q)}
    shown = {name for q in _queries(_dashboard()).values() for name in selected_metrics(q)}
    assert alerted - shown == set()


def test_the_exported_set_is_what_prometheus_client_exposes() -> None:
    """The suffix table in exported_series agrees with the real text format: every series a
    freshly started carrier-adapter exposes (its unlabelled metrics) is in the set."""
    metrics = ServiceMetrics("carrier-adapter")
    CarrierMetrics(metrics.registry)
    metrics.relay_batch_size.observe(3)
    exposed = {
        re.split(r"[{ ]", line, maxsplit=1)[0]
        for line in metrics.exposition().decode().splitlines()
        if line and not line.startswith("#")
    }
    assert {"crossdock_relay_batch_size_bucket", "crossdock_carrier_poll_sweeps_total"} <= exposed
    assert exposed <= exported_series()


def test_a_misspelled_metric_is_caught() -> None:
    dashboard = copy.deepcopy(_dashboard())
    panel = next(p for p in dashboard["panels"] if p["title"] == "Outbox backlog")
    panel["targets"][0]["expr"] = panel["targets"][0]["expr"].replace(
        "crossdock_outbox_backlog", "crossdock_outbox_backlogg"
    )
    assert unknown_metrics(_queries(dashboard)) == {
        "panel 'Outbox backlog' A": ["crossdock_outbox_backlogg"]
    }


def test_a_counter_without_its_total_suffix_is_caught() -> None:
    # prometheus_client exposes counters as <name>_total: the bare name matches nothing.
    assert unknown_metrics({"q": "rate(crossdock_dlq_events[5m])"}) == {
        "q": ["crossdock_dlq_events"]
    }


def test_a_query_that_does_not_parse_fails() -> None:
    with pytest.raises(ValueError):
        selected_metrics(grafana_to_promql("sum by (job) (rate(crossdock_grpc_requests_total["))
    with pytest.raises(ValueError, match="without a metric name"):
        selected_metrics('{job="order"}')


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grafana_sidecar_gets_the_dashboard(overlay: str) -> None:
    config_map = one(rendered(overlay), "ConfigMap", "crossdock-dashboards")
    assert config_map is not None, "no hash suffix: the sidecar must not see two copies"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["crossdock.json"]) == _dashboard()
