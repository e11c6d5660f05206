"""Shared fixtures, and the split of the suite into unit and integration tests.

The real fixtures live in tests/fixtures/ so other test trees can import them.

Every test is marked either `integration` or `unit` at collection (`pytest -m unit` is the fast,
no-I/O run, `make test-fast`). A test is `integration` when any of these holds:

- it lives in a folder whose tests all drive the system from outside (INTEGRATION_FOLDERS);
- it uses, directly or through other fixtures, a fixture that reaches outside the process
  (IO_FIXTURES: nats-server, PostgreSQL, a database URL, files under tmp_path);
- it is marked `integration` itself (a module doing I/O with no such fixture, e.g. starting a
  gRPC server or a child process inline, says `pytestmark = pytest.mark.integration`).

Everything else is `unit`: pure code, fakes, in-memory stores.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.databases import db_backend, db_url, new_db_url, sqlite_url
from tests.fixtures.mesh import mesh
from tests.fixtures.nats import nats_client, nats_server, nats_server_fn
from tests.fixtures.postgres import postgres_cluster, postgres_url

__all__ = [
    "db_backend",
    "db_url",
    "mesh",
    "nats_client",
    "nats_server",
    "nats_server_fn",
    "new_db_url",
    "postgres_cluster",
    "postgres_url",
    "sqlite_url",
]

TESTS_ROOT = Path(__file__).resolve().parent

# Folders of tests that run the system from outside: the whole mesh, rendered manifests.
INTEGRATION_FOLDERS = frozenset({"e2e", "deploy", "pages"})

# Fixtures that start a server or child process, or touch the file system.
IO_FIXTURES = frozenset(
    {
        "nats_server",
        "nats_server_fn",
        "nats_client",
        "postgres_cluster",
        "postgres_url",
        "db_backend",
        "db_url",
        "new_db_url",
        "sqlite_url",
        "mesh",
        "tmp_path",
        "tmp_path_factory",
    }
)


def in_integration_folder(item: pytest.Item) -> bool:
    path = item.path.resolve()
    return (
        path.is_relative_to(TESTS_ROOT)
        and path.relative_to(TESTS_ROOT).parts[0] in INTEGRATION_FOLDERS
    )


def is_integration(item: pytest.Item) -> bool:
    return (
        item.get_closest_marker("integration") is not None
        or in_integration_folder(item)
        or not IO_FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if is_integration(item):
            if item.get_closest_marker("integration") is None:
                item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)
