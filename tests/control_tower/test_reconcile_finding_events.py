"""Reconciliation findings published as `crossdock.reconciliation.finding.v1`, end to end: the
tower's runtime (its outbox, relay and schema registration) on a real nats-server, a real schema
registry and SQLite files, with the reservations check against the real inventory and order.

A leaked reservation opens a finding (one OPENED event), a rerun that finds it again publishes
nothing, its correction publishes one CORRECTION_ANSWERED, and the run that no longer finds it
one CLOSED; each read back from the RECONCILIATION stream with a plain nats-py consumer. On the
session mesh (per-service NATS users, the registry, the tower's own process), a lost delivery's
finding reaches the stream the same way, its schema id stamped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import nats
import pytest
from crossdock.events.v1 import reconciliation_events_pb2 as events_pb
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as order_svc
from crossdock.tower.v1 import tower_pb2, tower_pb2_grpc
from nats.aio.client import Client as NATS

from localmesh import Mesh as LocalMesh
from services.control_tower.adapters.clients import OwnerRefused
from services.control_tower.adapters.store import SERVICE
from services.control_tower.app.reconcile import Reconciler
from services.control_tower.app.reconciliation.checks import CheckContext, ScanPage, registry
from services.control_tower.app.reconciliation.checks.reservations import Reservations
from services.control_tower.domain.reconciliation import Drift
from services.kit import events as ev
from services.kit.metrics import ServiceMetrics
from services.kit.migrations import service_script_location
from services.kit.registry_client import SchemaRegistryClient
from services.kit.relay import RelaySettings
from services.kit.runtime import EventRuntime, open_event_runtime
from services.kit.server import ServiceServer
from services.schema_registry.adapters.buf import BufRunner, CompatibilityChecker
from services.schema_registry.adapters.store import migrate as migrate_registry
from services.schema_registry.entrypoints.grpc import add_to_server
from tests.control_tower.test_e2e_reconcile import purge_delivery_before_billing, run_check
from tests.fixtures.catalog import EAST, seed
from tests.fixtures.events import stream_messages
from tests.fixtures.nats import NatsServer
from tests.fixtures.waiting import wait_for
from tests.inventory.service_support import order_id, reserve_request
from tests.order.service_support import Mesh, order_request, running_mesh
from tests.schema_registry.conftest import open_registry

SUBJECT = "crossdock.reconciliation.finding.v1"
STREAM = "RECONCILIATION"
CHECK = "reservations"


@pytest.fixture
def urls(tmp_path: Path) -> dict[str, str]:
    return {
        name: f"sqlite:///{tmp_path / name}.db"
        for name in ("order", "inventory", "shipment", "tower", "registry")
    }


@pytest.fixture
async def registry_target(urls: dict[str, str]) -> AsyncIterator[str]:
    """The schema registry's gRPC API on a free port, as its main.py serves it."""
    migrate_registry(urls["registry"])
    schemas = open_registry(urls["registry"], CompatibilityChecker(BufRunner()))
    server = ServiceServer(
        "schema-registry",
        host="127.0.0.1",
        port=0,
        grace_seconds=0,
        metrics=ServiceMetrics("schema-registry"),
    )
    add_to_server(server, schemas)
    await server.start()
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        await server.shutdown()
        await schemas.db.close()


async def open_tower(db_url: str, nats_url: str, registry_target: str = "") -> EventRuntime:
    """The tower's event runtime as its main.py opens it: migrated, its schemas registered when
    there is a registry, its relay publishing (no projection consumers: the tests read the
    stream themselves)."""
    return await open_event_runtime(
        service=SERVICE,
        db_url=db_url,
        nats_url=nats_url,
        migrations=service_script_location(SERVICE),
        registry_target=registry_target or None,
        relay_settings=RelaySettings(poll_interval=0.05),
    )


@pytest.fixture
async def tower(urls: dict[str, str], nats_server: NatsServer) -> AsyncIterator[EventRuntime]:
    """The tower without a registry: schema ids are process-wide, and the owners running in
    this process register none (the registry has a test of its own below)."""
    runtime = await open_tower(urls["tower"], nats_server.url)
    try:
        yield runtime
    finally:
        await runtime.close()


@pytest.fixture
async def owners(
    urls: dict[str, str], nats_server: NatsServer, nats_client: NATS
) -> AsyncIterator[Mesh]:
    """Order, inventory and shipment in this process (the session `mesh` is the whole mesh)."""
    async with running_mesh(urls, nats_server.url, nats_client) as running:
        yield running


