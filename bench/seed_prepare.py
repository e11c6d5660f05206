"""Make a fresh data dir seedable without running a mesh first: what the mesh's first start
would have put there before any order.

- each seeded service's database migrated to head (its own Alembic scripts, as at boot);
- the demo items and warehouses (localmesh.seed's, through inventory's CreateItem and
  CreateLocation use cases; their stock comes with the mesh's first start, as always);
- the demo partner in the gateway's database (the gateway's own query, which the gateway's
  start then finds by name and gives its key).

Idempotent: an item, warehouse or partner already there is kept.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection

from gateway.adapters.store import migrate as migrate_gateway
from localmesh.seed import DEMO_ITEMS, DEMO_WAREHOUSES, item_input, location_input
from services.inventory import app as inventory_app
from services.inventory.adapters import contracts as inventory_contracts
from services.inventory.adapters.store import SqlInventory
from services.kit.migrations import migrate, service_script_location
from services.kit.uow import UnitOfWork

GATEWAY = "gateway"


def migrate_all(urls: Mapping[str, str]) -> None:
    """Each database to its service's latest schema (blocking)."""
    for service, url in urls.items():
        if service == GATEWAY:
            migrate_gateway(url)
        else:
            migrate(url, service_script_location(service))


def ensure_demo_catalog(conn: Connection) -> int:
    """The demo items and warehouses inventory lacks; returns how many were created."""
    repo = SqlInventory(conn)
    uow = UnitOfWork(conn, None)
    created = 0
    for demo_item in DEMO_ITEMS:
        if repo.get_item(demo_item.sku) is None:
            inventory_app.create_item(
                uow, inventory_contracts.item_to_domain(item_input(demo_item))
            )
            created += 1
    for warehouse in DEMO_WAREHOUSES:
        if repo.get_location(warehouse.location_id) is None:
            inventory_app.create_location(
                uow, inventory_contracts.location_to_domain(location_input(warehouse))
            )
            created += 1
    return created
