"""Alembic env.py of the order service (the kit's convention)."""

from services.kit.migrations import run_env
from services.order.adapters.store.tables import metadata

run_env(metadata)