async def published(tower: EventRuntime, nc: NATS) -> list[tuple[dict[str, str], Any]]:
    """Every finding event in the stream, in stream order, read with an ordered consumer once
    the relay has published everything committed (so the stream's count is final)."""
    assert await tower.relay.flush(10)
    js = nc.jetstream()
    info = await js.stream_info(STREAM)
    found: list[tuple[dict[str, str], Any]] = []
    if not info.state.messages:
        return found
    subscription = await js.subscribe(SUBJECT, ordered_consumer=True)
    try:
        for _ in range(info.state.messages):
            msg = await subscription.next_msg(timeout=10)
            assert msg.subject == SUBJECT
            found.append(
                (dict(msg.headers or {}), events_pb.ReconciliationFinding.FromString(msg.data))
            )
    finally:
        await subscription.unsubscribe()
    return found


def changes(events: list[tuple[dict[str, str], Any]]) -> list[int]:
    return [event.change for _, event in events]


async def test_a_findings_open_correction_and_close_are_published_once_each(
    owners: Mesh, tower: EventRuntime, nats_client: NATS
) -> None:
    ctx = CheckContext(
        inventory=owners.inventory,  # type: ignore[arg-type]
        order=owners.orders,  # type: ignore[arg-type]
        reservations_grace_seconds=0,
    )
    reconciler = Reconciler(tower.units, registry(Reservations()), ctx)
    await seed(owners.inventory, ["SKU-A"], {("SKU-A", EAST): 10})
    created = await owners.orders.CreateOrder(order_request([("SKU-A", 2)]))
    await wait_for(
        lambda: owners.orders.GetOrder(order_svc.GetOrderRequest(order_id=created.order.order_id)),
        lambda answer: answer.order.status == order_pb2.ORDER_STATUS_RELEASED,
    )
    healthy = (await reconciler.run([CHECK])).runs[0]
    assert (healthy.error, healthy.drifts) == ("", 0)
    assert await published(tower, nats_client) == []

    # What a caller that crashed between reserving and recording its order leaves behind.
    ghost = order_id(515151)
    leak = await owners.inventory.ReserveStock(
        reserve_request(ghost, EAST, [("SKU-A", 3)], "ghost-order-key")
    )
    leaked_id = leak.reservation.reservation_id

    seen = (await reconciler.run([CHECK], report_only=True)).runs[0]
    assert (seen.error, seen.new_findings) == ("", 1)
    events = await published(tower, nats_client)
    assert changes(events) == [events_pb.FINDING_CHANGE_OPENED]
    headers, opened = events[0]
    finding = opened.finding
    assert (finding.check, finding.subject_id, finding.order_id) == (
        CHECK,
        f"reservation:{leaked_id}",
        ghost,
    )
    assert finding.state == tower_pb2.FINDING_STATE_OPEN and finding.runs_seen == 1
    assert not finding.action and not finding.HasField("close_time")
    assert opened.owner == "inventory"
    assert f"of order {ghost} (unknown to order) holds SKU-Ax3" in finding.evidence
    assert headers[ev.CE_TYPE] == SUBJECT and headers[ev.CE_SOURCE] == "crossdock/control-tower"
    assert headers[ev.CE_SUBJECT] == str(finding.finding_id)
    assert headers[ev.NATS_MSG_ID] == headers[ev.CE_ID]

    # The same drift again, report-only: a sighting, not news.
    again = (await reconciler.run([CHECK], report_only=True)).runs[0]
    assert (again.error, again.drifts, again.new_findings) == ("", 1, 0)
    assert changes(await published(tower, nats_client)) == [events_pb.FINDING_CHANGE_OPENED]

    fixed = (await reconciler.run([CHECK])).runs[0]
    assert (fixed.error, fixed.corrected) == ("", 1)
    events = await published(tower, nats_client)
    assert changes(events) == [
        events_pb.FINDING_CHANGE_OPENED,
        events_pb.FINDING_CHANGE_CORRECTION_ANSWERED,
    ]
    answered = events[1][1].finding
    assert answered.finding_id == finding.finding_id
    assert answered.state == tower_pb2.FINDING_STATE_OPEN
    assert (answered.action, answered.result, answered.corrected) == (
        "inventory.ReleaseReservation",
        f"reservation {leaked_id} released",
        True,
    )
    assert events[1][1].occur_time == answered.correct_time

    closed_run = (await reconciler.run([CHECK])).runs[0]
    assert (closed_run.error, closed_run.closed) == ("", 1)
    quiet = (await reconciler.run([CHECK])).runs[0]
    assert (quiet.error, quiet.drifts, quiet.closed) == ("", 0, 0)
    events = await published(tower, nats_client)
    assert changes(events) == [
        events_pb.FINDING_CHANGE_OPENED,
        events_pb.FINDING_CHANGE_CORRECTION_ANSWERED,
        events_pb.FINDING_CHANGE_CLOSED,
    ]
    headers, closing = events[2]
    assert closing.finding.state == tower_pb2.FINDING_STATE_CLOSED
    assert closing.occur_time == closing.finding.close_time
    assert closing.finding.result == f"reservation {leaked_id} released"
    assert headers[ev.CE_SUBJECT] == str(finding.finding_id)
    assert len({h[ev.CE_ID] for h, _ in events}) == 3


