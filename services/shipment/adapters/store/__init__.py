"""Shipment's store: tables, queries, codecs and Alembic migrations (services.kit.migrations)."""

from __future__ import annotations

from services.kit.migrations import migrate as _migrate
from services.kit.migrations import service_script_location

SERVICE = "shipment"


def migrate(url: str) -> None:
    """Upgrade the shipment database at `url` to the latest revision (idempotent)."""
    _migrate(url, service_script_location(SERVICE))
