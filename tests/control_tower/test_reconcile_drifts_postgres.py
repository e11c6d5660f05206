"""The purged-delivery drift on a mesh on PostgreSQL (CROSSDOCK_DB=postgres: a local cluster, a
database per service): the same case as test_e2e_reconcile.py on the session mesh (SQLite),
run through the same steps. A delivered event deleted from the SHIPMENT stream before billing
consumed it: delivered_vs_invoiced and event_flow find it, report-only changes nothing, shipment
re-emits it, billing invoices it once, the next runs close both findings.

The mesh is started once for the module (it is slow); the other drifts run on PostgreSQL
without a mesh (test_reconcile_drifts.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from localmesh import Mesh, MeshOptions, start_mesh
from localmesh.probes import StartFailed
from tests.control_tower import test_e2e_reconcile as purged_delivery
from tests.fixtures.mesh import TOWER_SETTINGS

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def postgres_mesh() -> Iterator[Mesh]:
    # Not under pytest's tmp dir: as root the cluster runs as `postgres`, which must reach it.
    data_dir = Path(tempfile.mkdtemp(prefix="crossdock-drifts-pg-"))
    os.chmod(data_dir, 0o755)
    options = MeshOptions(
        data_dir=data_dir, ports="free", db="postgres", fast=True, sandbox_time_scale=57600
    )
    # The tower's settings as on the session mesh: reconciliation only when the test asks, and
    # event_flow judging events 2 s old.
    saved = {name: os.environ.get(name) for name in TOWER_SETTINGS}
    os.environ.update(TOWER_SETTINGS)
    try:
        with start_mesh(options) as running:
            restore(saved)
            yield running
    except StartFailed as error:
        pytest.fail(f"the mesh on PostgreSQL did not start: {error}", pytrace=False)
    finally:
        restore(saved)
        shutil.rmtree(data_dir, ignore_errors=True)


def restore(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


async def test_a_purged_delivery_on_postgres_is_found_corrected_once_and_closed(
    postgres_mesh: Mesh, capsys: pytest.CaptureFixture[str]
) -> None:
    assert all(url.startswith("postgresql+psycopg://") for url in postgres_mesh.db_urls.values())
    await purged_delivery.test_a_purged_delivery_is_found_reported_corrected_once_and_closed(
        postgres_mesh, capsys
    )
