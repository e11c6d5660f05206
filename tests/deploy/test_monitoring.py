"""What Prometheus scrapes (the PodMonitor) and the OpenTelemetry Collector deployment.

The Prometheus Operator's CRD schemas are not vendored (test_validate skips them), so the fields
that matter are checked here: the PodMonitor selects every service's pods on a port they have,
the NetworkPolicies admit the scrape, and the collector's config agrees with its Deployment.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

import pytest
import yaml

from tests.deploy.k8s import (
    NAME_LABEL,
    OVERLAYS,
    SERVICES,
    Obj,
    check_workload_hygiene,
    configmap_by_prefix,
    main_container,
    one,
    pod_labels,
    rendered,
)

MONITORING_NAMESPACE = {"kubernetes.io/metadata.name": "monitoring"}
COLLECTOR = "otel-collector"


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) against pod labels."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return bool(selector)


def scrape_problems(objects: tuple[Obj, ...] | list[Obj], workloads: tuple[str, ...]) -> list[str]:
    """Why Prometheus would not scrape one of `workloads` through the PodMonitor `crossdock`."""
    monitor = one(objects, "PodMonitor", "crossdock")
    if monitor is None:
        return ["no PodMonitor crossdock"]
    problems: list[str] = []
    if monitor["spec"].get("jobLabel") != NAME_LABEL:
        problems.append(f"PodMonitor jobLabel is not {NAME_LABEL} (the alerts group by job)")
    endpoints = monitor["spec"]["podMetricsEndpoints"]
    for name in workloads:
        deployment = one(objects, "Deployment", name)
        if deployment is None:
            problems.append(f"{name}: no Deployment")
            continue
        if not selector_matches(monitor["spec"]["selector"], pod_labels(deployment)):
            problems.append(f"{name}: the PodMonitor does not select its pods")
            continue
        ports = {
            p.get("name"): int(p["containerPort"]) for p in main_container(deployment)["ports"]
        }
        scraped = [ports[e["port"]] for e in endpoints if e.get("port") in ports]
        if not scraped:
            problems.append(f"{name}: no container port named {[e.get('port') for e in endpoints]}")
            continue
        policy = one(objects, "NetworkPolicy", name)
        admitted = policy is not None and any(
            any(
                peer.get("namespaceSelector", {}).get("matchLabels") == MONITORING_NAMESPACE
                for peer in rule.get("from") or []
            )
            and scraped[0] in {p.get("port") for p in rule.get("ports") or []}
            for rule in policy["spec"].get("ingress") or []
        )
        if not admitted:
            problems.append(f"{name}: NetworkPolicy does not admit Prometheus on {scraped[0]}")
    return problems


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_scrapes_every_service_and_the_collector(overlay: str) -> None:
    assert scrape_problems(rendered(overlay), (*SERVICES, COLLECTOR)) == []


def test_a_renamed_metrics_port_is_caught() -> None:
    objects = copy.deepcopy(list(rendered("dev")))
    deployment = one(objects, "Deployment", "billing")
    assert deployment is not None
    for port in main_container(deployment)["ports"]:
        if port["name"] == "metrics":
            port["name"] = "prom"
    assert scrape_problems(objects, SERVICES) == ["billing: no container port named ['metrics']"]


def test_a_policy_closed_to_prometheus_is_caught() -> None:
    objects = copy.deepcopy(list(rendered("dev")))
    policy = one(objects, "NetworkPolicy", "order")
    assert policy is not None
    policy["spec"]["ingress"] = [r for r in policy["spec"]["ingress"] if "monitoring" not in str(r)]
    assert scrape_problems(objects, SERVICES) == [
        "order: NetworkPolicy does not admit Prometheus on 9464"
    ]


# ---- the collector ------------------------------------------------------------------------------


def _collector(overlay: str) -> tuple[Obj, dict[str, Any]]:
    objects = rendered(overlay)
    deployment = one(objects, "Deployment", COLLECTOR)
    config_map = configmap_by_prefix(objects, "otel-collector-config")
    assert deployment is not None and config_map is not None
    return deployment, yaml.safe_load(config_map["data"]["config.yaml"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_collector_is_deployed_like_the_services(overlay: str) -> None:
    """Non-root, read-only root, resources, probes, PDB, NetworkPolicy, autoscaler."""
    assert check_workload_hygiene(rendered(overlay), COLLECTOR) == []


def test_the_collector_image_is_pinned() -> None:
    image = main_container(_collector("prod")[0])["image"]
    assert re.fullmatch(r"otel/opentelemetry-collector-contrib:\d+\.\d+\.\d+", image), image


def config_problems(deployment: Obj, config: dict[str, Any]) -> list[str]:
    """Where the collector's config and its Deployment disagree, or the pipeline is broken."""
    problems: list[str] = []
    container = main_container(deployment)
    ports = {p["name"]: int(p["containerPort"]) for p in container["ports"]}

    def port_of(endpoint: str) -> int:
        return int(endpoint.rpartition(":")[2])

    protocols = config["receivers"]["otlp"]["protocols"]
    wanted = {
        "otlp-grpc": port_of(protocols["grpc"]["endpoint"]),
        "otlp-http": port_of(protocols["http"]["endpoint"]),
        "health": port_of(config["extensions"]["health_check"]["endpoint"]),
        "metrics": config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"][
            "prometheus"
        ]["port"],
    }
    for name, port in wanted.items():
        if ports.get(name) != port:
            problems.append(
                f"config listens on {port} but containerPort {name!r} is {ports.get(name)}"
            )
    for probe in ("readinessProbe", "livenessProbe"):
        if container[probe]["httpGet"]["port"] not in ("health", wanted["health"]):
            problems.append(f"{probe} does not ask the health_check extension")
    env = {item["name"] for item in container.get("env", [])}
    for variable in sorted(set(re.findall(r"\$\{env:(\w+)\}", yaml.safe_dump(config)))):
        if variable not in env:
            problems.append(f"config reads ${{env:{variable}}}, which the container does not set")
    for pipeline, parts in config["service"]["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for component in parts.get(kind, []):
                if component not in (config.get(kind) or {}):
                    problems.append(
                        f"pipeline {pipeline}: {kind[:-1]} {component!r} is not defined"
                    )
        if parts.get("processors", [None])[0] != "memory_limiter":
            problems.append(f"pipeline {pipeline}: memory_limiter must come first")
    for extension in config["service"].get("extensions", []):
        if extension not in (config.get("extensions") or {}):
            problems.append(f"extension {extension!r} is not defined")
    return problems


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_collector_config_matches_its_deployment(overlay: str) -> None:
    deployment, config = _collector(overlay)
    assert config_problems(deployment, config) == []
    assert set(config["service"]["pipelines"]) == {"traces"}


def test_a_broken_collector_config_is_caught() -> None:
    deployment, config = _collector("dev")
    config = copy.deepcopy(config)
    config["service"]["pipelines"]["traces"]["exporters"] = ["otlp/backend"]
    config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] = "${env:POD_IP}:14317"
    del config["extensions"]["health_check"]
    config["service"]["extensions"] = []
    config["extensions"]["health_check"] = {"endpoint": "${env:HOST_IP}:13133"}
    assert config_problems(deployment, config) == [
        "config listens on 14317 but containerPort 'otlp-grpc' is 4317",
        "config reads ${env:HOST_IP}, which the container does not set",
        "pipeline traces: exporter 'otlp/backend' is not defined",
    ]
