"""Alembic env.py of the schema registry (the kit's convention)."""

from services.kit.migrations import run_env
from services.schema_registry.adapters.store.tables import metadata

run_env(metadata)
