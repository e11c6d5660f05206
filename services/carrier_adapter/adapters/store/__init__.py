"""carrier-adapter's store: tables, queries and Alembic migrations (services.kit convention:
`crossdock migrate --service carrier-adapter --db-url URL` from a Job)."""

from __future__ import annotations

from services.carrier_adapter.config import SERVICE
from services.kit.migrations import migrate as _migrate
from services.kit.migrations import service_script_location

__all__ = ["SERVICE", "migrate"]


def migrate(url: str) -> None:
    """Upgrade the carrier-adapter database at `url` to the latest revision (idempotent)."""
    _migrate(url, service_script_location(SERVICE))
