"""event_flow on the reconciler and a real tower store, against the real services' event ledgers.

billing (producer of invoice_posted) and order (its consumer, durable order-events) run
in-process, each built by its own `setup` on its own SQLite file, on a real nats-server. Events
are lost through NATS's own means (order's durable paused, the message deleted from the
stream); a relay held back (its leadership taken) leaves rows unsent or re-emitted and not sent
again (those two cases also on PostgreSQL). The drifts on PostgreSQL, and a consumer stopped
past the stream's max age, are in test_reconcile_drifts.py.

Two cases keep an in-test ledger (a small EventLedgerService on a real gRPC server), each
saying why: an inbox's retention horizon (30 days, not configurable) and an event with two kit
consumers.
"""

from __future__ import annotations

import contextlib
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
from nats.js import JetStreamContext

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
from services.control_tower.domain.reconciliation import Drift, Finding, FindingState, RunRecord
from services.kit import outbox
from services.kit.client import open_channel
from services.kit.db import Database
from services.kit.leader import leadership_for
from services.kit.uow import UnitsOfWork
from tests.control_tower.test_reconcile_drifts import (
    BILLING_STREAM,
    ORDER_DURABLE,
    POSTED,
    applied_by_order,
    consumer_exists,
    paused,
    post_one_invoice,
    running_billing,
    running_order,
)
from tests.fixtures.databases import NewDbUrl
from tests.fixtures.events import stream_messages
from tests.fixtures.nats import NatsServer
from tests.fixtures.ports import free_port
from tests.fixtures.waiting import wait_for

pytestmark = [pytest.mark.integration]

CHECK = "event_flow"
DELIVERED = "crossdock.shipment.delivered.v1"
# Judged at once (grace 0); unsent rows are a finding after 5 min.
NOW_SETTINGS = EventFlowSettings(lookback_seconds=600, grace_seconds=0, unsent_minutes=5)


def stamp(moment: float) -> Timestamp:
    value = Timestamp()
    value.FromNanoseconds(round(moment * 1e9))
    return value


@pytest.fixture
def units(tmp_path: Path) -> Iterator[UnitsOfWork]:
    url = f"sqlite:///{tmp_path / 'tower'}.db"
    migrate(url)
    database = Database(url, service=SERVICE)
    yield UnitsOfWork(database)
    database.engine.dispose()


def reconciler(units: UnitsOfWork, ctx: CheckContext) -> Reconciler:
    return Reconciler(units, registry(EventFlow()), ctx)


async def run(tower: Reconciler, *, report_only: bool = False) -> RunRecord:
    (record,) = (await tower.run([CHECK], report_only=report_only)).runs
    return record


async def open_findings(units: UnitsOfWork) -> list[Finding]:
    found, _ = await units.run(
        reconcile.list_findings,
        FindingsQuery(check=CHECK, state=FindingState.OPEN, page_size=100),
    )
    return sorted(found, key=lambda f: f.subject_id)


# ---- billing and order, for real ---------------------------------------------------------------


@dataclass
class Pair:
    """billing (the producer) and order (its consumer): their ledgers and where they answer."""

    billing: pb_grpc.EventLedgerServiceStub
    order: pb_grpc.EventLedgerServiceStub
    js: JetStreamContext
    billing_url: str

    def ctx(self, settings: EventFlowSettings = NOW_SETTINGS) -> CheckContext:
        ledgers: dict[str, Any] = {"billing": self.billing, "order": self.order}
        return CheckContext(ledgers=ledgers, event_flow=settings)


@contextlib.asynccontextmanager
async def running_pair(
    new_db_url: NewDbUrl, nats_server: NatsServer, nc: NATS
) -> AsyncIterator[Pair]:
    billing_url = new_db_url("billing")
    async with (
        running_billing(billing_url, nats_server.url) as billing,
        # Order never calls inventory here: nothing listens at its target.
        running_order(new_db_url("order"), nats_server.url, f"127.0.0.1:{free_port()}") as order,
    ):
        js = nc.jetstream()
        assert await wait_for(lambda: consumer_exists(js, BILLING_STREAM, ORDER_DURABLE), bool)
        yield Pair(
            pb_grpc.EventLedgerServiceStub(billing),
            pb_grpc.EventLedgerServiceStub(order),
            js,
            billing_url,
        )


def sqlite_files(tmp_path: Path) -> NewDbUrl:
    return lambda name: f"sqlite:///{tmp_path / name}.db"


@pytest.fixture
async def pair(tmp_path: Path, nats_server: NatsServer, nats_client: NATS) -> AsyncIterator[Pair]:
    async with running_pair(sqlite_files(tmp_path), nats_server, nats_client) as running:
        yield running


