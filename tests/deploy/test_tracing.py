"""Tracing is on in the manifests: every service exports OTLP to the collector, under its own
name, and the NetworkPolicies let it. Each check also fails on a manifest broken on purpose."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest

from tests.deploy.k8s import (
    K8S,
    OVERLAYS,
    Obj,
    discover_service_code,
    find,
    kustomize,
    main_container,
    one,
    rendered,
)
from tests.deploy.tracing import base_env_problems, check_tracing, resolved_env

CODE = discover_service_code()
TRACING = "base/observability/tracing/kustomization.yaml"


def _problems(objects: list[Obj] | tuple[Obj, ...]) -> str:
    return "\n".join(check_tracing(objects, CODE))


def _render_broken(tmp_path: Path, relative: str, old: str, new: str) -> list[Obj]:
    root = tmp_path / "k8s"
    shutil.copytree(K8S, root)
    path = root / relative
    text = path.read_text()
    assert old in text, f"{old!r} not in {relative}"
    path.write_text(text.replace(old, new, 1))
    return kustomize(root / "overlays" / "dev")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_sends_its_traces_to_the_collector(overlay: str) -> None:
    objects = rendered(overlay)
    assert check_tracing(objects, CODE) == []
    traced = [d for d in find(objects, "Deployment") if "OTEL_TRACES_EXPORTER" in resolved_env(d)]
    assert {d["metadata"]["name"] for d in traced} >= {"order", "gateway", "schema-registry"}
    # Only the services: the collector does not send its own spans to itself.
    assert "otel-collector" not in {d["metadata"]["name"] for d in traced}
    env = resolved_env(one(objects, "Deployment", "order") or {})
    assert env["OTEL_TRACES_EXPORTER"] == "otlp"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4317"
    assert env["OTEL_SERVICE_NAME"] == "order"


def test_the_base_leaves_env_to_the_tracing_component() -> None:
    assert base_env_problems(kustomize(K8S / "base"), CODE) == []


def test_a_service_env_in_the_base_is_caught() -> None:
    objects = copy.deepcopy(kustomize(K8S / "base"))
    deployment = one(objects, "Deployment", "billing")
    assert deployment is not None
    main_container(deployment)["env"] = [{"name": "TZ", "value": "UTC"}]
    assert "billing: the base main container has `env`" in "\n".join(
        base_env_problems(objects, CODE)
    )


def test_missing_egress_to_the_collector_fails() -> None:
    objects = [o for o in copy.deepcopy(rendered("dev")) if o["metadata"]["name"] != "otlp-egress"]
    assert "order: no NetworkPolicy lets it reach otel-collector:4317" in _problems(objects)


def test_collector_closed_to_the_services_fails() -> None:
    objects = copy.deepcopy(list(rendered("dev")))
    policy = one(objects, "NetworkPolicy", "otel-collector")
    assert policy is not None
    policy["spec"]["ingress"] = [r for r in policy["spec"]["ingress"] if "4317" not in str(r)]
    problems = _problems(objects)
    assert "otel-collector: NetworkPolicy ingress does not admit gateway on 4317" in problems


def test_an_endpoint_that_is_not_the_collector_fails(tmp_path: Path) -> None:
    objects = _render_broken(
        tmp_path, TRACING, "http://otel-collector:4317", "http://otel-colector:4317"
    )
    assert "inventory: OTLP endpoint otel-colector:4317 is no Deployment/Service" in _problems(
        objects
    )


def test_an_exporter_that_is_not_installed_fails(tmp_path: Path) -> None:
    objects = _render_broken(tmp_path, TRACING, "value: otlp", "value: zipkin-ish")
    assert "shipment: OTEL_TRACES_EXPORTER names 'zipkin-ish', which is not installed" in (
        _problems(objects)
    )


def test_traces_under_another_name_fail(tmp_path: Path) -> None:
    objects = _render_broken(
        tmp_path, TRACING, "metadata.labels['app.kubernetes.io/name']", "metadata.labels['nope']"
    )
    assert "billing: OTEL_SERVICE_NAME is None" in _problems(objects)
