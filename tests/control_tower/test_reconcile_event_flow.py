"""event_flow on the reconciler and a real tower store, against event ledgers served over gRPC.

Most ledgers here are a small in-process implementation of the EventLedgerService contract
(crossdock.common.v1) whose records the test sets: the producer's published and unsent rows and
each consumer's applied ids, with retention horizons, so every case (retention, paging, unsent
rows) is staged exactly. They answer over a real gRPC server, so a producer that is down is a
real UNAVAILABLE. The last test puts a real billing (its own setup, real NATS and SQLite) on
both sides: its inbox answers as a consumer, its outbox as a producer.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from crossdock.common.v1 import event_ledger_pb2 as pb
from crossdock.common.v1 import event_ledger_pb2_grpc as pb_grpc
from google.protobuf.timestamp_pb2 import Timestamp
from nats.aio.client import Client as NATS

from services.billing.config import BillingConfig
from services.billing.main import setup as billing_setup
from services.control_tower.adapters.clients import OwnerRefused
from services.control_tower.adapters.store import SERVICE, migrate
from services.control_tower.app import reconcile
from services.control_tower.app.reconcile import FindingsQuery, Reconciler
from services.control_tower.app.reconciliation.checks import (
    CHECKS,
    CheckContext,
    EventFlowSettings,
    registry,
)
from services.control_tower.app.reconciliation.checks.event_flow import (
    CONSUMER_DURABLES,
    EventFlow,
)
from services.control_tower.domain.exceptions import CHECK_OWNERS
from services.control_tower.domain.reconciliation import Drift, Finding, FindingState
from services.kit.client import open_channel
from services.kit.db import Database
from services.kit.server import ServiceServer
from services.kit.uow import UnitsOfWork
from tests.billing.service_support import delivered, order_placed, shipment
from tests.fixtures.events import publish_as_relay
from tests.fixtures.nats import NatsServer
from tests.fixtures.ports import free_port
from tests.fixtures.running import billing_env
from tests.kit.test_relay import wait_until

DELIVERED = "crossdock.shipment.delivered.v1"
NOW = float(int(time.time()))
SETTINGS = EventFlowSettings(lookback_seconds=3600, grace_seconds=60, unsent_minutes=5)


def stamp(moment: float) -> Timestamp:
    return Timestamp(seconds=int(moment))


def published(event_id: str, sent_ago: float, subject: str = DELIVERED) -> pb.PublishedEvent:
    return pb.PublishedEvent(
        event_id=event_id,
        subject=subject,
        aggregate_id=f"shp_{event_id}",
        create_time=stamp(NOW - sent_ago - 1),
        send_time=stamp(NOW - sent_ago),
    )


@dataclass
class Ledger(pb_grpc.EventLedgerServiceServicer):
    """One service's event records, as its EventLedgerService answers for them."""

    published: list[pb.PublishedEvent] = field(default_factory=list)
    unsent: list[pb.PublishedEvent] = field(default_factory=list)
    # durable → applied event ids
    applied: dict[str, set[str]] = field(default_factory=dict)
    outbox_retained_since: float = 0.0
    inbox_retained_since: float = 0.0
    windows: list[tuple[str, float, float]] = field(default_factory=list)
    unsent_cutoffs: list[float] = field(default_factory=list)
    reemits: list[pb.ReemitRequest] = field(default_factory=list)

    async def ListPublished(
        self, request: pb.ListPublishedRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListPublishedResponse:
        since, until = request.since.seconds, request.until.seconds
        self.windows.append((request.subject, since, until))
        events = [
            e
            for e in self.published
            if e.subject == request.subject and since <= e.send_time.seconds < until
        ]
        start = int(request.page_token or 0)
        size = request.page_size or 500
        end = start + size
        return pb.ListPublishedResponse(
            events=events[start:end],
            next_page_token=str(end) if end < len(events) else "",
            retained_since=stamp(self.outbox_retained_since),
        )

    async def ListUnsent(
        self, request: pb.ListUnsentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListUnsentResponse:
        self.unsent_cutoffs.append(request.before.seconds)
        old = [e for e in self.unsent if e.create_time.seconds < request.before.seconds]
        return pb.ListUnsentResponse(events=old[: request.page_size or 500], total=len(old))

    async def CheckApplied(
        self, request: pb.CheckAppliedRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CheckAppliedResponse:
        if request.consumer not in self.applied:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, f"{request.consumer} is not a consumer here"
            )
        held = self.applied[request.consumer]
        return pb.CheckAppliedResponse(
            applied_event_ids=[i for i in request.event_ids if i in held],
            retained_since=stamp(self.inbox_retained_since),
            handles_subject=True,
        )

    async def Reemit(
        self, request: pb.ReemitRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ReemitResponse:
        self.reemits.append(request)
        return pb.ReemitResponse(reemitted=True, subject=DELIVERED)


@dataclass
class Mesh:
    """shipment (producer of delivered), billing and order (two of its consumers)."""

    shipment: Ledger
    billing: Ledger
    order: Ledger
    ctx: CheckContext


@pytest.fixture
async def mesh() -> AsyncIterator[Mesh]:
    ledgers = {
        "shipment": Ledger(),
        "billing": Ledger(applied={"billing-events": set()}),
        "order": Ledger(applied={"order-events": set()}),
    }
    servers, channels = [], []
    stubs = {}
    for service, ledger in ledgers.items():
        server = grpc.aio.server()
        pb_grpc.add_EventLedgerServiceServicer_to_server(ledger, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        channel = open_channel(f"127.0.0.1:{port}", default_timeout_seconds=5.0)
        servers.append(server)
        channels.append(channel)
        stubs[service] = pb_grpc.EventLedgerServiceStub(channel)
    ctx = CheckContext(ledgers=stubs, event_flow=SETTINGS, clock=lambda: NOW)
    try:
        yield Mesh(ledgers["shipment"], ledgers["billing"], ledgers["order"], ctx)
    finally:
        for channel in channels:
            await channel.close(None)
        for server in servers:
            await server.stop(None)


@pytest.fixture
def units(sqlite_url: str) -> Iterator[UnitsOfWork]:
    migrate(sqlite_url)
    database = Database(sqlite_url, service=SERVICE)
    yield UnitsOfWork(database)
    database.engine.dispose()


def reconciler(units: UnitsOfWork, ctx: CheckContext) -> Reconciler:
    return Reconciler(units, registry(EventFlow()), ctx)


async def open_findings(units: UnitsOfWork) -> list[Finding]:
    found, _ = await units.run(
        reconcile.list_findings,
        FindingsQuery(check="event_flow", state=FindingState.OPEN, page_size=100),
    )
    return sorted(found, key=lambda f: f.subject_id)


def deliver(mesh: Mesh, *events: pb.PublishedEvent, applied_by_both: set[str]) -> None:
    mesh.shipment.published.extend(events)
    mesh.billing.applied["billing-events"] |= applied_by_both
    mesh.order.applied["order-events"] |= applied_by_both


def test_it_is_registered() -> None:
    assert isinstance(CHECKS["event_flow"], EventFlow)
    assert CHECK_OWNERS["event_flow"] == "control-tower"


@pytest.mark.parametrize("service", sorted(CONSUMER_DURABLES))
def test_the_durables_asked_are_the_services_own(service: str) -> None:
    """A service's durable is `<service>-<its consumers' PURPOSE>` (services.kit.runtime)."""
    module = importlib.import_module(f"services.{service}.entrypoints.consumers")
    assert CONSUMER_DURABLES[service] == f"{service}-{module.PURPOSE}"


async def test_nothing_lost_is_no_drift_and_the_window_leaves_events_in_flight_out(
    mesh: Mesh, units: UnitsOfWork
) -> None:
    deliver(mesh, published("e1", 600), published("e2", 120), applied_by_both={"e1", "e2"})
    # In flight (inside the grace): not listed, so not judged though nobody applied it.
    mesh.shipment.published.append(published("e3", 10))

    run = await reconciler(units, mesh.ctx).run_check(EventFlow())

    assert run.ok, run.error
    assert (run.scanned, run.drifts) == (2, 0)
    assert (DELIVERED, NOW - 3600, NOW - 60) in mesh.shipment.windows
    assert mesh.shipment.unsent_cutoffs == [NOW - 300]
    assert await open_findings(units) == []


async def test_an_event_one_consumer_did_not_apply_is_one_drift_reemitted_once(
    mesh: Mesh, units: UnitsOfWork
) -> None:
    deliver(mesh, published("e1", 600), published("e2", 300), applied_by_both={"e1"})
    mesh.order.applied["order-events"].add("e2")
    tower = reconciler(units, mesh.ctx)

    first = await tower.run_check(EventFlow())

    assert first.ok, first.error
    assert (first.drifts, first.new_findings, first.corrected) == (1, 1, 1)
    (finding,) = await open_findings(units)
    assert finding.subject_id == "e2"
    assert finding.evidence == (
        f"{DELIVERED} e2 published by shipment at "
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(NOW - 300))}, "
        "not applied by billing-events"
    )
    (reemit,) = mesh.shipment.reemits
    assert reemit.event_id == "e2"
    assert reemit.reason == f"reconciliation event_flow: {finding.evidence}"
    assert finding.correction is not None and finding.correction.succeeded
    assert finding.correction.result == "event e2 re-emitted by shipment"

    # Still missing on the next run: the finding stays, the accepted correction is not repeated.
    second = await tower.run_check(EventFlow())
    assert (second.drifts, second.new_findings, second.corrected) == (1, 0, 0)
    assert len(mesh.shipment.reemits) == 1

    # Applied at last: the finding closes.
    mesh.billing.applied["billing-events"].add("e2")
    third = await tower.run_check(EventFlow())
    assert (third.drifts, third.closed) == (0, 1)
    assert await open_findings(units) == []


async def test_an_event_missing_at_both_consumers_names_both(mesh: Mesh) -> None:
    deliver(mesh, published("e1", 600), applied_by_both=set())
    drifts = [d async for page in EventFlow().scan(mesh.ctx) for d in page.drifts]
    assert [d.subject_id for d in drifts] == ["e1"]
    assert drifts[0].evidence.endswith("not applied by order-events, billing-events")


async def test_an_event_older_than_a_sides_retention_is_not_judged(
    mesh: Mesh, units: UnitsOfWork
) -> None:
    deliver(mesh, published("old", 1800), published("new", 600), applied_by_both=set())
    mesh.order.applied["order-events"] |= {"old", "new"}
    # billing's inbox purged what it applied before 20 min ago: "old" cannot be judged there.
    mesh.billing.inbox_retained_since = NOW - 1200

    run = await reconciler(units, mesh.ctx).run_check(EventFlow())

    assert run.ok, run.error
    assert [f.subject_id for f in await open_findings(units)] == ["new"]


async def test_a_page_at_a_time(mesh: Mesh, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.control_tower.app.reconciliation.checks import event_flow

    monkeypatch.setattr(event_flow, "PAGE_SIZE", 2)
    deliver(
        mesh,
        *(published(f"e{i}", 1000 - i) for i in range(5)),
        applied_by_both={"e0", "e1", "e3"},
    )
    pages = [page async for page in EventFlow().scan(mesh.ctx) if page.scanned]
    assert [p.scanned for p in pages] == [2, 2, 1]
    assert [d.subject_id for p in pages for d in p.drifts] == ["e2", "e4"]


async def test_unsent_rows_past_the_cutoff_are_one_drift_never_reemitted(
    mesh: Mesh, units: UnitsOfWork
) -> None:
    old = pb.PublishedEvent(event_id="u1", subject=DELIVERED, create_time=stamp(NOW - 1200))
    older = pb.PublishedEvent(event_id="u0", subject=DELIVERED, create_time=stamp(NOW - 1800))
    recent = pb.PublishedEvent(event_id="u2", subject=DELIVERED, create_time=stamp(NOW - 60))
    mesh.shipment.unsent = [older, old, recent]

    run = await reconciler(units, mesh.ctx).run_check(EventFlow())

    assert run.ok, run.error
    assert (run.drifts, run.corrected) == (1, 0)
    (finding,) = await open_findings(units)
    assert finding.subject_id == "unsent:shipment"
    assert finding.evidence.startswith(
        f"2 outbox rows of shipment unsent for more than 5 min, the oldest {DELIVERED} u0"
    )
    assert finding.evidence.endswith("(30 min ago)")
    assert finding.correction is not None and not finding.correction.succeeded
    assert "fix shipment's relay" in finding.correction.result
    assert mesh.shipment.reemits == []


async def test_correct_refuses_evidence_without_a_producer(mesh: Mesh) -> None:
    with pytest.raises(OwnerRefused, match="no producer named") as refused:
        await EventFlow().correct(mesh.ctx, Drift("e1", "", "garbled"))
    assert refused.value.code == "NOT_CORRECTABLE"


async def test_a_producer_that_is_down_fails_the_run_and_closes_nothing(
    mesh: Mesh, units: UnitsOfWork
) -> None:
    deliver(mesh, published("e1", 600), applied_by_both=set())
    tower = reconciler(units, mesh.ctx)
    await tower.run_check(EventFlow())
    assert [f.subject_id for f in await open_findings(units)] == ["e1"]

    down = open_channel(f"127.0.0.1:{free_port()}", default_timeout_seconds=2.0)
    try:
        ledgers = {**mesh.ctx.ledgers, "shipment": pb_grpc.EventLedgerServiceStub(down)}
        ctx = CheckContext(ledgers=ledgers, event_flow=SETTINGS, clock=lambda: NOW)
        run = await reconciler(units, ctx).run_check(EventFlow())
    finally:
        await down.close(None)

    assert not run.ok
    assert run.error.startswith("shipment.ListUnsent answered UNAVAILABLE")
    assert run.closed == 0
    assert [f.subject_id for f in await open_findings(units)] == ["e1"]


async def test_a_scan_without_ledgers_fails_plainly() -> None:
    with pytest.raises(RuntimeError, match="needs the services' event ledgers"):
        async for _ in EventFlow().scan(CheckContext()):
            pass


async def test_a_real_billing_answers_as_consumer_and_as_producer(
    mesh: Mesh,
    tmp_path: Path,
    nats_client: NATS,
    nats_server: NatsServer,
) -> None:
    """billing applies one delivered event (its inbox, durable billing-events) and invoices it
    (its outbox publishes invoice_posted); shipment's ledger lists that event and one billing
    never received; order (a consumer of invoice_posted) applied nothing."""
    js = nats_client.jetstream()
    # A database of its own (the tower's store is `units`).
    billing_db = f"sqlite:///{tmp_path / 'billing.db'}"
    config = BillingConfig.from_env(billing_env(billing_db, nats_server.url))
    server = ServiceServer.from_config(config)
    await billing_setup(server, config)
    port = await server.start()
    channel = open_channel(f"127.0.0.1:{port}", default_timeout_seconds=10.0)
    try:
        billing = pb_grpc.EventLedgerServiceStub(channel)
        await publish_as_relay(js, order_placed("ord_1", "ptn_1"), "ord_1")
        applied = await publish_as_relay(
            js, delivered(shipment("shp_1", "ord_1", "ptn_1"), None), "shp_1"
        )
        ctx = CheckContext(
            ledgers={**mesh.ctx.ledgers, "billing": billing},
            event_flow=EventFlowSettings(grace_seconds=0),
        )
        invoice = "crossdock.billing.invoice_posted.v1"

        async def invoiced() -> bool:
            answer = await billing.ListPublished(
                pb.ListPublishedRequest(
                    subject=invoice, since=stamp(time.time() - 600), until=stamp(time.time() + 60)
                )
            )
            return len(answer.events) == 1

        await wait_until(invoiced)
        sent = time.time() - 30
        mesh.shipment.published = [
            pb.PublishedEvent(event_id=i, subject=DELIVERED, send_time=stamp(sent))
            for i in (applied, "evt_lost")
        ]
        mesh.order.applied["order-events"] = {applied, "evt_lost"}

        drifts = [d async for page in EventFlow().scan(ctx) for d in page.drifts]

        by_subject = {d.evidence.split(" ")[0]: d for d in drifts}
        assert sorted(by_subject) == [invoice, DELIVERED]
        assert by_subject[DELIVERED].subject_id == "evt_lost"
        assert by_subject[DELIVERED].evidence.endswith("not applied by billing-events")
        assert " published by billing at " in by_subject[invoice].evidence
        assert by_subject[invoice].evidence.endswith("not applied by order-events")
    finally:
        await channel.close(None)
        await server.shutdown()