async def lose(pair: Pair, count: int = 1, keep: int = 0) -> tuple[list[str], list[str]]:
    """`keep` invoices order applies, then `count` it never gets: posted while its durable is
    paused and deleted from the stream before it resumes. (applied ids, lost ids)"""
    applied = [await post_one_invoice(pair.js, pair.billing) for _ in range(keep)]
    for event_id in applied:
        assert await wait_for(lambda e=event_id: applied_by_order(pair.order, e), bool)
    lost: list[str] = []
    async with paused(pair.js, BILLING_STREAM, ORDER_DURABLE):
        for _ in range(count):
            lost.append(await post_one_invoice(pair.js, pair.billing))
        messages = await wait_for(
            lambda: stream_messages(pair.js, BILLING_STREAM, POSTED),
            lambda got: len(got) == keep + count,
        )
        for message in messages:
            if message.headers["ce-id"] in lost:
                await pair.js.delete_msg(BILLING_STREAM, message.seq)
    return applied, lost


# ---- the check's registration and plain refusals -------------------------------------------------


def test_it_is_registered() -> None:
    assert isinstance(CHECKS["event_flow"], EventFlow)
    assert CHECK_OWNERS["event_flow"] == "control-tower"


@pytest.mark.parametrize("service", sorted(CONSUMER_DURABLES))
def test_the_durables_asked_are_the_services_own(service: str) -> None:
    """A service's durable is `<service>-<its consumers' PURPOSE>` (services.kit.runtime)."""
    module = importlib.import_module(f"services.{service}.entrypoints.consumers")
    assert CONSUMER_DURABLES[service] == f"{service}-{module.PURPOSE}"


async def test_correct_refuses_evidence_without_a_producer() -> None:
    with pytest.raises(OwnerRefused, match="no producer named") as refused:
        await EventFlow().correct(CheckContext(), Drift("e1", "", "garbled"))
    assert refused.value.code == "NOT_CORRECTABLE"


async def test_a_scan_without_ledgers_fails_plainly() -> None:
    with pytest.raises(RuntimeError, match="needs the services' event ledgers"):
        async for _ in EventFlow().scan(CheckContext()):
            pass


# ---- real ledgers ------------------------------------------------------------------------------


async def test_applied_events_are_no_drift_and_events_in_flight_are_not_judged(
    pair: Pair, units: UnitsOfWork
) -> None:
    async with paused(pair.js, BILLING_STREAM, ORDER_DURABLE):
        waiting = await post_one_invoice(pair.js, pair.billing)
        # Written moments ago, inside a 10 min grace: in flight, not judged.
        patient = EventFlowSettings(lookback_seconds=600, grace_seconds=600)
        early = await run(reconciler(units, pair.ctx(patient)), report_only=True)
        assert (early.error, early.scanned, early.drifts) == ("", 0, 0)
        # Judged at once: order has not applied it (yet).
        judged = await run(reconciler(units, pair.ctx()), report_only=True)
        assert (judged.error, judged.scanned, judged.drifts) == ("", 1, 1)
        (finding,) = await open_findings(units)
        assert finding.subject_id == waiting
        assert finding.evidence.startswith(f"{POSTED} {waiting} published by billing at ")
        assert finding.evidence.endswith(", not applied by order-events")

    assert await wait_for(lambda: applied_by_order(pair.order, waiting), bool)
    healthy = await run(reconciler(units, pair.ctx()))
    assert (healthy.error, healthy.scanned, healthy.drifts, healthy.closed) == ("", 1, 0, 1)
    assert await open_findings(units) == []


async def test_a_lost_event_is_reemitted_once_and_closed_when_applied(
    pair: Pair, units: UnitsOfWork
) -> None:
    applied, (lost,) = await lose(pair, count=1, keep=1)
    tower = reconciler(units, pair.ctx())

    first = await run(tower)
    assert (first.error, first.scanned, first.drifts, first.corrected) == ("", 2, 1, 1)
    (finding,) = await open_findings(units)
    assert finding.subject_id == lost
    assert finding.correction is not None and finding.correction.succeeded
    assert finding.correction.result == f"event {lost} re-emitted by billing"
    assert await wait_for(lambda: applied_by_order(pair.order, lost), bool)

    closed = await run(tower)
    assert (closed.error, closed.drifts, closed.closed, closed.open_findings) == ("", 0, 1, 0)
    # Once: the lost event's one copy, re-emitted under its own transport id.
    copies = await stream_messages(pair.js, BILLING_STREAM, POSTED)
    assert sorted(m.headers["ce-id"] for m in copies) == sorted([*applied, lost])
    assert [m.headers["Nats-Msg-Id"] for m in copies if m.headers["ce-id"] == lost] == [
        f"{lost}:reemit:1"
    ]


