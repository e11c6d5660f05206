from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shipment_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """shipment's own database, on an embedded SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shipment.db'}"
    else:
        yield request.getfixturevalue("postgres_url")
