from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NATS

from tests.fixtures.nats import NatsServer
from tests.fixtures.running import Inventory, running_inventory
from tests.inventory.support import World


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
async def inventory(
    db_url: str, nats_server: NatsServer, nats_client: NATS
) -> AsyncIterator[Inventory]:
    """The real inventory service, in-process, on `db_url` (SQLite, then PostgreSQL)."""
    async with running_inventory(db_url, nats_server.url, nats_client) as service:
        yield service
