"""Fixtures for the runtime kit's tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.kit.kitproto import REPO, compile_kittest, import_kittest

SERVICE_MIGRATIONS = Path(__file__).resolve().parent / "service" / "migrations"


@pytest.fixture(scope="session")
def kittest_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_kittest(tmp_path_factory.mktemp("kittest_pb"))


@pytest.fixture(scope="session")
def pb(kittest_dir: Path) -> ModuleType:
    """The compiled test events module (ThingHappened, ThingHappenedV2, ThingShipped)."""
    return import_kittest(kittest_dir)


@pytest.fixture(scope="session")
def child_env(kittest_dir: Path) -> dict[str, str]:
    """Environment for child processes: the repo and the compiled test events importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(kittest_dir), str(REPO)])
    env.pop("CROSSDOCK_FAULT", None)
    return env


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'service.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on an embedded SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'service.db'}"
    else:
        yield request.getfixturevalue("postgres_url")
