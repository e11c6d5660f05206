"""Service config: declared once, read once from CROSSDOCK_<SERVICE>_*, failing fast and clearly."""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest

from services.kit.config import ConfigError, ServiceConfig, env_prefix_for, setting


class CarrierConfig(ServiceConfig, service="carrier-adapter"):
    karrio_url: str = setting(description="base URL of the karrio gateway")
    api_token: str = setting(secret=True, description="karrio API token")
    poll_interval_seconds: float = setting(
        default=60.0, minimum=1, description="how often tracking is polled"
    )
    sandbox: bool = setting(default=False, description="use the carriers' test endpoints")
    mode: Literal["live", "replay"] = setting(default="live", description="connector mode")


P = "CROSSDOCK_CARRIER_ADAPTER_"
COMPLETE = {
    P + "GRPC_PORT": "50055",
    P + "METRICS_PORT": "9105",
    P + "DB_URL": "postgresql+psycopg://carrier:s3cret@db/carrier",
    P + "KARRIO_URL": "http://karrio:5002",
    P + "API_TOKEN": "tok-123",
}


def _problems(environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        CarrierConfig.from_env(environ)
    return str(caught.value)


def test_complete_environment_gives_typed_values_and_defaults() -> None:
    config = CarrierConfig.from_env({**COMPLETE, P + "SANDBOX": "yes", "UNRELATED": "x"})

    assert config.grpc_port == 50055 and config.metrics_port == 9105
    assert config.karrio_url == "http://karrio:5002"
    assert config.sandbox is True
    assert config.poll_interval_seconds == 60.0
    assert config.nats_url == "nats://127.0.0.1:4222"
    assert config.log_level == "INFO"
    assert config.mode == "live"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.grpc_port = 1  # type: ignore[misc]


def test_missing_required_variable_fails_naming_it() -> None:
    environ = dict(COMPLETE)
    del environ[P + "KARRIO_URL"]
    environ[P + "API_TOKEN"] = ""  # empty counts as unset

    message = _problems(environ)

    assert f"{P}KARRIO_URL is required but not set (base URL of the karrio gateway)" in message
    assert f"{P}API_TOKEN is required" in message


def test_malformed_int_names_the_variable_and_the_expected_type() -> None:
    message = _problems({**COMPLETE, P + "GRPC_PORT": "fifty"})

    assert f"{P}GRPC_PORT must be an integer (got 'fifty')" in message


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("GRPC_PORT", "70000", "an integer between 0 and 65535"),
        ("POLL_INTERVAL_SECONDS", "0.5", "a number at least 1"),
        ("POLL_INTERVAL_SECONDS", "soon", "a number"),
        ("SANDBOX", "maybe", "a boolean"),
        ("LOG_LEVEL", "LOUD", "one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("MODE", "dry-run", "one of live, replay"),
    ],
)
def test_malformed_values_name_the_variable_and_the_expectation(
    name: str, raw: str, expected: str
) -> None:
    message = _problems({**COMPLETE, P + name: raw})

    assert f"{P}{name} must be {expected}" in message


def test_every_problem_is_reported_at_once() -> None:
    error_text = _problems({P + "GRPC_PORT": "x"})

    for name in ("GRPC_PORT", "METRICS_PORT", "DB_URL", "KARRIO_URL", "API_TOKEN"):
        assert P + name in error_text


def test_secret_values_are_never_echoed() -> None:
    message = _problems({**COMPLETE, P + "GRPC_PORT": "x", P + "DB_URL": ""})
    config = CarrierConfig.from_env(COMPLETE)

    assert "tok-123" not in repr(config) and "s3cret" not in repr(config)
    assert config.public_view()[P + "API_TOKEN"] == "***"
    assert config.public_view()[P + "KARRIO_URL"] == "http://karrio:5002"
    assert "s3cret" not in message


