"""Inventory's store: tables, the SQL repository, Alembic migrations and the retried unit of work.

Migrations follow the kit's convention (services.kit.migrations): `migrate(url)` here, or
`crossdock migrate --service inventory --db-url URL` from a Job.
"""

from __future__ import annotations

from services.inventory.store.repository import SqlInventory
from services.inventory.store.unit_of_work import UlidIds, run_retrying
from services.kit.migrations import migrate as _migrate
from services.kit.migrations import service_script_location

SERVICE = "inventory"

__all__ = ["SERVICE", "SqlInventory", "UlidIds", "migrate", "run_retrying"]


def migrate(url: str) -> None:
    """Upgrade the inventory database at `url` to the latest revision (idempotent)."""
    _migrate(url, service_script_location(SERVICE))
