"""Alembic env.py of the kit's test service: exactly what a real service's env.py looks like."""

from services.kit.migrations import run_env
from tests.kit.service.tables import metadata

run_env(metadata)
