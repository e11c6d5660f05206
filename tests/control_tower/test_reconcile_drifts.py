"""Reconciliation drifts made through real means, on SQLite files and on PostgreSQL: real
services (built by their own `setup`, or started as their own process), a real nats-server, and
the tower's reconciler on a real store. For each drift the check finds it, report-only changes
nothing, the correcting run fixes it through the owner's RPC, and the next run closes the
finding.

- A consumer stopped past its stream's max age: order's durable on BILLING is paused while
  billing posts an invoice, the stream's max age is a few seconds, so the invoice_posted event
  expires unread. event_flow sees it published by billing and not applied by order, and has
  billing re-emit it (same event id); order applies it once.
- Inventory killed at the fault seam right after a reservation commits, before ReserveStock
  answers: the caller never learns the reservation, which stays active for an order that order
  does not know. `reservations` finds it and releases it through inventory.

The purged delivery on PostgreSQL is in test_reconcile_drifts_postgres.py (it needs a mesh).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from crossdock.common.v1 import event_ledger_pb2 as ledger_pb
from crossdock.common.v1 import event_ledger_pb2_grpc as ledger_grpc
from crossdock.inventory.v1 import inventory_pb2 as inv
from crossdock.inventory.v1 import inventory_service_pb2 as inv_svc
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from crossdock.order.v1 import order_service_pb2_grpc as order_grpc
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from localmesh.probes import grpc_health
from localmesh.procs import dying_with_parent
from services.billing.config import BillingConfig
from services.billing.main import setup as billing_setup
from services.control_tower.adapters.store import SERVICE, migrate
from services.control_tower.app import reconcile
from services.control_tower.app.reconcile import FindingsQuery, Reconciler
from services.control_tower.app.reconciliation.checks import (
    CheckContext,
    EventFlowSettings,
    registry,
)
from services.control_tower.app.reconciliation.checks.event_flow import EventFlow
from services.control_tower.app.reconciliation.checks.reservations import Reservations
from services.control_tower.domain.reconciliation import Finding, FindingState, RunRecord
from services.kit.client import open_channel
from services.kit.db import Database
from services.kit.faults import FAULT_ENV
from services.kit.server import ServiceServer
from services.kit.uow import UnitsOfWork
from services.order.config import OrderConfig
from services.order.main import setup as order_setup
from tests.billing.service_support import delivered, eur, ids, order_placed, shipment
from tests.fixtures.catalog import EAST, seed
from tests.fixtures.databases import NewDbUrl
from tests.fixtures.events import publish_as_relay, stream_messages
from tests.fixtures.nats import NatsServer
from tests.fixtures.ports import free_port
from tests.fixtures.running import billing_env, order_env
from tests.fixtures.waiting import wait_for
from tests.inventory.service_support import order_id, reserve_request

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BILLING_STREAM = "BILLING"
ORDER_DURABLE = "order-events"
POSTED = "crossdock.billing.invoice_posted.v1"
EVENT_FLOW = "event_flow"
RESERVATIONS = "reservations"
RESERVE_FAULT = "inventory.reserve.before_answer"


# ---- the tower ---------------------------------------------------------------------------------


@pytest.fixture
def tower(new_db_url: NewDbUrl) -> Iterator[UnitsOfWork]:
    url = new_db_url("tower")
    migrate(url)
    database = Database(url, service=SERVICE)
    yield UnitsOfWork(database)
    database.engine.dispose()


async def run(reconciler: Reconciler, check: str, *, report_only: bool = False) -> RunRecord:
    (record,) = (await reconciler.run([check], report_only=report_only)).runs
    assert record.error == "", record.error
    return record


async def open_findings(tower: UnitsOfWork, check: str) -> list[Finding]:
    found, _ = await tower.run(
        reconcile.list_findings,
        FindingsQuery(check=check, state=FindingState.OPEN, page_size=100),
    )
    return sorted(found, key=lambda f: f.subject_id)


# ---- services in-process -----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(server: ServiceServer) -> AsyncIterator[grpc.aio.Channel]:
    """Start an already set up server; a channel to it; shut it down afterwards."""
    try:
        port = await server.start()
        channel = open_channel(f"127.0.0.1:{port}", default_timeout_seconds=10.0)
        try:
            yield channel
        finally:
            await channel.close()
    finally:
        await server.shutdown()


@contextlib.asynccontextmanager
async def running_billing(db_url: str, nats_url: str) -> AsyncIterator[grpc.aio.Channel]:
    config = BillingConfig.from_env(billing_env(db_url, nats_url))
    server = ServiceServer.from_config(config)
    await billing_setup(server, config)
    async with serving(server) as channel:
        yield channel


@contextlib.asynccontextmanager
async def running_order(
    db_url: str, nats_url: str, inventory_target: str
) -> AsyncIterator[grpc.aio.Channel]:
    # Nothing here cancels an order or retries a label: no shipment service answers.
    nowhere = f"127.0.0.1:{free_port()}"
    config = OrderConfig.from_env(
        order_env(db_url, nats_url, inventory_target, SHIPMENT_TARGET=nowhere)
    )
    server = ServiceServer.from_config(config)
    await order_setup(server, config)
    async with serving(server) as channel:
        yield channel


# ---- drift: a consumer stopped past the stream's max age ----------------------------------------


async def set_max_age(js: JetStreamContext, stream: str, seconds: float) -> None:
    """The stream keeps messages `seconds` (its duplicate window may not be longer)."""
    config = (await js.stream_info(stream)).config
    config.max_age = seconds
    config.duplicate_window = min(seconds, 1.0)
    await js.update_stream(config)


@contextlib.asynccontextmanager
async def paused(js: JetStreamContext, stream: str, durable: str) -> AsyncIterator[None]:
    """The durable delivers nothing for the block; it resumes after, whatever happens."""
    until = (datetime.now(UTC) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    await js.pause_consumer(stream, durable, until)
    try:
        yield
    finally:
        await js.resume_consumer(stream, durable)


async def consumer_exists(js: JetStreamContext, stream: str, durable: str) -> bool:
    try:
        await js.consumer_info(stream, durable)
    except Exception:  # not created yet (the service's consumer starts in the background)
        return False
    return True


async def post_one_invoice(
    js: JetStreamContext, billing: ledger_grpc.EventLedgerServiceStub
) -> str:
    """Billing learns an order and its delivered shipment, posts the invoice, and its relay
    publishes invoice_posted; its event id, once sent."""

    async def sent() -> set[str]:
        now = datetime.now(UTC).timestamp()
        window = ledger_pb.ListPublishedRequest(subject=POSTED)
        window.since.FromSeconds(int(now) - 600)
        window.until.FromSeconds(int(now) + 600)
        return {event.event_id for event in (await billing.ListPublished(window)).events}

    before = await sent()
    partner, order, shipment_id = ids("ptn"), ids("ord"), ids("shp")
    await publish_as_relay(js, order_placed(order, partner), order)
    await publish_as_relay(
        js, delivered(shipment(shipment_id, order, partner), eur(6)), shipment_id
    )
    after = await wait_for(sent, lambda got: len(got - before) == 1, timeout=20)
    (event_id,) = after - before
    return str(event_id)


async def applied_by_order(order: ledger_grpc.EventLedgerServiceStub, event_id: str) -> bool:
    answer = await order.CheckApplied(
        ledger_pb.CheckAppliedRequest(consumer=ORDER_DURABLE, event_ids=[event_id], subject=POSTED)
    )
    assert answer.handles_subject
    return list(answer.applied_event_ids) == [event_id]


async def test_events_expired_before_a_stopped_consumer_read_them_are_reemitted_and_applied(
    new_db_url: NewDbUrl, nats_server: NatsServer, nats_client: NATS, tower: UnitsOfWork
) -> None:
    js = nats_client.jetstream()
    async with (
        running_billing(new_db_url("billing"), nats_server.url) as billing_channel,
        # Order never calls inventory here: nothing listens at its target.
        running_order(
            new_db_url("order"), nats_server.url, f"127.0.0.1:{free_port()}"
        ) as order_channel,
    ):
        billing = ledger_grpc.EventLedgerServiceStub(billing_channel)
        order = ledger_grpc.EventLedgerServiceStub(order_channel)
        # Events written 2 s ago are judged: the test's are older by the time it asks.
        settings = EventFlowSettings(lookback_seconds=600, grace_seconds=2, unsent_minutes=5)
        ctx = CheckContext(
            ledgers={"billing": billing, "order": order},
            event_flow=settings,
        )
        reconciler = Reconciler(tower, registry(EventFlow()), ctx)
        assert await wait_for(
            lambda: consumer_exists(js, BILLING_STREAM, ORDER_DURABLE), bool, timeout=20
        )

        await set_max_age(js, BILLING_STREAM, 2.0)
        async with paused(js, BILLING_STREAM, ORDER_DURABLE):
            event_id = await post_one_invoice(js, billing)
            expired = await wait_for(
                lambda: stream_messages(js, BILLING_STREAM, POSTED),
                lambda got: got == [],
                timeout=20,
            )
            assert expired == []
        # Long enough again for the correction's copy to wait out the pause below.
        await set_max_age(js, BILLING_STREAM, 600.0)
        await asyncio.sleep(1.0)  # resumed: there is nothing left to deliver
        assert not await applied_by_order(order, event_id)

        # Report-only: one finding, nothing re-published.
        reported = await run(reconciler, EVENT_FLOW, report_only=True)
        assert (reported.drifts, reported.new_findings, reported.corrected) == (1, 1, 0)
        (finding,) = await open_findings(tower, EVENT_FLOW)
        assert finding.subject_id == event_id
        assert finding.evidence.startswith(f"{POSTED} {event_id} published by billing at ")
        assert finding.evidence.endswith("not applied by order-events")
        assert finding.correction is None
        await asyncio.sleep(0.5)
        assert await stream_messages(js, BILLING_STREAM, POSTED) == []
        assert not await applied_by_order(order, event_id)

        # Corrected while order is paused again: the copy is re-sent moments ago, but the event
        # was written long ago, so it is still judged and its finding stays open.
        async with paused(js, BILLING_STREAM, ORDER_DURABLE):
            corrected = await run(reconciler, EVENT_FLOW)
            assert (corrected.drifts, corrected.new_findings, corrected.corrected) == (1, 0, 1)
            copies = await wait_for(
                lambda: stream_messages(js, BILLING_STREAM, POSTED), lambda got: len(got) == 1
            )
            assert [m.headers["ce-id"] for m in copies] == [event_id]
            waiting = await run(reconciler, EVENT_FLOW)
            assert (waiting.drifts, waiting.corrected, waiting.closed) == (1, 0, 0)
            (still,) = await open_findings(tower, EVENT_FLOW)
            assert still.finding_id == finding.finding_id
            assert still.correction is not None and still.correction.succeeded
            assert still.correction.result == f"event {event_id} re-emitted by billing"

        assert await wait_for(lambda: applied_by_order(order, event_id), bool)
        closed = await run(reconciler, EVENT_FLOW)
        assert (closed.drifts, closed.closed, closed.open_findings) == (0, 1, 0)
        assert len(await stream_messages(js, BILLING_STREAM, POSTED)) == 1  # re-emitted once


# ---- drift: inventory killed after reserving, before answering -----------------------------------


class InventoryProcess:
    """`python -m services.inventory.main` on a fixed port, with an optional fault spec."""

    def __init__(self, db_url: str, nats_url: str, port: int, fault: str = "") -> None:
        self.target = f"127.0.0.1:{port}"
        prefix = "CROSSDOCK_INVENTORY_"
        self._env = {
            **os.environ,
            prefix + "DB_URL": db_url,
            prefix + "NATS_URL": nats_url,
            prefix + "GRPC_PORT": str(port),
            prefix + "METRICS_PORT": str(free_port()),
            prefix + "BIND_HOST": "127.0.0.1",
            prefix + "RELAY_POLL_INTERVAL_SECONDS": "0.2",
            prefix + "CONSUMER_FETCH_TIMEOUT_SECONDS": "0.2",
        }
        self._env.pop(FAULT_ENV, None)
        if fault:
            self._env[FAULT_ENV] = fault
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def returncode(self) -> int | None:
        assert self._proc is not None
        return self._proc.wait(timeout=10)

    async def start(self) -> None:
        self._proc = subprocess.Popen(
            dying_with_parent([sys.executable, "-m", "services.inventory.main"]),
            env=self._env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        proc = self._proc
        status = await wait_for(
            lambda: asyncio.to_thread(grpc_health, self.target),
            lambda got: got == "SERVING" or proc.poll() is not None,
            timeout=60,
            interval=0.1,
        )
        assert status == "SERVING", f"inventory did not start (exit {proc.poll()})"

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


@contextlib.asynccontextmanager
async def inventory_process(
    db_url: str, nats_url: str, port: int, fault: str = ""
) -> AsyncIterator[tuple[InventoryProcess, inv_grpc.InventoryServiceStub]]:
    process = InventoryProcess(db_url, nats_url, port, fault)
    try:
        await process.start()
        channel = open_channel(process.target, default_timeout_seconds=10.0)
        try:
            yield process, inv_grpc.InventoryServiceStub(channel)
        finally:
            await channel.close()
    finally:
        process.stop()


async def reserved(inventory: inv_grpc.InventoryServiceStub) -> int:
    answer = await inventory.ListPositions(
        inv_svc.ListPositionsRequest(sku="SKU-A", location_id=EAST)
    )
    (position,) = answer.positions
    return int(position.quantity_reserved)


async def test_inventory_killed_after_reserving_leaks_a_reservation_that_is_released(
    new_db_url: NewDbUrl, nats_server: NatsServer, nats_client: NATS, tower: UnitsOfWork
) -> None:
    inventory_url = new_db_url("inventory")
    ghost = order_id(777001)
    async with inventory_process(
        inventory_url, nats_server.url, free_port(), fault=f"{RESERVE_FAULT}:kill"
    ) as (crashing, inventory):
        await seed(inventory, ["SKU-A"], {("SKU-A", EAST): 10})
        with pytest.raises(grpc.aio.AioRpcError) as lost:
            await inventory.ReserveStock(reserve_request(ghost, EAST, [("SKU-A", 3)], "ghost-key"))
        # The caller heard nothing back: the process died at the point, SIGKILLed.
        assert lost.value.code() == grpc.StatusCode.UNAVAILABLE, lost.value
        assert crashing.returncode == -signal.SIGKILL

    # Restarted on a port of its own: gRPC's subchannel to the dead one's port is in backoff.
    async with (
        inventory_process(inventory_url, nats_server.url, free_port()) as (
            restarted,
            inventory,
        ),
        running_order(new_db_url("order"), nats_server.url, restarted.target) as order_channel,
    ):
        # The reservation committed before the crash survives it.
        held = await inventory.ListReservations(inv_svc.ListReservationsRequest(order_id=ghost))
        (leaked,) = held.reservations
        assert leaked.status == inv.RESERVATION_STATUS_ACTIVE
        assert await reserved(inventory) == 3
        ctx = CheckContext(
            inventory=inventory,  # type: ignore[arg-type]
            order=order_grpc.OrderServiceStub(order_channel),
            reservations_grace_seconds=0,
        )
        reconciler = Reconciler(tower, registry(Reservations()), ctx)
        subject = f"reservation:{leaked.reservation_id}"

        reported = await run(reconciler, RESERVATIONS, report_only=True)
        assert (reported.drifts, reported.new_findings, reported.corrected) == (1, 1, 0)
        (finding,) = await open_findings(tower, RESERVATIONS)
        assert (finding.subject_id, finding.order_id) == (subject, ghost)
        assert f"of order {ghost} (unknown to order) holds SKU-Ax3" in finding.evidence
        assert await reserved(inventory) == 3

        corrected = await run(reconciler, RESERVATIONS)
        assert (corrected.drifts, corrected.new_findings, corrected.corrected) == (1, 0, 1)
        assert await reserved(inventory) == 0
        again = await inventory.ListReservations(inv_svc.ListReservationsRequest(order_id=ghost))
        assert [r.status for r in again.reservations] == [inv.RESERVATION_STATUS_RELEASED]

        closed = await run(reconciler, RESERVATIONS)
        assert (closed.drifts, closed.closed, closed.open_findings) == (0, 1, 0)
