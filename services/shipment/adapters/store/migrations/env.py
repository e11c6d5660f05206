"""Alembic env.py of the shipment service (the kit's convention)."""

from services.kit.migrations import run_env
from services.shipment.adapters.store.tables import metadata

run_env(metadata)
