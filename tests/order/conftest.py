from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Run a service test on embedded SQLite files and on PostgreSQL databases."""
    return str(request.param)


@pytest.fixture
def db_urls(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[dict]:
    """One database per service (order, inventory), as deployed."""
    if backend == "sqlite":
        yield {name: f"sqlite:///{tmp_path / f'{name}.db'}" for name in ("order", "inventory")}
        return
    cluster = request.getfixturevalue("postgres_cluster")
    names = {name: cluster.create_database() for name in ("order", "inventory")}
    yield {name: cluster.url(db) for name, db in names.items()}
    for db in names.values():
        cluster.drop_database(db)
