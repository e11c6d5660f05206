"""The registry's store: tables (`tables`), queries (`queries`), Alembic migrations (`migrations`).

Migrations follow the kit's convention (services.kit.migrations): `migrate(url)` here, or
`crossdock migrate --service schema-registry --db-url URL` from a Job.
"""

from __future__ import annotations

from services.kit.migrations import migrate as _migrate
from services.kit.migrations import service_script_location

SERVICE = "schema-registry"


def migrate(url: str) -> None:
    """Upgrade the registry database at `url` to the latest revision (idempotent)."""
    _migrate(url, service_script_location(SERVICE))