def test_log_level_is_case_insensitive() -> None:
    assert CarrierConfig.from_env({**COMPLETE, P + "LOG_LEVEL": "debug"}).log_level == "DEBUG"


def test_declared_settings_list_every_env_var_for_manifest_checks() -> None:
    declared = {s.env_name: s for s in CarrierConfig.declared_settings()}

    assert set(declared) == {
        P + name
        for name in (
            "BIND_HOST",
            "GRPC_PORT",
            "METRICS_PORT",
            "DB_URL",
            "STARTUP_DATABASE_WAIT_SECONDS",
            "NATS_URL",
            "SHUTDOWN_GRACE_SECONDS",
            "SHUTDOWN_HOOK_TIMEOUT_SECONDS",
            "GRPC_CLIENT_TIMEOUT_SECONDS",
            "LOG_LEVEL",
            "STREAM_REPLICAS",
            "SCHEMA_REGISTRY_TARGET",
            "KARRIO_URL",
            "API_TOKEN",
            "POLL_INTERVAL_SECONDS",
            "SANDBOX",
            "MODE",
        )
    }
    assert declared[P + "GRPC_PORT"].required and declared[P + "GRPC_PORT"].type_name == "int"
    assert not declared[P + "NATS_URL"].required
    assert declared[P + "MODE"].choices == ("live", "replay")
    assert declared[P + "API_TOKEN"].secret
    assert all(s.description for s in declared.values())


def test_env_prefix_is_derived_from_the_service_name() -> None:
    assert env_prefix_for("order") == "CROSSDOCK_ORDER_"
    assert env_prefix_for("schema-registry") == "CROSSDOCK_SCHEMA_REGISTRY_"
    assert CarrierConfig.env_prefix == P


def test_unsupported_setting_type_is_refused() -> None:
    class Broken(ServiceConfig, service="broken"):
        ratio: complex = setting(default=1j, description="no parser exists for this")

    with pytest.raises(TypeError, match="unsupported setting type"):
        Broken.declared_settings()


def _licence_form(value: str) -> None:
    if not value.startswith("lic-"):
        raise ValueError("a licence of the form lic-<number>")


class SharedConfig(ServiceConfig, service="shared"):
    licence: str = setting(
        default="", env="CROSSDOCK_LICENCE", check=_licence_form, description="read by two tools"
    )
    signing_key: str = setting(
        default="", secret=True, check=_licence_form, description="a secret with a form"
    )


S = "CROSSDOCK_SHARED_"
SHARED = {S + "GRPC_PORT": "1", S + "METRICS_PORT": "2", S + "DB_URL": "sqlite://"}


def test_a_setting_may_name_its_whole_variable() -> None:
    declared = {s.field_name: s for s in SharedConfig.declared_settings()}
    config = SharedConfig.from_env({**SHARED, "CROSSDOCK_LICENCE": "lic-7", S + "LICENCE": "x"})

    assert declared["licence"].env_name == "CROSSDOCK_LICENCE"
    assert config.licence == "lic-7"
    assert config.public_view()["CROSSDOCK_LICENCE"] == "lic-7"


def test_a_value_not_of_its_form_names_the_variable_and_the_form() -> None:
    with pytest.raises(ConfigError) as caught:
        SharedConfig.from_env(
            {
                **SHARED,
                "CROSSDOCK_LICENCE": "gpl",
                S + "SIGNING_KEY": "hunter2",
                S + "GRPC_PORT": "x",
            }
        )

    assert caught.value.problems == [
        f"{S}GRPC_PORT must be an integer (got 'x')",
        "CROSSDOCK_LICENCE must be a licence of the form lic-<number> (got 'gpl')",
        f"{S}SIGNING_KEY must be a licence of the form lic-<number>",  # a secret: not echoed
    ]


def test_an_unset_setting_keeps_its_default_without_a_form_check() -> None:
    config = SharedConfig.from_env({**SHARED, "CROSSDOCK_LICENCE": "  "})

    assert config.licence == "" and config.signing_key == ""
