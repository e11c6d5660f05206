"""End-to-end tests share the session mesh of tests/fixtures/mesh.py (registered in
tests/conftest.py, so the page tests and these use one mesh); test_replica_mesh.py runs some of
them again on the replica mesh of tests/fixtures/replica_mesh.py."""

from tests.fixtures.replica_mesh import replica_mesh, replica_mesh_runner

__all__ = ["replica_mesh", "replica_mesh_runner"]
