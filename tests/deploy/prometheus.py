"""Helpers of the observability tests: what the services export, what PromQL names, promtool.

`exported_series` builds the set of series names from the services' real metric classes, so a
rule or a dashboard query naming a metric nobody exports (a typo, a renamed metric) fails.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import CollectorRegistry

from gateway.metrics import GatewayMetrics
from services.carrier_adapter.adapters.metrics import CarrierMetrics
from services.control_tower.entrypoints.flow_gauges import FlowGauges
from services.kit.interceptors import grpc_latency_histogram
from services.kit.metrics import ServiceMetrics
from tests.deploy.k8s import K8S, Obj

OBSERVABILITY = K8S / "base" / "observability"
DASHBOARD = OBSERVABILITY / "dashboards" / "crossdock.json"

# The series a metric family exposes, by type (prometheus_client's text format).
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
}


def _registries() -> Iterator[CollectorRegistry]:
    """The registries of the four kinds of crossdock process, built by their real classes."""
    service = ServiceMetrics("service")
    grpc_latency_histogram(service.registry)  # the kit's gRPC server adds it
    yield service.registry
    yield GatewayMetrics().service.registry  # the kit's metrics plus HTTP
    carrier = ServiceMetrics("carrier-adapter")
    CarrierMetrics(carrier.registry)
    yield carrier.registry
    tower = ServiceMetrics("control-tower")
    FlowGauges(tower.registry)  # the business flows, DLQ depth and every durable's pending count
    yield tower.registry


@cache
def exported_series() -> frozenset[str]:
    """Every series name the services expose on /metrics (suffixes included)."""
    names: set[str] = set()
    for registry in _registries():
        for family in registry.collect():
            names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return frozenset(names)


# Grafana's own variables, replaced by what Grafana would send so the query parses as PromQL.
_GRAFANA_INTERVALS = re.compile(r"\$__(rate_interval|interval|range)\b|\$\{__(\w+)\}")
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.*),\s*[a-zA-Z_]\w*\s*\)\s*$")


def grafana_to_promql(query: str) -> str:
    """A Grafana query as PromQL: interval variables become `5m`, `label_values(sel, label)`
    becomes `sel`. Template variables inside label matchers ("$job") are plain strings."""
    match = _LABEL_VALUES.match(query)
    if match:
        query = match.group("selector")
    return _GRAFANA_INTERVALS.sub("5m", query)


def selected_metrics(expr: str) -> list[str]:
    """The metric name of every vector selector in `expr`; raises on a PromQL syntax error and
    on a selector without a metric name (it would match any series)."""
    names: list[str] = []
    nameless: list[str] = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.append(node.name)
            else:
                nameless.append(node.prettify())
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    if nameless:
        raise ValueError(f"selector without a metric name in {expr!r}: {nameless}")
    return names


def unknown_metrics(exprs: dict[str, str]) -> dict[str, list[str]]:
    """For each (where → PromQL) the metric names it selects that no service exports."""
    exported = exported_series()
    unknown: dict[str, list[str]] = {}
    for where, expr in exprs.items():
        missing = sorted(set(selected_metrics(expr)) - exported)
        if missing:
            unknown[where] = missing
    return unknown


# ---- promtool -----------------------------------------------------------------------------------


def promtool() -> str:
    """/usr/bin/promtool (Debian package `prometheus`). CI installs it: there a missing one
    fails; elsewhere the test is skipped."""
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: apt-get install prometheus")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return path


def rule_groups(prometheus_rule: Obj) -> dict[str, Any]:
    """A PrometheusRule's spec as a Prometheus rule file."""
    return {"groups": prometheus_rule["spec"]["groups"]}


def rule_exprs(prometheus_rule: Obj) -> dict[str, str]:
    """Each rule's expression, keyed by group and alert (or record) name."""
    return {
        f"{group['name']}/{rule.get('alert') or rule.get('record')}": rule["expr"]
        for group in prometheus_rule["spec"]["groups"]
        for rule in group["rules"]
    }


def write_rule_file(prometheus_rule: Obj, path: Path) -> Path:
    path.write_text(yaml.safe_dump(rule_groups(prometheus_rule), sort_keys=False))
    return path
