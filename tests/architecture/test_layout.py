"""Every service has the same rooms (DESIGN "Layout"), so whoever knows one knows all.

The test lists each service's top-level entries and requires exactly the common layout: domain/,
app.py or app/, adapters/, entrypoints/, config.py, main.py, README.md. Anything else at the top
is a room the next engineer would not know to look in.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SERVICES_ROOT = Path(__file__).resolve().parents[2] / "services"
SERVICES = [
    "order",
    "inventory",
    "shipment",
    "billing",
    "carrier_adapter",
    "schema_registry",
    "control_tower",
]

REQUIRED = {"__init__.py", "README.md", "config.py", "main.py", "domain", "adapters", "entrypoints"}
APP = {"app.py", "app"}  # one use-case module, or a package when there are many


def top_level(service: str) -> set[str]:
    return {
        entry.name
        for entry in (SERVICES_ROOT / service).iterdir()
        if entry.name != "__pycache__" and not entry.name.startswith(".")
    }


def test_every_service_folder_is_listed_here() -> None:
    folders = {p.name for p in SERVICES_ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert folders - {"kit"} == set(SERVICES)


@pytest.mark.parametrize("service", SERVICES)
def test_service_has_the_common_layout(service: str) -> None:
    entries = top_level(service)
    missing = REQUIRED - entries
    assert not missing, f"services/{service} lacks {sorted(missing)}"
    assert len(entries & APP) == 1, f"services/{service} needs exactly one of app.py and app/"
    extra = entries - REQUIRED - APP
    assert not extra, f"services/{service} has rooms outside the common layout: {sorted(extra)}"
    for package in ("domain", "adapters", "entrypoints"):
        assert (SERVICES_ROOT / service / package / "__init__.py").is_file()
    assert (SERVICES_ROOT / service / "adapters" / "store").is_dir(), "the store is an adapter"


@pytest.mark.parametrize("service", SERVICES)
def test_service_readme_says_what_it_owns_and_its_events(service: str) -> None:
    readme = (SERVICES_ROOT / service / "README.md").read_text(encoding="utf-8").lower()
    for topic in ("owns", "rpc", "event", "where to change"):
        assert topic in readme, f"services/{service}/README.md does not cover {topic!r}"
