"""Fixtures for the runtime kit's tests: the kit's test service (tests/fixtures/kittest)."""

from __future__ import annotations

from tests.fixtures.kittest.fixtures import child_env, kittest_dir, pb

__all__ = ["child_env", "kittest_dir", "pb"]
