"""The same mesh on PostgreSQL (CROSSDOCK_DB=postgres): a local cluster, a database per service."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import httpx
import psycopg
import pytest

from localmesh import MeshOptions, start_mesh
from localmesh.probes import grpc_health
from localmesh.seed import DEMO_ITEMS

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_mesh_runs_on_postgres_and_keeps_its_data_across_runs() -> None:
    # Not under pytest's tmp dir: as root the cluster runs as `postgres`, which must reach it.
    data_dir = Path(tempfile.mkdtemp(prefix="crossdock-mesh-pg-"))
    os.chmod(data_dir, 0o755)
    options = MeshOptions(data_dir=data_dir, ports="free", db="postgres", warehouse_simulator=False)
    try:
        with start_mesh(options) as mesh:
            assert all(url.startswith("postgresql+psycopg://") for url in mesh.db_urls.values())
            assert {grpc_health(target) for target in mesh.grpc_targets.values()} == {"SERVING"}
            answer = httpx.get(
                mesh.gateway_url + "/v1/items",
                headers={"Authorization": f"Bearer {mesh.demo_api_key}"},
            )
            assert answer.status_code == 200, answer.text
            assert {item.sku for item in DEMO_ITEMS} <= {i["sku"] for i in answer.json()["items"]}
            inventory_url = mesh.db_urls["inventory"].replace("postgresql+psycopg", "postgresql")
            with psycopg.connect(inventory_url) as conn:
                items = conn.execute("SELECT count(*) FROM items").fetchone()
            assert items is not None and items[0] == len(DEMO_ITEMS)
        with start_mesh(options) as again:  # the second run reuses the cluster and its data
            with psycopg.connect(
                again.db_urls["inventory"].replace("postgresql+psycopg", "postgresql")
            ) as conn:
                items = conn.execute("SELECT count(*) FROM items").fetchone()
            assert items is not None and items[0] == len(DEMO_ITEMS)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
