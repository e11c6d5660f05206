"""Seeded order histories (bench/seed_orders.py) are ones the mesh would have completed: written
into a fresh mesh's SQLite databases, then read by the real mesh, every reconciliation check
finds them consistent, and the partner API serves them like any completed order."""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bench.reconcile_runs import check_names, run_checks
from bench.seed_history import place
from bench.seed_orders import SeedReport, database_urls, seed
from bench.seed_plan import DEFAULT_SETTLED_FOR, plan_orders
from localmesh import Mesh, MeshOptions, start_mesh
from services.control_tower.app.reconciliation.checks.event_flow import CONSUMER_DURABLES
from services.kit import outbox
from services.kit.catalog import load_catalog
from services.kit.db import Database

pytestmark = pytest.mark.slow

ORDERS = 200
SEED = 7
TOWER = "CROSSDOCK_CONTROL_TOWER_"


@dataclass(frozen=True)
class SeededMesh:
    mesh: Mesh
    report: SeedReport
    # Seeded events inside event_flow's window that a kit service consumes.
    events_in_window: int


@contextmanager
def environment(settings: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededMesh]:
    data_dir = tmp_path_factory.mktemp("seeded-mesh")
    # A recent seed over one day: its last hour's events are in event_flow's window (and written
    # with their inbox rows), and every label is inside the labels check's 7-day lookback.
    urls = database_urls(data_dir, {})
    report = asyncio.run(
        seed(urls, orders=ORDERS, seed_value=SEED, days=1, batch_size=64, recent=True)
    )
    # A generous start: the machine may be busy (the default suits an idle one).
    options = MeshOptions(data_dir=data_dir, ports="free", startup_timeout_seconds=240)
    settings = {
        # Only the test runs the checks (report-only): the tower's schedule would run them at
        # start, in correct mode, before every owner is up.
        f"{TOWER}RECONCILE_ENABLED": "false",
        # event_flow leaves events written in the last minute unjudged (in flight); the seeded
        # ones were written moments ago.
        f"{TOWER}RECONCILE_EVENT_FLOW_GRACE_SECONDS": "1",
    }
    with environment(settings), start_mesh(options) as mesh:
        yield SeededMesh(mesh, report, _seeded_in_window(urls))


def _seeded_in_window(urls: dict[str, str]) -> int:
    """The seeded events event_flow judges: those of its last hour that a kit service consumes
    (read with the outbox's own ledger query)."""
    judged = [e for e in load_catalog() if set(e.consumers) & set(CONSUMER_DURABLES)]
    now = time.time()

    async def count() -> int:
        found = 0
        for event_type in judged:
            db = Database(urls[event_type.producer], service=event_type.producer)
            try:
                rows, _ = await db.run(
                    outbox.published_page, event_type.subject, now - 3000, now, None, 100_000
                )
                found += len(rows)
            finally:
                await db.close()
        return found

    return asyncio.run(count())


def _get(mesh: Mesh, path: str) -> dict[str, Any]:
    request = urllib.request.Request(
        mesh.gateway_url + path, headers={"Authorization": f"Bearer {mesh.demo_api_key}"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        body: dict[str, Any] = json.loads(answer.read())
        return body


def test_every_check_finds_the_seeded_histories_consistent(seeded: SeededMesh) -> None:
    found = asyncio.run(run_checks(seeded.mesh.grpc_targets["control-tower"], check_names()))
    runs = {run.check: run for run in found}
    assert set(runs) == set(check_names())
    assert {name: (run.error, run.drifts) for name, run in runs.items()} == {
        name: ("", 0) for name in runs
    }
    # The checks that compare orders, shipments, invoices and labels read every seeded one.
    assert runs["delivered_vs_invoiced"].scanned >= ORDERS
    assert runs["order_totals"].scanned >= ORDERS
    assert runs["labels"].scanned >= ORDERS
    # event_flow compared the seeded events of its window and found each applied.
    assert seeded.events_in_window > 0
    assert runs["event_flow"].scanned >= seeded.events_in_window


def test_seeded_orders_read_back_completed_through_the_partner_api(seeded: SeededMesh) -> None:
    for order_id in (seeded.report.first_order_id, seeded.report.last_order_id):
        order = _get(seeded.mesh, f"/v1/orders/{order_id}")["order"]
        assert order["status"] == "ORDER_STATUS_COMPLETED"
        assert order["lines"]
        assert all(
            line["quantityDelivered"] == line["quantityOrdered"] == line["quantityInvoiced"]
            for line in order["lines"]
        )
        invoices = _get(seeded.mesh, f"/v1/invoices?orderId={order_id}")["invoices"]
        assert len(invoices) == 1
        assert invoices[0]["invoiceNumber"].startswith("INV-")


def test_the_same_seed_plans_the_same_orders() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def ids(seed_value: int) -> list[tuple[str, str, str]]:
        plans = plan_orders(3, seed=seed_value, days=2, settled_for=DEFAULT_SETTLED_FOR, now=now)
        placed = [place(plan, "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P", seed_value) for plan in plans]
        return [(h.order.order_id, h.reserve.idempotency_key, repr(h.plan.lines)) for h in placed]

    assert ids(3) == ids(3)
    assert ids(3) != ids(4)


def test_a_running_mesh_is_not_seeded(tmp_path: Path) -> None:
    from bench.seed_orders import ensure_stopped

    (tmp_path / "mesh.json").write_text("{}")
    with pytest.raises(RuntimeError, match="stop it before seeding"):
        ensure_stopped(tmp_path)
