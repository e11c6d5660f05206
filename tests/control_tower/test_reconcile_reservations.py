"""reservations against the real inventory and order (with shipment, as order needs it) on a
real nats-server and SQLite files: a healthy allocation is no drift; a reservation for an order
order never created (a caller that crashed after reserving) is leaked, released through
inventory's ReleaseReservation, and closed by the next run; a position whose reserved quantity
no longer matches its reservations is a finding an operator resolves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from crossdock.inventory.v1 import inventory_pb2 as inv
from crossdock.inventory.v1 import inventory_service_pb2 as inv_svc
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as order_svc
from nats.aio.client import Client as NATS

from services.control_tower.adapters.clients import OwnerRefused
from services.control_tower.adapters.store import SERVICE, migrate
from services.control_tower.app import reconcile
from services.control_tower.app.reconcile import FindingsQuery, Reconciler
from services.control_tower.app.reconciliation.checks import CHECKS, CheckContext, registry
from services.control_tower.app.reconciliation.checks.reservations import Reservations
from services.control_tower.domain.exceptions import CHECK_OWNERS
from services.control_tower.domain.reconciliation import Drift, Finding, FindingState
from services.kit.db import Database
from services.kit.uow import UnitsOfWork
from tests.fixtures.catalog import EAST, seed
from tests.fixtures.nats import NatsServer
from tests.fixtures.waiting import wait_for
from tests.inventory.service_support import order_id, reserve_request
from tests.order.service_support import Mesh, order_request, running_mesh

CHECK = "reservations"


def test_it_is_registered_with_its_owner() -> None:
    assert isinstance(CHECKS[CHECK], Reservations)
    assert CHECK_OWNERS[CHECK] == "inventory"


async def test_a_position_drift_is_left_to_an_operator() -> None:
    drift = Drift(
        "position:SKU-A:WH-EAST",
        "",
        "position SKU-A@WH-EAST: reserved 3, active reservations sum 2",
    )
    with pytest.raises(OwnerRefused, match="no RPC that recomputes") as refused:
        await Reservations().correct(CheckContext(), drift)
    assert refused.value.code == "NOT_CORRECTABLE"


async def test_a_scan_without_the_owners_targets_fails_plainly() -> None:
    with pytest.raises(RuntimeError, match="needs the inventory and order targets"):
        async for _ in Reservations().scan(CheckContext()):
            pass


@pytest.fixture
def urls(tmp_path: Path) -> dict[str, str]:
    return {
        name: f"sqlite:///{tmp_path / name}.db"
        for name in ("order", "inventory", "shipment", "tower")
    }


@pytest.fixture
async def mesh(
    urls: dict[str, str], nats_server: NatsServer, nats_client: NATS
) -> AsyncIterator[Mesh]:
    async with running_mesh(urls, nats_server.url, nats_client) as running:
        yield running


@pytest.fixture
def units(urls: dict[str, str]) -> Iterator[UnitsOfWork]:
    migrate(urls["tower"])
    database = Database(urls["tower"], service=SERVICE)
    yield UnitsOfWork(database)
    database.engine.dispose()


async def findings(units: UnitsOfWork, state: FindingState | None = None) -> list[Finding]:
    found, _ = await units.run(
        reconcile.list_findings, FindingsQuery(check=CHECK, state=state, page_size=100)
    )
    return sorted(found, key=lambda f: f.subject_id)


async def reserved(mesh: Mesh) -> tuple[int, int]:
    answer = await mesh.inventory.ListPositions(
        inv_svc.ListPositionsRequest(sku="SKU-A", location_id=EAST)
    )
    (position,) = answer.positions
    return position.quantity_on_hand, position.quantity_reserved


async def test_leaked_reservation_is_released_and_a_healthy_allocation_is_no_drift(
    mesh: Mesh, units: UnitsOfWork, urls: dict[str, str]
) -> None:
    # Grace 0: every reservation is old enough to be judged (the default spares the last 10 min).
    ctx = CheckContext(
        # The mesh's stubs are on aio channels: async stubs, typed as the sync ones.
        inventory=mesh.inventory,  # type: ignore[arg-type]
        order=mesh.orders,  # type: ignore[arg-type]
        reservations_grace_seconds=0,
    )
    reconciler = Reconciler(units, registry(Reservations()), ctx)
    await seed(mesh.inventory, ["SKU-A"], {("SKU-A", EAST): 10})
    created = await mesh.orders.CreateOrder(order_request([("SKU-A", 2)]))
    await wait_for(
        lambda: mesh.orders.GetOrder(order_svc.GetOrderRequest(order_id=created.order.order_id)),
        lambda answer: answer.order.status == order_pb2.ORDER_STATUS_RELEASED,
    )
    assert await reserved(mesh) == (10, 2)

    healthy = (await reconciler.run([CHECK])).runs[0]
    assert (healthy.error, healthy.drifts, healthy.scanned) == (
        "",
        0,
        2,
    )  # 1 reservation, 1 position
    assert await findings(units) == []

    # What a caller that crashed between reserving and recording its order leaves behind.
    ghost = order_id(424242)
    leak = await mesh.inventory.ReserveStock(
        reserve_request(ghost, EAST, [("SKU-A", 3)], "ghost-order-key")
    )
    leaked_id = leak.reservation.reservation_id
    assert await reserved(mesh) == (10, 5)

    seen = (await reconciler.run([CHECK], report_only=True)).runs[0]
    assert (seen.error, seen.drifts, seen.new_findings, seen.corrected) == ("", 1, 1, 0)
    (finding,) = await findings(units, FindingState.OPEN)
    assert (finding.subject_id, finding.order_id) == (f"reservation:{leaked_id}", ghost)
    assert f"of order {ghost} (unknown to order) holds SKU-Ax3 at {EAST}" in finding.evidence
    assert finding.correction is None
    assert await reserved(mesh) == (10, 5)  # report-only changed nothing

    fixed = (await reconciler.run([CHECK])).runs[0]
    assert (fixed.error, fixed.drifts, fixed.new_findings, fixed.corrected) == ("", 1, 0, 1)
    (finding,) = await findings(units, FindingState.OPEN)
    assert finding.correction is not None and finding.correction.succeeded
    assert finding.correction.result == f"reservation {leaked_id} released"
    assert await reserved(mesh) == (10, 2)
    active = await mesh.inventory.ListReservations(inv_svc.ListReservationsRequest(order_id=ghost))
    assert [r.status for r in active.reservations] == [inv.RESERVATION_STATUS_RELEASED]

    closed = (await reconciler.run([CHECK])).runs[0]
    assert (closed.error, closed.drifts, closed.closed, closed.open_findings) == ("", 0, 1, 0)
