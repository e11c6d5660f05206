"""The gateway's own database: partners, API keys, operator keys, idempotency records, rate-limit
buckets and the webhook tables.

Tables in `tables` and `webhook_tables`, partner/key/bucket queries in `queries`, operator keys
in `operator_keys`, Idempotency-Key records in `idempotency`, Alembic scripts in `migrations/`.
The gateway is not under services/, so the kit's `service_script_location` does not find it:
SCRIPT_LOCATION is computed here, next to this file. `migrate(url)` upgrades a database to the
latest revision; the gateway runs it at start unless told not to.
"""

from __future__ import annotations

from pathlib import Path

from services.kit.migrations import migrate as _migrate

SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"


def migrate(url: str) -> None:
    """Upgrade the gateway database at `url` to the latest revision (idempotent)."""
    _migrate(url, SCRIPT_LOCATION)
