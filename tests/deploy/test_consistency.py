"""The manifests agree with the services' own config declarations and the event catalog.

Covered for every service whose config class exists today (found by importing each
`services/<name>/main.py` and `gateway/main.py`): env var names, required settings, values that
parse, secrets only in Secrets, ports and probes, shutdown timing, the NATS user and its password,
the database name and owner, the gRPC targets (each a dns:/// name of a headless Service over the
callee's pods, so clients balance round_robin over every replica) and the NetworkPolicies between
caller and callee, the consumer-lag scalers, and the NATS image (the nats-server version pinned
for the local runs and tests). Services planned but not written yet (in SERVICES without a
config class) get only the structural checks, and are REPORTED as a warning, not failed.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

from services.kit.config import Setting
from tests.deploy.k8s import (
    K8S,
    OVERLAYS,
    REPO,
    SERVICES,
    Obj,
    ServiceCode,
    check_consistency,
    container_env,
    discover_service_code,
    find,
    kustomize,
    nats_auth,
    one,
    rendered,
)
from tests.deploy.targets import pinned_nats_server_version
from tests.fixtures.nats import find_nats_server

CODE = discover_service_code()


def test_services_without_code_are_reported() -> None:
    missing = [name for name in SERVICES if name not in CODE]
    if missing:
        warnings.warn(
            "deploy consistency NOT checked (no config class yet, structural checks only): "
            + ", ".join(missing),
            stacklevel=1,
        )
    assert {"order", "inventory", "schema-registry"} <= set(CODE)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifests_match_the_code(overlay: str) -> None:
    pending: set[str] = set()
    assert check_consistency(rendered(overlay), overlay, CODE, pending) == []
    if pending:
        warnings.warn(
            "settings the manifests set before the code declares them: "
            + "; ".join(sorted(pending)),
            stacklevel=1,
        )


def test_nats_auth_is_up_to_date() -> None:
    assert nats_auth.main(["--check"]) == 0, "run: python deploy/gen_nats_auth.py"


def test_stale_nats_auth_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "auth.conf"
    stale.write_text(nats_auth.AUTH_FILE.read_text().replace('"crossdock.order.placed.v1"\n', ""))
    monkeypatch.setattr(nats_auth, "AUTH_FILE", stale)
    assert nats_auth.main(["--check"]) == 1


def test_permissions_follow_the_catalog() -> None:
    order = nats_auth.permissions("order")
    assert "crossdock.order.placed.v1" in order.publish
    assert "crossdock.inventory.reserved.v1" not in order.publish  # inventory produces it
    assert "crossdock.inventory.reserved.v1" in order.subscribe
    assert f"crossdock.dlq.{nats_auth.consumer_name('order')}" in order.publish
    assert not any(
        s.endswith(">") and not s.startswith(("$JS.ACK.", "$JS.API.CONSUMER.CREATE"))
        for s in order.publish
    ), "no broad publish wildcards"
    registry = nats_auth.permissions("schema-registry")
    assert registry.publish == ()  # produces and consumes nothing


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_nats_server_accepts_the_config(tmp_path: Path, overlay: str) -> None:
    """nats.conf (prod's adds `sync_interval: always`) + the generated auth.conf parse, on the
    pinned nats-server the local run and the tests use."""
    config = rendered(overlay)
    files = next(c for c in find(config, "ConfigMap") if c["metadata"]["name"].startswith("nats-"))
    for name, text in files["data"].items():
        (tmp_path / name).write_text(text)
    env = {"PATH": os.environ["PATH"], "POD_NAME": "nats-0"}
    env |= {nats_auth.password_env(s): "pw" for s in SERVICES}
    ok = subprocess.run(
        [find_nats_server(), "-c", str(tmp_path / "nats.conf"), "-t"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ok.returncode == 0, ok.stderr
    del env[nats_auth.password_env("order")]  # a user whose password is not in the Secret
    broken = subprocess.run(
        [find_nats_server(), "-c", str(tmp_path / "nats.conf"), "-t"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert broken.returncode != 0


# ---- each check fails when a manifest (or the code) is broken on purpose ---------------------


def _render_broken(tmp_path: Path, relative: str, old: str, new: str, overlay: str) -> list[Obj]:
    copy_root = tmp_path / "k8s"
    shutil.copytree(K8S, copy_root)
    path = copy_root / relative
    text = path.read_text()
    assert old in text, f"{old!r} not in {relative}"
    path.write_text(text.replace(old, new, 1))
    return kustomize(copy_root / "overlays" / overlay)


def _problems(objects: list[Obj] | tuple[Obj, ...], overlay: str = "dev") -> str:
    return "\n".join(check_consistency(objects, overlay, CODE))


def test_renamed_env_var_in_a_manifest_fails(tmp_path: Path) -> None:
    objects = _render_broken(
        tmp_path,
        "base/services/order.yaml",
        "CROSSDOCK_ORDER_INVENTORY_TARGET",
        "CROSSDOCK_ORDER_INVENTORY_ADDR",
        "dev",
    )
    problems = _problems(objects)
    assert "CROSSDOCK_ORDER_INVENTORY_ADDR is set but OrderConfig has no such setting" in problems
    assert "required CROSSDOCK_ORDER_INVENTORY_TARGET is not set" in problems


def test_renamed_setting_in_code_fails() -> None:
    real = CODE["order"].config

    class Renamed(real):  # type: ignore[misc,valid-type]
        @classmethod
        def declared_settings(cls) -> tuple[Setting, ...]:
            return tuple(
                dataclasses.replace(s, env_name=s.env_name.replace("_TARGET", "_ADDRESS"))
                for s in super().declared_settings()
            )

    code = dict(CODE, order=ServiceCode("order", CODE["order"].module, Renamed))
    problems = "\n".join(check_consistency(rendered("dev"), "dev", code))
    assert "CROSSDOCK_ORDER_INVENTORY_TARGET is set but" in problems
    assert "required CROSSDOCK_ORDER_INVENTORY_ADDRESS is not set" in problems


def test_secret_in_a_configmap_fails(tmp_path: Path) -> None:
    objects = copy.deepcopy(list(rendered("dev")))
    secret = one(objects, "Secret", "inventory-secrets")
    config_map = one(objects, "ConfigMap", "inventory-config")
    assert secret is not None and config_map is not None
    config_map["data"]["CROSSDOCK_INVENTORY_DB_URL"] = secret["stringData"].pop(
        "CROSSDOCK_INVENTORY_DB_URL"
    )
    assert "CROSSDOCK_INVENTORY_DB_URL is a secret but comes from ConfigMap" in _problems(objects)


def test_port_mismatch_fails(tmp_path: Path) -> None:
    objects = _render_broken(
        tmp_path,
        "base/services/inventory.yaml",
        "containerPort: 50051",
        "containerPort: 50052",
        "dev",
    )
    assert "inventory: CROSSDOCK_INVENTORY_GRPC_PORT=50051 but containerPort 'grpc'" in _problems(
        objects
    )


def test_bad_value_fails(tmp_path: Path) -> None:
    objects = _render_broken(
        tmp_path,
        "base/services/schema-registry.yaml",
        'CROSSDOCK_SCHEMA_REGISTRY_LOG_LEVEL: "INFO"',
        'CROSSDOCK_SCHEMA_REGISTRY_LOG_LEVEL: "LOUD"',
        "dev",
    )
    assert "CROSSDOCK_SCHEMA_REGISTRY_LOG_LEVEL must be one of" in _problems(objects)


def test_short_termination_grace_fails() -> None:
    objects = copy.deepcopy(list(rendered("dev")))
    deployment = one(objects, "Deployment", "order")
    assert deployment is not None
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30
    assert "order: terminationGracePeriodSeconds 30 <" in _problems(objects)


def test_missing_network_path_to_a_callee_fails() -> None:
    objects = copy.deepcopy(list(rendered("dev")))
    policy = one(objects, "NetworkPolicy", "order")
    assert policy is not None
    policy["spec"]["egress"] = [
        rule for rule in policy["spec"]["egress"] if "inventory" not in str(rule.get("to"))
    ]
    assert "order: NetworkPolicy egress does not allow inventory:50051" in _problems(objects)


def test_service_opened_to_everyone_fails() -> None:
    objects = copy.deepcopy(list(rendered("dev")))
    policy = one(objects, "NetworkPolicy", "inventory")
    assert policy is not None
    policy["spec"]["ingress"].append({"ports": [{"port": 50051}]})
    assert "NetworkPolicy inventory: ingress open to every source" in _problems(objects)


def test_wrong_nats_user_fails(tmp_path: Path) -> None:
    objects = _render_broken(
        tmp_path, "base/services/order.yaml", "nats://order:", "nats://inventory:", "dev"
    )
    assert "order: NATS_URL user is 'inventory'" in _problems(objects)


def test_wrong_database_fails(tmp_path: Path) -> None:
    dev = _render_broken(
        tmp_path / "dev",
        "overlays/dev/postgres.yaml",
        'CREATE DATABASE "inventory"',
        'CREATE DATABASE "inventry"',
        "dev",
    )
    assert "dev postgres-init does not create database 'inventory'" in _problems(dev)
    prod = _render_broken(
        tmp_path / "prod",
        "overlays/prod/postgres-clusters.yaml",
        "database: order",
        "database: orders",
        "prod",
    )
    assert "order: Cluster initdb creates 'orders'" in _problems(prod, "prod")


def test_wrong_lag_scaler_consumer_fails(tmp_path: Path) -> None:
    durable = nats_auth.consumer_name("inventory")
    objects = _render_broken(
        tmp_path,
        "overlays/prod/keda-scalers.yaml",
        f"consumer: {durable}",
        "consumer: inventory-typo",
        "prod",
    )
    assert "inventory: lag triggers" in _problems(objects, "prod")


def test_non_root_and_read_only_are_required() -> None:
    objects = copy.deepcopy(list(rendered("prod")))
    deployment = one(objects, "Deployment", "billing")  # planned service: structural checks too
    assert deployment is not None
    pod = deployment["spec"]["template"]["spec"]
    pod["securityContext"]["runAsNonRoot"] = False
    pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False
    problems = _problems(objects, "prod")
    assert "billing: pod securityContext.runAsNonRoot is not true" in problems
    assert "billing/billing: readOnlyRootFilesystem is not true" in problems


def test_migrations_run_exactly_once(tmp_path: Path) -> None:
    objects = _render_broken(
        tmp_path,
        "base/services/inventory.yaml",
        'CROSSDOCK_INVENTORY_MIGRATE_ON_START: "false"',
        'CROSSDOCK_INVENTORY_MIGRATE_ON_START: "true"',
        "dev",
    )
    assert "inventory: migrates in an init container AND at start" in _problems(objects)


def test_prod_nats_without_fsync_always_fails(tmp_path: Path) -> None:
    objects = _render_broken(
        tmp_path, "overlays/prod/nats/nats.conf", "  sync_interval: always", "", "prod"
    )
    assert "nats: prod must set sync_interval: always" in _problems(objects, "prod")


def test_carrier_accounts_in_the_manifest_parse() -> None:
    """carrier-adapter's open-ended account variables parse with its real `load_accounts`."""
    from services.carrier_adapter.config import load_accounts

    objects = rendered("prod")
    deployment = one(objects, "Deployment", "carrier-adapter")
    assert deployment is not None
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    problems: list[str] = []
    env = container_env(objects, container, problems, "carrier-adapter")
    assert problems == []
    accounts = load_accounts({name: value.value for name, value in env.items()})
    assert [account.carrier for account in accounts] == ["sandbox"]

    # The webhook secret comes from the Secret, never the ConfigMap.
    secret_names = {
        name for name, value in env.items() if value.from_secret and "ACCOUNT_SANDBOX" in name
    }
    assert secret_names == {"CROSSDOCK_CARRIER_ADAPTER_ACCOUNT_SANDBOX_WEBHOOK_SECRET"}


def test_carrier_account_secret_in_a_configmap_fails() -> None:
    objects = copy.deepcopy(list(rendered("dev")))
    secret = one(objects, "Secret", "carrier-adapter-secrets")
    config_map = one(objects, "ConfigMap", "carrier-adapter-config")
    assert secret is not None and config_map is not None
    name = "CROSSDOCK_CARRIER_ADAPTER_ACCOUNT_SANDBOX_WEBHOOK_SECRET"
    config_map["data"][name] = secret["stringData"].pop(name)
    assert f"{name} is a secret but comes from ConfigMap" in _problems(objects)


def test_egress_beyond_the_dependencies_fails(tmp_path: Path) -> None:
    objects = _render_broken(
        tmp_path,
        "base/services/inventory.yaml",
        "app.kubernetes.io/name: schema-registry",
        "app.kubernetes.io/name: billing",
        "dev",
    )
    problems = _problems(objects)
    assert "inventory: NetworkPolicy egress to {'podSelector'" in problems
    assert "billing" in problems


# ---- mesh clients balance over every pod; NATS runs the tested version ------------------------


def _with_target(setting: str, value: str, service: str = "order") -> list[Obj]:
    objects = copy.deepcopy(list(rendered("dev")))
    config_map = one(objects, "ConfigMap", f"{service}-config")
    assert config_map is not None and setting in config_map["data"]
    config_map["data"][setting] = value
    return objects


def test_every_target_names_a_headless_service() -> None:
    values = [
        value
        for config_map in find(rendered("prod"), "ConfigMap")
        for name, value in (config_map.get("data") or {}).items()
        if name.endswith("_TARGET")
    ]
    assert len(values) >= 20
    assert all(v.startswith("dns:///") and v.endswith("-headless:50051") for v in values), values


def test_a_target_through_the_cluster_ip_fails() -> None:
    problems = _problems(_with_target("CROSSDOCK_ORDER_INVENTORY_TARGET", "dns:///inventory:50051"))
    assert (
        "order: CROSSDOCK_ORDER_INVENTORY_TARGET=dns:///inventory:50051: "
        "Service inventory is not headless" in problems
    )


def test_a_target_without_the_dns_scheme_fails() -> None:
    problems = _problems(
        _with_target("CROSSDOCK_ORDER_INVENTORY_TARGET", "inventory-headless:50051")
    )
    assert "'inventory-headless:50051' is not a dns:///<service>:<port> target" in problems


def test_the_long_dns_name_passes_in_its_namespace_only() -> None:
    long_name = "dns:///inventory-headless.crossdock.svc.cluster.local:50051"
    assert _problems(_with_target("CROSSDOCK_ORDER_INVENTORY_TARGET", long_name)) == ""
    other = "dns:///inventory-headless.billing.svc.cluster.local:50051"
    problems = _problems(_with_target("CROSSDOCK_ORDER_INVENTORY_TARGET", other))
    assert "Service inventory-headless is in namespace 'crossdock'" in problems


def test_a_target_on_another_port_fails() -> None:
    problems = _problems(
        _with_target("CROSSDOCK_ORDER_INVENTORY_TARGET", "dns:///inventory-headless:9464")
    )
    assert "Service inventory-headless has no port 9464" in problems


def test_a_headless_service_over_other_pods_fails() -> None:
    objects = copy.deepcopy(list(rendered("dev")))
    headless = one(objects, "Service", "inventory-headless")
    assert headless is not None
    headless["spec"]["selector"] = {"app.kubernetes.io/name": "billing"}
    problems = _problems(objects)
    assert "inventory: Service inventory-headless selects billing" in problems
    assert "order: NetworkPolicy egress does not allow billing:50051" in problems


def test_a_headless_service_targeting_another_container_port_fails() -> None:
    objects = copy.deepcopy(list(rendered("dev")))
    headless = one(objects, "Service", "shipment-headless")
    assert headless is not None
    headless["spec"]["ports"][0]["targetPort"] = "metrics"
    problems = _problems(objects)
    assert (
        "Service shipment-headless port 50051 targets 'metrics' (container port 9464), but "
        "clients connect to the pods on 50051" in problems
    )


def test_a_headless_service_publishing_unready_pods_fails() -> None:
    objects = copy.deepcopy(list(rendered("dev")))
    headless = one(objects, "Service", "order-headless")
    assert headless is not None
    headless["spec"]["publishNotReadyAddresses"] = True
    assert "Service order-headless publishes pods that are not ready" in _problems(objects)


def test_a_grpc_service_without_a_headless_service_fails() -> None:
    objects = [
        obj
        for obj in rendered("dev")
        if not (obj["kind"] == "Service" and obj["metadata"]["name"] == "billing-headless")
    ]
    problems = _problems(objects)
    assert "billing: no Service billing-headless" in problems
    assert "gateway: CROSSDOCK_GATEWAY_BILLING_TARGET=dns:///billing-headless:50051" in problems


def test_nats_image_is_the_pinned_nats_server() -> None:
    pinned = pinned_nats_server_version(REPO / "pyproject.toml")
    for overlay in OVERLAYS:
        nats = one(rendered(overlay), "StatefulSet", "nats")
        assert nats is not None
        images = [c["image"] for c in nats["spec"]["template"]["spec"]["containers"]]
        assert images == [f"nats:{pinned}-alpine"], overlay


def test_a_nats_image_other_than_the_pinned_server_fails(tmp_path: Path) -> None:
    pinned = pinned_nats_server_version(REPO / "pyproject.toml")
    objects = _render_broken(
        tmp_path, "base/nats/nats.yaml", f"nats:{pinned}-alpine", "nats:2.10-alpine", "prod"
    )
    assert (
        f"nats: image nats:2.10-alpine is nats-server 2.10, the local runs and tests use {pinned}"
        in _problems(objects, "prod")
    )
