"""Alembic env.py of the control tower (the kit's convention)."""

from services.control_tower.adapters.store.tables import metadata
from services.kit.migrations import run_env

run_env(metadata)
