"""Alembic env.py of the carrier-adapter service (the kit's convention)."""

from services.carrier_adapter.adapters.store.tables import metadata
from services.kit.migrations import run_env

run_env(metadata)
