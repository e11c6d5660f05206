"""Order's store: tables, aggregate codec, queries and the saga command queue, migrations.

Migrations follow the kit's convention: `migrate(url)` here, or
`crossdock migrate --service order --db-url URL` from a Job.
"""

from __future__ import annotations

from services.kit.migrations import migrate as _migrate
from services.kit.migrations import service_script_location

SERVICE = "order"


def migrate(url: str) -> None:
    """Upgrade the order database at `url` to the latest revision (idempotent)."""
    _migrate(url, service_script_location(SERVICE))
