"""Alembic env.py of the gateway (the kit's convention)."""

import gateway.adapters.store.webhook_tables  # noqa: F401  (adds the webhook tables to metadata)
from gateway.adapters.store.tables import metadata
from services.kit.migrations import run_env

run_env(metadata)
