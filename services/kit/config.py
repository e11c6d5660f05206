"""Service configuration, declared once and read once from the environment at start.

A service declares its settings as a frozen dataclass-like class with one env prefix:

    class OrderConfig(ServiceConfig, service="order"):
        inventory_target: str = setting(description="host:port of the inventory gRPC service")
        reservation_ttl_seconds: float = setting(default=900.0, minimum=1, description="...")

    config = OrderConfig.from_env()         # CROSSDOCK_ORDER_GRPC_PORT, ..._INVENTORY_TARGET, ...
    OrderConfig.declared_settings()         # every Setting with its full env name (manifest tests)

A setting without a default is required. Every problem (missing, malformed, out of range, not of
its form) is collected and raised together as one ConfigError that names each variable, so a
broken deployment fails at once and says what to fix. Values are stripped; an empty value counts
as unset. Supported types: str, int, float, bool and Literal[...] of strings.

A setting may name its whole variable (`env="CROSSDOCK_DEMO_API_KEY"`, for one that other tools
read too) and a form (`check=`: a function that raises ValueError("<what it expects>")).
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self, dataclass_transform, overload

__all__ = [
    "ConfigError",
    "DatabaseServiceConfig",
    "LogLevel",
    "ServiceConfig",
    "Setting",
    "env_prefix_for",
    "setting",
]

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

_META_KEY = "crossdock.setting"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class ConfigError(Exception):
    """The environment does not make a valid configuration; `problems` has one line per variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class _SettingMeta:
    description: str
    secret: bool
    minimum: float | None
    maximum: float | None
    env: str | None = None
    check: Callable[[Any], None] | None = None


@dataclass(frozen=True)
class Setting:
    """One declared setting, as a manifest or a doc generator sees it."""

    field_name: str
    env_name: str
    type_name: str
    required: bool
    default: object
    description: str
    secret: bool
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


@overload
def setting(
    *,
    default: Any,
    description: str,
    secret: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    env: str | None = None,
    check: Callable[[Any], None] | None = None,
) -> Any: ...


@overload
def setting(
    *,
    description: str,
    secret: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    env: str | None = None,
    check: Callable[[Any], None] | None = None,
) -> Any: ...


def setting(
    *,
    default: Any = dataclasses.MISSING,
    description: str,
    secret: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    env: str | None = None,
    check: Callable[[Any], None] | None = None,
) -> Any:
    """Declare a setting. No default means required; `secret` keeps the value out of errors/logs.

    `env` is the whole variable name when it is not `<prefix><FIELD NAME>`; `check(value)` raises
    ValueError("<the form expected>") for a value of the right type but the wrong form.
    """
    meta = _SettingMeta(description, secret, minimum, maximum, env, check)
    return dataclasses.field(default=default, repr=not secret, metadata={_META_KEY: meta})


