"""Inventory's store: tables, the SQL repository, row codecs and the Alembic migrations.

Migrations follow the kit's convention (services.kit.migrations, folder `migrations/` here):
`migrate(url)`, or `crossdock migrate --service inventory --db-url URL` from a Job.
"""

from __future__ import annotations

from services.inventory.adapters.store.repository import SqlInventory
from services.kit.migrations import migrate as _migrate
from services.kit.migrations import service_script_location

SERVICE = "inventory"

__all__ = ["SERVICE", "SqlInventory", "migrate"]


def migrate(url: str) -> None:
    """Upgrade the inventory database at `url` to the latest revision (idempotent)."""
    _migrate(url, service_script_location(SERVICE))
