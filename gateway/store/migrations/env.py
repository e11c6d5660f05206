"""Alembic env.py of the gateway (the kit's convention)."""

import gateway.webhooks.tables  # noqa: F401  (registers the webhook tables on the metadata)
from gateway.store.tables import metadata
from services.kit.migrations import run_env

run_env(metadata)
