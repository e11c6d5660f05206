"""Alembic env.py of the inventory service (the kit's convention)."""

from services.inventory.adapters.store.tables import metadata
from services.kit.migrations import run_env

run_env(metadata)
