from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.inventory.support import World


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def service_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same service test on an embedded SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'inventory.db'}"
    else:
        yield request.getfixturevalue("postgres_url")
