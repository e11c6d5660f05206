"""Render docs/configuration.md from the services' own ServiceConfig declarations.

    python tools/gen_config_docs.py           # rewrite docs/configuration.md
    python tools/gen_config_docs.py --check   # exit 1 when the committed file is stale

Every `services/<name>/main.py` and `gateway/main.py` is imported and each ServiceConfig subclass
it defines is documented: variable, type, default, required, secret, description. The carrier
adapter's per-account variables come from its CARRIER_FIELDS table, since accounts are open-ended.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from services.kit.config import ServiceConfig, Setting  # noqa: E402

OUTPUT = REPO / "docs" / "configuration.md"

# Variables read outside any service's config class (CROSSDOCK_DEMO_API_KEY is the gateway's).
OTHER_VARIABLES = (
    ("CROSSDOCK_DB", "`make run` / `crossdock run`: `sqlite` (default) or `postgres`"),
    ("CROSSDOCK_DATA_DIR", "`crossdock run` / `demo`: the local data dir (default `.crossdock/`)"),
    ("CROSSDOCK_NATS_URL", "the operator CLI's NATS server (`crossdock streams`, `dlq`, `replay`)"),
    ("CROSSDOCK_DB_URL", "the operator CLI's database (`crossdock outbox status`, `migrate`)"),
    (
        "CROSSDOCK_NATS_SERVER",
        "the nats-server binary for local runs and tests, >= 2.10 (default: the venv's pinned one)",
    ),
    ("CROSSDOCK_PG_BIN", "the PostgreSQL server binaries' directory (default: newest installed)"),
    ("OTEL_TRACES_EXPORTER", "turns OpenTelemetry tracing on (`console`, `otlp`, …); unset: off"),
)


def main_modules() -> Iterator[str]:
    for main in sorted((REPO / "services").glob("*/main.py")):
        yield f"services.{main.parent.name}.main"
    if (REPO / "gateway" / "main.py").exists():
        yield "gateway.main"


def config_classes() -> list[type[ServiceConfig]]:
    """Every ServiceConfig subclass a service's main module defines or imports, by service."""
    found: dict[str, type[ServiceConfig]] = {}
    for module_name in main_modules():
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, ServiceConfig)
                and value is not ServiceConfig
                and value.service
            ):
                found[value.service] = value
    return [found[name] for name in sorted(found)]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(item: Setting) -> str:
    if item.required:
        return "—"
    if item.default == "":
        return '`""`'
    if isinstance(item.default, bool):
        return f"`{str(item.default).lower()}`"
    if isinstance(item.default, float) and item.default.is_integer():
        return f"`{item.default:g}`"
    return f"`{item.default}`"


def _type(item: Setting) -> str:
    if item.choices:
        return " \\| ".join(f"`{choice}`" for choice in item.choices)
    bounds = ""
    if item.minimum is not None or item.maximum is not None:
        low = "" if item.minimum is None else f"{item.minimum:g}"
        high = "" if item.maximum is None else f"{item.maximum:g}"
        bounds = f" ({low}…{high})"
    return item.type_name + bounds


def render_service(config: type[ServiceConfig]) -> str:
    rows = [
        "| variable | type | default | required | secret | description |",
        "|---|---|---|---|---|---|",
    ]
    for item in sorted(config.declared_settings(), key=lambda setting: setting.env_name):
        rows.append(
            f"| `{item.env_name}` | {_type(item)} | {_default(item)} | "
            f"{'yes' if item.required else ''} | {'yes' if item.secret else ''} | "
            f"{_cell(item.description)} |"
        )
    return f"## {config.service}\n\n`{config.__module__}.{config.__name__}`\n\n" + "\n".join(rows)


def render_carrier_accounts() -> str:
    from services.carrier_adapter.config import CARRIER_FIELDS, PREFIX

    rows = [
        f"`{PREFIX}CARRIER_ACCOUNTS` lists the account ids (comma-separated, required). Each "
        f"account `<ID>` then reads `{PREFIX}ACCOUNT_<ID>_CARRIER` (default: the id, when it "
        f"is a carrier code), `{PREFIX}ACCOUNT_<ID>_TEST_MODE` (bool) and its carrier's fields:",
        "",
        "| carrier | field (`…ACCOUNT_<ID>_<FIELD>`) | type | required | secret |",
        "|---|---|---|---|---|",
    ]
    for carrier in sorted(CARRIER_FIELDS):
        for spec in CARRIER_FIELDS[carrier]:
            rows.append(
                f"| {carrier} | `{spec.name.upper()}` | {spec.kind} | "
                f"{'yes' if spec.required else ''} | {'yes' if spec.secret else ''} |"
            )
    return "## carrier-adapter accounts\n\n" + "\n".join(rows)


def render() -> str:
    sections = [
        "# Configuration reference\n\n"
        "Generated by `tools/gen_config_docs.py` from each service's `ServiceConfig` "
        "declaration: do not edit (run `make config-docs`). Each service reads its settings "
        "once, at start, from variables with its own prefix; a setting without a default is "
        "required, and a missing or malformed one stops the service with a message naming "
        "the variable. Secret settings are never logged.",
    ]
    sections += [render_service(config) for config in config_classes()]
    sections.append(render_carrier_accounts())
    other = ["| variable | what it does |", "|---|---|"]
    other += [f"| `{name}` | {_cell(text)} |" for name, text in OTHER_VARIABLES]
    sections.append("## Other variables\n\n" + "\n".join(other))
    return "\n\n".join(sections) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run make config-docs", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