@dataclass
class RefusedCheck:
    """A check whose one drift its owner refuses to correct, the same way every time."""

    name: str = "refused_check"
    owner: str = "billing"
    action: str = "billing.Fix"
    default_interval_seconds: float = 60.0
    corrected: list[str] = field(default_factory=list)

    async def scan(self, ctx: CheckContext) -> AsyncIterator[ScanPage]:
        yield ScanPage(1, [Drift("s1", "ord_s1", "missing")])

    async def correct(self, ctx: CheckContext, drift: Drift) -> str:
        self.corrected.append(drift.subject_id)
        raise OwnerRefused(self.action, "FAILED_PRECONDITION", "not now")


async def test_the_schema_is_registered_and_a_repeated_refusal_is_announced_once(
    urls: dict[str, str], nats_server: NatsServer, nats_client: NATS, registry_target: str
) -> None:
    tower = await open_tower(urls["tower"], nats_server.url, registry_target)
    try:
        check = RefusedCheck()
        reconciler = Reconciler(tower.units, registry(check), CheckContext())
        for _ in range(3):
            (run,) = (await reconciler.run()).runs
            assert (run.error, run.drifts, run.corrected) == ("", 1, 0)
        assert check.corrected == ["s1", "s1", "s1"]  # asked again each run
        events = await published(tower, nats_client)
    finally:
        await tower.close()
    assert changes(events) == [
        events_pb.FINDING_CHANGE_OPENED,
        events_pb.FINDING_CHANGE_CORRECTION_ANSWERED,
    ]
    answered = events[1][1].finding
    assert (answered.result, answered.corrected) == ("FAILED_PRECONDITION: not now", False)
    assert events[1][1].owner == "billing"

    # The schema the events name is the one the tower registered for the subject at its start.
    async with SchemaRegistryClient(registry_target, timeout_seconds=10) as schemas:
        assert SUBJECT in await schemas.list_subjects()
        latest = await schemas.get_version(SUBJECT)
    assert latest.message_name == "crossdock.events.v1.ReconciliationFinding"
    assert {h[ev.CE_DATASCHEMA] for h, _ in events} == {
        f"{ev.DATASCHEMA_ID_PREFIX}{latest.schema_id}"
    }


def _about(messages: list[Any], subject_id: str) -> list[Any]:
    found = [
        (dict(m.headers or {}), events_pb.ReconciliationFinding.FromString(m.data))
        for m in messages
    ]
    return [(h, e) for h, e in found if e.finding.subject_id == subject_id]


@pytest.mark.integration
@pytest.mark.slow
async def test_on_the_mesh_a_lost_deliverys_finding_reaches_the_stream(mesh: LocalMesh) -> None:
    _, shipment_id, _ = await purge_delivery_before_billing(mesh)
    client = await nats.connect(mesh.nats_admin_url)
    try:
        js = client.jetstream()

        async def announced() -> list[Any]:
            return _about(await stream_messages(js, STREAM, SUBJECT), shipment_id)

        with grpc.insecure_channel(mesh.grpc_targets["control-tower"]) as channel:
            tower = tower_pb2_grpc.TowerServiceStub(channel)
            run_check(tower, report_only=True)
            events = await wait_for(announced, lambda got: len(got) >= 1, timeout=30)
            run_check(tower, report_only=True)  # seen again: nothing new
            run_check(tower, report_only=False)  # shipment re-emits; billing invoices it
            events = await wait_for(announced, lambda got: len(got) >= 2, timeout=30)
            closing = await wait_for(
                lambda: asyncio.to_thread(run_check, tower, report_only=False),
                lambda run: run.closed >= 1,
                timeout=30,
            )
            assert closing.closed >= 1
            events = await wait_for(announced, lambda got: len(got) >= 3, timeout=30)
    finally:
        await client.close()
    assert changes(events) == [
        events_pb.FINDING_CHANGE_OPENED,
        events_pb.FINDING_CHANGE_CORRECTION_ANSWERED,
        events_pb.FINDING_CHANGE_CLOSED,
    ]
    assert {e.owner for _, e in events} == {"shipment"}
    assert {h[ev.CE_SOURCE] for h, _ in events} == {"crossdock/control-tower"}
    assert all(h[ev.CE_DATASCHEMA].startswith(ev.DATASCHEMA_ID_PREFIX) for h, _ in events)
