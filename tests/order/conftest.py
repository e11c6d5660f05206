from __future__ import annotations

import pytest

from tests.fixtures.databases import NewDbUrl


@pytest.fixture
def db_urls(new_db_url: NewDbUrl) -> dict[str, str]:
    """One database per service (order, inventory, shipment), as deployed: SQLite files, then
    PostgreSQL."""
    return {name: new_db_url(name) for name in ("order", "inventory", "shipment")}
