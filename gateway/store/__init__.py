"""The gateway's own database: partners, API keys, idempotency records, rate-limit buckets.

Tables in `tables`, Alembic scripts in `migrations/` (the kit's layout). `migrate(url)` upgrades
a database to the latest revision; the gateway runs it at start unless told not to.
"""

from __future__ import annotations

from pathlib import Path

from services.kit.migrations import migrate as _migrate

SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"


def migrate(url: str) -> None:
    """Upgrade the gateway database at `url` to the latest revision (idempotent)."""
    _migrate(url, SCRIPT_LOCATION)
