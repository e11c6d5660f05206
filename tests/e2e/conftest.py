"""The whole local mesh, started once per test session, for end-to-end tests.

    def test_something(mesh: Mesh) -> None:
        mesh.gateway_url, mesh.demo_api_key, mesh.grpc_targets["order"], mesh.nats_admin_url

It is the same launcher as `make run` (localmesh): real nats-server with per-service users, every
service as its own process on its own SQLite file, the gateway, seeded demo data, the warehouse
simulator and the sandbox carrier in fast mode, all on free loopback ports. Tests share it, so
they must not stop its processes; tests that need to kill things start a mesh of their own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localmesh import Mesh, MeshOptions, start_mesh
from localmesh.probes import StartFailed


@pytest.fixture(scope="session")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    options = MeshOptions(
        data_dir=tmp_path_factory.mktemp("mesh"), ports="free", db="sqlite", fast=True
    )
    try:
        with start_mesh(options) as running:
            yield running
    except StartFailed as error:
        pytest.fail(f"the local mesh did not start: {error}", pytrace=False)
