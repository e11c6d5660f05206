"""The services' tracing settings in the rendered manifests: the OpenTelemetry SDK's OTEL_*
variables load with the real telemetry code, point at the collector, and the network allows it.

`check_tracing` returns a list of problems (empty = fine), like `check_consistency`, so the
tests can also prove that it catches a manifest broken on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from services.kit.config import ConfigError
from services.kit.telemetry import setup_telemetry
from tests.deploy.k8s import (
    Obj,
    ServiceCode,
    _selects,
    find,
    main_container,
    one,
    pod_labels,
    policy_allows_egress,
    policy_allows_ingress,
)

# A Kubernetes downward-API reference to a pod label: metadata.labels['<key>'].
_LABEL_FIELD = re.compile(r"^metadata\.labels\['(?P<key>[^']+)'\]$")

Objects = tuple[Obj, ...] | list[Obj]


def resolved_env(deployment: Obj) -> dict[str, str]:
    """The main container's `env` as the pod sees it: literal values, and pod labels resolved
    the way the downward API does (other references are left out)."""
    labels = pod_labels(deployment)
    env: dict[str, str] = {}
    for item in main_container(deployment).get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        field = ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath", "")
        match = _LABEL_FIELD.match(field)
        if match and match["key"] in labels:
            env[item["name"]] = labels[match["key"]]
    return env


def _policies_for(objects: Objects, labels: Mapping[str, str]) -> list[Obj]:
    """The NetworkPolicies that apply to a pod with `labels` (they add up)."""
    return [
        policy
        for policy in find(objects, "NetworkPolicy")
        if _selects(policy["spec"]["podSelector"], labels)
    ]


def _check_exporter(name: str, env: dict[str, str], problems: list[str]) -> None:
    """The real setup_telemetry builds a provider from these settings (exporter installed)."""
    try:
        provider = setup_telemetry(name, environ=env, set_global=False)
    except ConfigError as error:
        problems.extend(f"{name}: {problem}" for problem in error.problems)
        return
    if provider is None:
        problems.append(
            f"{name}: tracing is off (OTEL_TRACES_EXPORTER={env.get('OTEL_TRACES_EXPORTER')})"
        )
        return
    provider.shutdown()
    if provider.resource.attributes.get("service.name") != name:
        problems.append(
            f"{name}: traces would be named {provider.resource.attributes.get('service.name')!r}"
        )


def _check_endpoint(
    name: str, deployment: Obj, env: dict[str, str], objects: Objects, problems: list[str]
) -> None:
    """The OTLP endpoint is a collector Service and both NetworkPolicies allow the call."""
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT", ""
    )
    url = urlsplit(endpoint)
    if url.scheme not in ("http", "https") or not url.hostname or not url.port:
        problems.append(
            f"{name}: OTEL_EXPORTER_OTLP_ENDPOINT {endpoint!r} is not scheme://host:port"
        )
        return
    host, port = url.hostname, url.port
    service = one(objects, "Service", host)
    collector = one(objects, "Deployment", host)
    if service is None or collector is None:
        problems.append(f"{name}: OTLP endpoint {host}:{port} is no Deployment/Service")
        return
    if port not in {int(p["port"]) for p in service["spec"]["ports"]}:
        problems.append(f"{name}: Service {host} has no port {port}")
    sender = pod_labels(deployment)
    if not any(
        policy_allows_egress(p, pod_labels(collector), port) for p in _policies_for(objects, sender)
    ):
        problems.append(f"{name}: no NetworkPolicy lets it reach {host}:{port}")
    if not any(
        policy_allows_ingress(p, sender, port)
        for p in _policies_for(objects, pod_labels(collector))
    ):
        problems.append(f"{host}: NetworkPolicy ingress does not admit {name} on {port}")


def check_tracing(objects: Objects, services: Mapping[str, ServiceCode]) -> list[str]:
    """Problems with each service's tracing settings in one rendered overlay."""
    problems: list[str] = []
    for name in services:
        deployment = one(objects, "Deployment", name)
        if deployment is None:
            continue  # reported by check_consistency
        env = resolved_env(deployment)
        if env.get("OTEL_SERVICE_NAME") != name:
            problems.append(f"{name}: OTEL_SERVICE_NAME is {env.get('OTEL_SERVICE_NAME')!r}")
        _check_exporter(name, env, problems)
        _check_endpoint(name, deployment, env, objects, problems)
    return problems


def base_env_problems(objects: Objects, services: Mapping[str, ServiceCode]) -> list[str]:
    """The tracing component ADDS each service's main-container `env`; one already there in the
    base would be silently replaced."""
    return [
        f"{name}: the base main container has `env` (the tracing patch would replace it): "
        "use its ConfigMap"
        for name in services
        if (deployment := one(objects, "Deployment", name)) is not None
        and "env" in main_container(deployment)
    ]
