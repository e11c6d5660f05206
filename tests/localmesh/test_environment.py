"""Every variable the launcher sets is one the service declares, and together they configure it."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from localmesh.credentials import Credentials
from localmesh.environment import (
    SANDBOX_SECRET_ENV,
    MeshContext,
    child_environ,
    resolve_db_urls,
    sandbox_carrier_command,
    sandbox_carrier_env,
    service_env,
    sqlite_url,
)
from localmesh.natsconf import ADMIN_USER
from localmesh.options import MeshOptions
from localmesh.ports import fixed_plan, port_keys
from localmesh.services import ALL_SERVICES, GATEWAY, ORDER, REPO_ROOT, ServiceSpec
from services.carrier_adapter.config import load_accounts
from services.kit.config import ServiceConfig, env_prefix_for

PRESENT = tuple(
    spec for spec in ALL_SERVICES if (REPO_ROOT / (spec.module.replace(".", "/") + ".py")).exists()
)


def config_class(spec: ServiceSpec) -> type[ServiceConfig]:
    module = importlib.import_module(spec.module)
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, ServiceConfig)
            and value.service == spec.name
        ):
            return value
    raise AssertionError(f"{spec.module} defines no ServiceConfig for {spec.name}")


def context(services: tuple[ServiceSpec, ...] = ALL_SERVICES, **options: object) -> MeshContext:
    mesh_options = MeshOptions(data_dir=Path("/data/mesh"), **options)  # type: ignore[arg-type]
    plan = fixed_plan(
        port_keys(services, with_postgres=False, with_sandbox_carrier=mesh_options.sandbox_process)
    )
    users = [spec.name for spec in services] + [ADMIN_USER]
    credentials = Credentials(
        nats_passwords={user: f"pw-{user}" for user in users},
        admin_token="admin-token",
        sandbox_webhook_secret="webhook-secret",
        demo_api_key="cdk_abc_secret",
    )
    return MeshContext(
        options=mesh_options,
        plan=plan,
        credentials=credentials,
        db_urls=resolve_db_urls(mesh_options, services, {}),
        running=frozenset(spec.name for spec in services),
    )


@pytest.mark.parametrize("spec", PRESENT, ids=lambda spec: spec.name)
def test_assembled_environment_is_declared_and_complete(spec: ServiceSpec) -> None:
    env = service_env(spec, context())
    config = config_class(spec)
    declared = {setting.env_name for setting in config.declared_settings()}
    prefix = env_prefix_for(spec.name)
    accounts = f"{prefix}CARRIER_ACCOUNTS", f"{prefix}ACCOUNT_"
    ours = {name for name in env if name.startswith(prefix) and not name.startswith(accounts)}
    assert ours - declared == set(), "the launcher sets variables the service does not declare"
    parsed = config.from_env(env)  # every required setting present and valid
    assert parsed.db_url == sqlite_url(Path("/data/mesh"), spec)
    if spec.name == "carrier-adapter":
        (sandbox,) = load_accounts(env)
        assert sandbox.carrier == "sandbox"
        assert float(sandbox.get("time_scale")) > 1  # fast mode


def test_targets_name_the_services_grpc_ports() -> None:
    ctx = context()
    order = service_env(ORDER, ctx)
    assert order["CROSSDOCK_ORDER_INVENTORY_TARGET"] == "127.0.0.1:50051"
    assert order["CROSSDOCK_ORDER_SCHEMA_REGISTRY_TARGET"] == "127.0.0.1:50050"
    assert order["CROSSDOCK_ORDER_NATS_URL"] == "nats://order:pw-order@127.0.0.1:4222"
    gateway = service_env(GATEWAY, ctx)
    assert gateway["CROSSDOCK_GATEWAY_HTTP_PORT"] == "8080"
    assert gateway["CROSSDOCK_GATEWAY_ADMIN_PORT"] == "8081"
    assert gateway["CROSSDOCK_GATEWAY_SHIPMENT_TARGET"] == "127.0.0.1:50053"
    assert gateway["CROSSDOCK_DEMO_API_KEY"] == "cdk_abc_secret"


def test_a_service_not_in_the_mesh_gets_an_empty_target() -> None:
    without_shipment = tuple(spec for spec in ALL_SERVICES if spec.name != "shipment")
    gateway = service_env(GATEWAY, context(without_shipment))
    assert gateway["CROSSDOCK_GATEWAY_SHIPMENT_TARGET"] == ""  # its routes answer 503
    assert gateway["CROSSDOCK_GATEWAY_ORDER_TARGET"] == "127.0.0.1:50052"


def test_database_urls_sqlite_postgres_and_overrides() -> None:
    sqlite = MeshOptions(data_dir=Path("/d"), db_urls={"order": "postgresql+psycopg://x/o"})
    urls = resolve_db_urls(sqlite, ALL_SERVICES, {})
    assert urls["order"] == "postgresql+psycopg://x/o"
    assert urls["carrier-adapter"] == "sqlite:////d/carrier_adapter.db"
    postgres = MeshOptions(data_dir=Path("/d"), db="postgres")
    by_service = {spec.name: f"pg/{spec.db_name}" for spec in ALL_SERVICES}
    assert resolve_db_urls(postgres, ALL_SERVICES, by_service)["billing"] == "pg/billing"


def test_options_from_env() -> None:
    options = MeshOptions.from_env(
        {
            "CROSSDOCK_DB": "postgres",
            "CROSSDOCK_ORDER_DB_URL": "postgresql+psycopg://me@db/order",
            "CROSSDOCK_DEMO_API_KEY": "cdk_k_s",
            "CROSSDOCK_DATA_DIR": "/elsewhere",
        },
        ports="free",
    )
    assert options.db == "postgres"
    assert options.db_urls == {"order": "postgresql+psycopg://me@db/order"}
    assert options.demo_api_key == "cdk_k_s"
    assert options.data_dir == Path("/elsewhere")
    assert options.ports == "free"
    with pytest.raises(ValueError, match="CROSSDOCK_DB"):
        MeshOptions.from_env({"CROSSDOCK_DB": "mysql"})


def test_child_environment_keeps_only_its_own_crossdock_settings() -> None:
    parent = {
        "PATH": "/bin",
        "CROSSDOCK_ORDER_PICK_TIMEOUT_SECONDS": "60",
        "CROSSDOCK_BILLING_DB_URL": "sqlite:///elsewhere.db",
        "CROSSDOCK_NATS_URL": "nats://stray:4222",
        "CROSSDOCK_FAULT_FILE": "/tmp/fault",
    }
    env = child_environ(parent, {"CROSSDOCK_ORDER_GRPC_PORT": "1"}, "CROSSDOCK_ORDER_")
    # The kit's test-only fault file reaches every process (its spec names the point).
    assert env["CROSSDOCK_FAULT_FILE"] == "/tmp/fault"
    assert env["PATH"] == "/bin"
    assert env["CROSSDOCK_ORDER_PICK_TIMEOUT_SECONDS"] == "60"
    assert env["CROSSDOCK_ORDER_GRPC_PORT"] == "1"
    assert "CROSSDOCK_BILLING_DB_URL" not in env
    assert "CROSSDOCK_NATS_URL" not in env


def test_sandbox_process_mode_points_carrier_adapter_at_it_and_pushes_via_the_gateway() -> None:
    services = ALL_SERVICES
    ctx = context(services, sandbox_process=True)
    carrier = next(spec for spec in services if spec.name == "carrier-adapter")
    env = service_env(carrier, ctx)
    assert env["CROSSDOCK_CARRIER_ADAPTER_ACCOUNT_SANDBOX_ENDPOINT"] == "http://127.0.0.1:8086"
    assert env["CROSSDOCK_CARRIER_ADAPTER_SANDBOX_PUSH"] == "off"  # the process pushes
    assert "CROSSDOCK_CARRIER_ADAPTER_ACCOUNT_SANDBOX_TIME_SCALE" not in env
    config_class(carrier).from_env(env)
    (sandbox,) = load_accounts(env)
    assert sandbox.get("endpoint") == "http://127.0.0.1:8086"

    command = sandbox_carrier_command(ctx)
    assert command[1:3] == ["-m", "tools.sandbox_carrier"]
    push_url = command[command.index("--push-url") + 1]
    assert push_url == "http://127.0.0.1:8080/v1/carriers/sandbox/webhooks"
    assert command[command.index("--time-scale") + 1] == "14400"  # fast, as in-process
    assert "webhook-secret" not in " ".join(command)  # the secret travels in the environment
    assert sandbox_carrier_env(ctx) == {SANDBOX_SECRET_ENV: "webhook-secret"}


def test_the_sandbox_clock_runs_at_the_asked_scale_in_process_and_as_its_own_process() -> None:
    carrier = next(spec for spec in ALL_SERVICES if spec.name == "carrier-adapter")
    in_process = service_env(carrier, context(sandbox_time_scale=57600))
    assert in_process["CROSSDOCK_CARRIER_ADAPTER_ACCOUNT_SANDBOX_TIME_SCALE"] == "57600"
    (sandbox,) = load_accounts(in_process)
    assert sandbox.get("time_scale") == "57600"
    command = sandbox_carrier_command(context(sandbox_process=True, sandbox_time_scale=57600))
    assert command[command.index("--time-scale") + 1] == "57600"
    default = service_env(carrier, context())
    assert default["CROSSDOCK_CARRIER_ADAPTER_ACCOUNT_SANDBOX_TIME_SCALE"] == "14400"
