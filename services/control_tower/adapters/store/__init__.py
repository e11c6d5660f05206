"""The control tower's store: tables, statements and Alembic migrations (services.kit.migrations:
`crossdock migrate --service control-tower --db-url URL` from a Job)."""

from __future__ import annotations

from services.kit.migrations import migrate as _migrate
from services.kit.migrations import service_script_location

SERVICE = "control-tower"


def migrate(url: str) -> None:
    """Upgrade the control tower's database at `url` to the latest revision (idempotent)."""
    _migrate(url, service_script_location(SERVICE))
