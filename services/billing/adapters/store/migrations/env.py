"""Alembic env.py of the billing service (the kit's convention)."""

from services.billing.adapters.store.tables import metadata
from services.kit.migrations import run_env

run_env(metadata)
