"""Every rendered object validates against the Kubernetes OpenAPI schemas (kubernetes-validate).

The schema version is pinned (KUBERNETES_VERSION) and strict: unknown fields are errors, so a typo
such as `readinessprobe:` fails instead of being silently dropped by the API server.
"""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from tests.deploy.k8s import OVERLAYS, Obj, find, rendered

KUBERNETES_VERSION = "1.33.0"  # the oldest release the manifests target (preStop `sleep`, GA)

# Custom resources: kubernetes-validate ships only the built-in schemas, and the operators' CRD
# schemas are not vendored here. Their fields that matter (database names, owners, consumer
# names) are checked by test_consistency instead.
CRD_SKIPS = {
    ("postgresql.cnpg.io/v1", "Cluster"): "CloudNativePG CRD schema not vendored; "
    "initdb database/owner/labels checked by test_consistency",
    ("keda.sh/v1alpha1", "ScaledObject"): "KEDA CRD schema not vendored; target and "
    "nats-jetstream stream/consumer checked by test_consistency",
    ("monitoring.coreos.com/v1", "PodMonitor"): "Prometheus Operator CRD schema not vendored; "
    "selector, port and job label checked by test_monitoring",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "Prometheus Operator CRD schema not "
    "vendored; rules checked by promtool and the metric names by test_alerts",
}


def validate(obj: Obj) -> None:
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def _objects() -> list[tuple[str, Obj]]:
    return [(overlay, obj) for overlay in OVERLAYS for obj in rendered(overlay)]


@pytest.mark.parametrize(
    ("overlay", "obj"),
    _objects(),
    ids=[f"{o}-{d['kind']}-{d['metadata']['name']}" for o, d in _objects()],
)
def test_object_validates(overlay: str, obj: Obj) -> None:
    reason = CRD_SKIPS.get((obj["apiVersion"], obj["kind"]))
    if reason is not None:
        pytest.skip(reason)
    validate(obj)


def test_every_kind_has_a_schema_or_a_stated_skip() -> None:
    for _, obj in _objects():
        if (obj["apiVersion"], obj["kind"]) in CRD_SKIPS:
            continue
        try:
            validate(obj)
        except kubernetes_validate.SchemaNotFoundError:  # pragma: no cover - a new CRD
            pytest.fail(f"{obj['kind']} has no schema: vendor one or add it to CRD_SKIPS")
        except kubernetes_validate.ValidationError:
            pass  # reported by test_object_validates


def _deployment() -> Obj:
    return copy.deepcopy(find(rendered("prod"), "Deployment", "order")[0])


def test_missing_required_field_fails_validation() -> None:
    broken = _deployment()
    del broken["spec"]["selector"]
    with pytest.raises(kubernetes_validate.ValidationError, match="selector"):
        validate(broken)


def test_unknown_field_fails_validation() -> None:
    broken = _deployment()
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinessprobe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessprobe"):
        validate(broken)


def test_wrong_type_fails_validation() -> None:
    broken = _deployment()
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "grpc"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)
