"""Every setting the launcher hands to a service, checked before any process starts.

Each service's own config class reads the environment the launcher will give that service (the
same `from_env` the service runs first thing), and so do the service's other setting readers
(`ServiceSpec.setting_checks`, e.g. carrier-adapter's accounts). Every problem of every service
comes back in one ConfigError, one line per variable, so `crossdock run` prints them and starts
nothing, instead of a service dying with a traceback after nats-server and half the mesh are up.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from localmesh.services import ServiceSpec
from services.kit.config import ConfigError, ServiceConfig

# karrio (which carrier-adapter's main imports) logs a banner to stderr when it is imported, at
# the level this variable has then; the launcher's terminal should show only the launcher's lines.
_KARRIO_LOG_LEVEL = "KARRIO_LOG_LEVEL"


def config_class(spec: ServiceSpec) -> type[ServiceConfig]:
    """The ServiceConfig subclass that the service's main module declares for it."""
    with _quiet_library_imports():
        module = importlib.import_module(spec.module)
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, ServiceConfig)
            and value.service == spec.name
        ):
            return value
    raise RuntimeError(f"{spec.module} declares no ServiceConfig for {spec.name}")


def setting_check(reference: str) -> Callable[[Mapping[str, str]], Any]:
    """`module:function` → the function."""
    module_name, _, name = reference.partition(":")
    with _quiet_library_imports():
        module = importlib.import_module(module_name)
    found: Callable[[Mapping[str, str]], Any] = getattr(module, name)
    return found


def check_settings(environments: Sequence[tuple[ServiceSpec, Mapping[str, str]]]) -> None:
    """Raise one ConfigError listing every bad setting of every (service, its environment)."""
    problems: list[str] = []
    for spec, environ in environments:
        readers: list[Callable[[Mapping[str, str]], Any]] = [config_class(spec).from_env]
        readers += [setting_check(reference) for reference in spec.setting_checks]
        for read in readers:
            try:
                read(environ)
            except ConfigError as error:
                problems += [problem for problem in error.problems if problem not in problems]
    if problems:
        raise ConfigError(problems)


@contextlib.contextmanager
def _quiet_library_imports() -> Iterator[None]:
    if _KARRIO_LOG_LEVEL in os.environ:
        yield
        return
    os.environ[_KARRIO_LOG_LEVEL] = "WARNING"
    try:
        yield
    finally:
        os.environ.pop(_KARRIO_LOG_LEVEL, None)
