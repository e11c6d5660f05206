"""Alembic env.py of the gateway (the kit's convention)."""

from gateway.store.tables import metadata
from services.kit.migrations import run_env

run_env(metadata)