async def test_a_page_at_a_time(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.control_tower.app.reconciliation.checks import event_flow

    monkeypatch.setattr(event_flow, "PAGE_SIZE", 2)
    _, lost = await lose(pair, count=2, keep=1)
    pages = [page async for page in EventFlow().scan(pair.ctx()) if page.scanned]
    assert [p.scanned for p in pages] == [2, 1]
    assert sorted(d.subject_id for p in pages for d in p.drifts) == sorted(lost)


@pytest.fixture
async def held_relay(
    new_db_url: NewDbUrl, nats_server: NatsServer, nats_client: NATS
) -> AsyncIterator[tuple[Pair, Database]]:
    """billing and order (on SQLite files, then PostgreSQL), with billing's relay leadership
    held by the test: billing's relay publishes nothing while it is held."""
    billing_url = new_db_url("billing")
    db = Database(billing_url, service="billing")
    leadership = leadership_for(db)
    assert await leadership.acquire()
    try:
        urls = {"billing": billing_url, "order": new_db_url("order")}
        async with running_pair(urls.__getitem__, nats_server, nats_client) as running:
            yield running, db
    finally:
        await leadership.release()
        await db.close()


async def written_and_sent(db: Database, sent_ago: float) -> str:
    """One invoice_posted row, marked sent `sent_ago` seconds ago by the kit's own outbox (the
    held relay sent nothing: the event never reached the stream, as if it were lost)."""
    event_id = await db.run(
        lambda conn: outbox.append_raw(
            conn,
            subject=POSTED,
            payload=b"",
            aggregate_id="inv_lost",
            correlation_id="c-1",
            dataschema="",
        )
    )
    [seq] = await db.run(lambda conn: [row.seq for row in outbox.fetch_pending(conn, 10)])
    await db.run(outbox.mark_sent, [seq], time.time() - sent_ago)
    return str(event_id)


async def test_a_reemitted_event_not_sent_again_yet_keeps_its_finding_open(
    held_relay: tuple[Pair, Database], units: UnitsOfWork
) -> None:
    pair, db = held_relay
    event_id = await written_and_sent(db, sent_ago=120)
    tower = reconciler(units, pair.ctx())

    first = await run(tower)
    assert (first.error, first.drifts, first.corrected) == ("", 1, 1)
    # Re-emitted: pending again, and the held relay does not send it.
    again = await pair.billing.ListPublished(
        pb.ListPublishedRequest(
            subject=POSTED,
            since=stamp(time.time() - 600),
            until=stamp(time.time() + 1),
            include_requeued=True,
        )
    )
    assert (list(again.events), [e.event_id for e in again.requeued]) == ([], [event_id])
    assert not again.requeued[0].HasField("send_time")

    # In no send-time window now, yet still judged: the finding stays open, not corrected twice.
    second = await run(tower)
    assert (second.error, second.drifts, second.corrected, second.closed) == ("", 1, 0, 0)
    (finding,) = await open_findings(units)
    assert finding.subject_id == event_id
    assert ", re-emitted and not sent again yet, not applied by order-events" in finding.evidence
    assert finding.correction is not None and finding.correction.succeeded
    assert await stream_messages(pair.js, BILLING_STREAM, POSTED) == []


async def test_unsent_rows_past_the_cutoff_are_one_drift_never_reemitted(
    held_relay: tuple[Pair, Database], units: UnitsOfWork
) -> None:
    pair, db = held_relay
    for n in range(2):
        await db.run(
            lambda conn, n=n: outbox.append_raw(
                conn,
                subject=POSTED,
                payload=b"",
                aggregate_id=f"inv_{n}",
                correlation_id="c-1",
                dataschema="",
            )
        )
    # Unsent for more than 0.6 s is a finding here.
    settings = EventFlowSettings(lookback_seconds=600, grace_seconds=0, unsent_minutes=0.01)
    time.sleep(0.7)

    unsent = await run(reconciler(units, pair.ctx(settings)))

    assert (unsent.error, unsent.drifts, unsent.corrected) == ("", 1, 0)
    (finding,) = await open_findings(units)
    assert finding.subject_id == "unsent:billing"
    assert finding.evidence.startswith(
        f"2 outbox rows of billing unsent for more than 0.01 min, the oldest {POSTED} "
    )
    assert finding.correction is not None and not finding.correction.succeeded
    assert "fix billing's relay" in finding.correction.result
    assert await stream_messages(pair.js, BILLING_STREAM, POSTED) == []


async def test_a_producer_that_is_down_fails_the_run_and_closes_nothing(
    tmp_path: Path, nats_server: NatsServer, nats_client: NATS, units: UnitsOfWork
) -> None:
    async with running_pair(sqlite_files(tmp_path), nats_server, nats_client) as pair:
        await lose(pair)
        await run(reconciler(units, pair.ctx()), report_only=True)
        order = pair.order
    assert len(await open_findings(units)) == 1

    # billing (and order) stopped: nothing answers at a fresh port.
    down = open_channel(f"127.0.0.1:{free_port()}", default_timeout_seconds=2.0)
    try:
        ledgers: dict[str, Any] = {"billing": pb_grpc.EventLedgerServiceStub(down), "order": order}
        ctx = CheckContext(ledgers=ledgers, event_flow=NOW_SETTINGS)
        failed = await run(reconciler(units, ctx))
    finally:
        await down.close(None)

    assert failed.error.startswith("billing.ListUnsent answered UNAVAILABLE")
    assert failed.closed == 0
    assert len(await open_findings(units)) == 1


# ---- the two cases on an in-test ledger ----------------------------------------------------------


@dataclass
class Ledger(pb_grpc.EventLedgerServiceServicer):
    """One service's event records as its EventLedgerService answers for them, set by the test."""

    published: list[pb.PublishedEvent] = field(default_factory=list)
    # durable → applied event ids
    applied: dict[str, set[str]] = field(default_factory=dict)
    inbox_retained_since: float = 0.0

    async def ListPublished(
        self, request: pb.ListPublishedRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListPublishedResponse:
        since, until = request.since.seconds, request.until.seconds
        events = [
            e
            for e in self.published
            if e.subject == request.subject and since <= e.send_time.seconds < until
        ]
        return pb.ListPublishedResponse(events=events, retained_since=stamp(0))

    async def ListUnsent(
        self, request: pb.ListUnsentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListUnsentResponse:
        return pb.ListUnsentResponse()

    async def CheckApplied(
        self, request: pb.CheckAppliedRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CheckAppliedResponse:
        held = self.applied[request.consumer]
        return pb.CheckAppliedResponse(
            applied_event_ids=[i for i in request.event_ids if i in held],
            retained_since=stamp(self.inbox_retained_since),
            handles_subject=True,
        )


@contextlib.asynccontextmanager
async def served(ledgers: dict[str, Ledger]) -> AsyncIterator[CheckContext]:
    servers, channels, stubs = [], [], {}
    try:
        for service, ledger in ledgers.items():
            server = grpc.aio.server()
            pb_grpc.add_EventLedgerServiceServicer_to_server(ledger, server)
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            servers.append(server)
            channel = open_channel(f"127.0.0.1:{port}", default_timeout_seconds=5.0)
            channels.append(channel)
            stubs[service] = pb_grpc.EventLedgerServiceStub(channel)
        yield CheckContext(ledgers=stubs, event_flow=NOW_SETTINGS)
    finally:
        for channel in channels:
            await channel.close(None)
        for server in servers:
            await server.stop(None)


def delivered(event_id: str, sent_ago: float) -> pb.PublishedEvent:
    now = time.time()
    return pb.PublishedEvent(
        event_id=event_id,
        subject=DELIVERED,
        aggregate_id=f"shp_{event_id}",
        create_time=stamp(now - sent_ago - 1),
        send_time=stamp(now - sent_ago),
    )


async def test_an_event_older_than_a_sides_retention_is_not_judged(units: UnitsOfWork) -> None:
    """A double: a kit inbox keeps applied ids 30 days (not configurable), too long to wait."""
    billing = Ledger(applied={"billing-events": set()})
    shipment = Ledger(published=[delivered("old", 300), delivered("new", 60)])
    order = Ledger(applied={"order-events": {"old", "new"}})
    # billing's inbox purged what it applied before 2 min ago: "old" cannot be judged there.
    billing.inbox_retained_since = time.time() - 120
    async with served({"shipment": shipment, "billing": billing, "order": order}) as ctx:
        record = await run(reconciler(units, ctx), report_only=True)
    assert record.error == ""
    assert [f.subject_id for f in await open_findings(units)] == ["new"]


async def test_an_event_missing_at_both_consumers_names_both() -> None:
    """A double: an event with two kit consumers is shipment's delivered (order and billing),
    and a real shipment needs the carrier adapter and inventory running besides."""
    shipment = Ledger(published=[delivered("e1", 60)])
    billing = Ledger(applied={"billing-events": set()})
    order = Ledger(applied={"order-events": set()})
    async with served({"shipment": shipment, "billing": billing, "order": order}) as ctx:
        drifts = [d async for page in EventFlow().scan(ctx) for d in page.drifts]
    assert [d.subject_id for d in drifts] == ["e1"]
    assert drifts[0].evidence.endswith("not applied by order-events, billing-events")