def env_prefix_for(service: str) -> str:
    """`carrier-adapter` → `CROSSDOCK_CARRIER_ADAPTER_`."""
    return "CROSSDOCK_" + re.sub(r"[^A-Za-z0-9]+", "_", service).upper().strip("_") + "_"


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(setting,))
class _ConfigBase:
    """Turns each subclass into a frozen, keyword-only dataclass and reads it from the env."""

    service: ClassVar[str] = ""
    env_prefix: ClassVar[str] = ""

    def __init_subclass__(cls, *, service: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if service is not None:
            cls.service = service
            cls.env_prefix = env_prefix_for(service)
        dataclasses.dataclass(frozen=True, kw_only=True)(cls)

    @classmethod
    def declared_settings(cls) -> tuple[Setting, ...]:
        """Every setting of this service, with its full environment variable name."""
        if not cls.env_prefix:
            raise TypeError(f"{cls.__name__} declares no service: use `service=...` in its bases")
        hints = typing.get_type_hints(cls)
        declared: list[Setting] = []
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]
            meta = field.metadata.get(_META_KEY)
            if not isinstance(meta, _SettingMeta):
                continue
            type_name, choices, _ = _parser_for(hints[field.name])
            required = field.default is dataclasses.MISSING
            declared.append(
                Setting(
                    field_name=field.name,
                    env_name=meta.env or cls.env_prefix + field.name.upper(),
                    type_name=type_name,
                    required=required,
                    default=None if required else field.default,
                    description=meta.description,
                    secret=meta.secret,
                    choices=choices,
                    minimum=meta.minimum,
                    maximum=meta.maximum,
                )
            )
        return tuple(declared)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read and validate every setting; raise one ConfigError listing every problem."""
        env = os.environ if environ is None else environ
        hints = typing.get_type_hints(cls)
        checks = _checks_of(cls)
        values: dict[str, object] = {}
        problems: list[str] = []
        for item in cls.declared_settings():
            raw = env.get(item.env_name, "").strip()
            if raw == "":
                if item.required:
                    problems.append(f"{item.env_name} is required but not set ({item.description})")
                continue
            _, _, parse = _parser_for(hints[item.field_name])
            try:
                value = parse(raw)
                _check_range(item, value)
                check = checks.get(item.field_name)
                if check is not None:
                    check(value)
            except ValueError as error:
                shown = "" if item.secret else f" (got {raw!r})"
                problems.append(f"{item.env_name} must be {error}{shown}")
                continue
            values[item.field_name] = value
        if problems:
            raise ConfigError(problems)
        return cls(**values)

    def public_view(self) -> dict[str, object]:
        """The values by env name with secrets masked: safe to log at start."""
        return {
            item.env_name: "***" if item.secret else getattr(self, item.field_name)
            for item in self.declared_settings()
        }


def _checks_of(cls: type) -> dict[str, Callable[[Any], None]]:
    """Field name → its `check=` function, for the settings that declare one."""
    found: dict[str, Callable[[Any], None]] = {}
    for field in dataclasses.fields(cls):
        meta = field.metadata.get(_META_KEY)
        if isinstance(meta, _SettingMeta) and meta.check is not None:
            found[field.name] = meta.check
    return found


def _parser_for(hint: object) -> tuple[str, tuple[str, ...], Callable[[str], object]]:
    """(type name for docs, allowed values, parser raising ValueError("<expected>"))."""
    if typing.get_origin(hint) is Literal:
        choices = tuple(str(choice) for choice in typing.get_args(hint))

        def parse_choice(raw: str) -> object:
            value = raw.upper() if all(c.isupper() for c in choices) else raw
            if value not in choices:
                raise ValueError("one of " + ", ".join(choices))
            return value

        return "str", choices, parse_choice
    if isinstance(hint, types.UnionType) or hint not in (str, int, float, bool):
        raise TypeError(f"unsupported setting type {hint!r}: use str, int, float, bool or Literal")
    if hint is bool:
        return "bool", (), _parse_bool
    if hint is int:
        return "int", (), _parse_int
    if hint is float:
        return "float", (), _parse_float
    return "str", (), str


def _parse_bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("a boolean (true/false, 1/0, yes/no, on/off)")


def _parse_int(raw: str) -> int:
    try:
        return int(raw, 10)
    except ValueError:
        raise ValueError("an integer") from None


def _parse_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("a finite number")
    return value


def _check_range(item: Setting, value: object) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    low, high = item.minimum, item.maximum
    if (low is None or value >= low) and (high is None or value <= high):
        return
    kind = "an integer" if item.type_name == "int" else "a number"
    if low is not None and high is not None:
        raise ValueError(f"{kind} between {low:g} and {high:g}")
    if low is not None:
        raise ValueError(f"{kind} at least {low:g}")
    raise ValueError(f"{kind} at most {high:g}")


class ServiceConfig(_ConfigBase):
    """The settings every service has. Subclass with `service="<name>"` to add your own."""

    bind_host: str = setting(
        default="0.0.0.0", description="interface the gRPC and metrics servers listen on"
    )
    grpc_port: int = setting(
        minimum=0, maximum=65535, description="gRPC listen port (0 picks a free port)"
    )
    metrics_port: int = setting(
        minimum=0, maximum=65535, description="Prometheus /metrics port (0 picks a free port)"
    )
    db_url: str = setting(secret=True, description="SQLAlchemy URL of the service's own database")
    startup_database_wait_seconds: float = setting(
        default=300.0,
        minimum=0,
        description="at start, how long to wait for an unavailable database (PostgreSQL "
        "restarting, failing over) before giving up; the process waits rather than exits",
    )
    nats_url: str = setting(
        default="nats://127.0.0.1:4222", secret=True, description="NATS server URL(s)"
    )
    shutdown_grace_seconds: float = setting(
        default=20.0,
        minimum=0,
        description="on SIGTERM, how long in-flight gRPC calls may take to finish",
    )
    shutdown_hook_timeout_seconds: float = setting(
        default=10.0,
        minimum=0,
        description="on SIGTERM, how long each shutdown hook (outbox flush, consumers) may take",
    )
    grpc_client_timeout_seconds: float = setting(
        default=5.0,
        minimum=0.001,
        description="deadline of an outgoing gRPC call that has none (and no incoming deadline)",
    )
    log_level: LogLevel = setting(default="INFO", description="minimum level of JSON log lines")
    stream_replicas: int = setting(
        default=1,
        minimum=1,
        maximum=5,
        description="JetStream replicas of the streams this service declares (3 in production)",
    )
    schema_registry_target: str = setting(
        default="",
        description="schema registry gRPC HOST:PORT; at start the service registers the schemas "
        "of the events it produces and stamps their ids on events (empty: no registry)",
    )


class DatabaseServiceConfig(ServiceConfig):
    """The settings of a service whose database schema it migrates itself in embedded mode."""

    migrate_on_start: bool = setting(
        default=True,
        description="run the database migrations at start (off when a Kubernetes Job runs them)",
    )
