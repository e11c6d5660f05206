"""order_totals against the real services (inventory, order, carrier-adapter with the sandbox
carrier, shipment and billing, in-process on SQLite files and a real nats-server; the warehouse
simulator picks, the test sends the carrier's signed scans): a completed order and a cancelled
one agree, zero findings. A parcel billed on ship, returned to sender, cancelled and credited by
the operator, whose credit billing's handler rejects (the kit's fault seam poisons it, as a bug
would), leaves a cancelled order with goods still billed: order_totals finds it, report-only and
correcting runs change nothing (no RPC can post a credit note: refused for an operator), and
once the fault is lifted and the dead letter redriven the next run closes the finding.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from crossdock.billing.v1 import billing_service_pb2 as billing_svc
from crossdock.billing.v1 import billing_service_pb2_grpc as billing_grpc
from crossdock.carrier.v1 import carrier_service_pb2_grpc as carrier_grpc
from crossdock.common.v1 import dead_letters_pb2 as dl
from crossdock.common.v1 import dead_letters_pb2_grpc as dl_grpc
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as order_svc
from crossdock.order.v1 import order_service_pb2_grpc as order_grpc
from crossdock.shipment.v1 import shipment_pb2
from crossdock.shipment.v1 import shipment_service_pb2 as shipment_svc
from crossdock.shipment.v1 import shipment_service_pb2_grpc as shipment_grpc
from nats.aio.client import Client as NATS

from services.billing.config import BillingConfig
from services.billing.main import setup as billing_setup
from services.carrier_adapter.domain.normalize import RawScan
from services.control_tower.adapters.clients import OwnerRefused
from services.control_tower.adapters.store import SERVICE, migrate
from services.control_tower.app import reconcile
from services.control_tower.app.reconcile import FindingsQuery, Reconciler
from services.control_tower.app.reconciliation.checks import (
    CHECKS,
    CheckContext,
    order_totals,
    registry,
)
from services.control_tower.app.reconciliation.checks.order_totals import OrderTotals
from services.control_tower.domain.exceptions import CHECK_OWNERS
from services.control_tower.domain.reconciliation import Drift, Finding, FindingState
from services.kit import faults
from services.kit.client import open_channel
from services.kit.db import Database
from services.kit.dlq import list_dead_letters
from services.kit.server import ServiceServer
from services.kit.uow import UnitsOfWork
from tests.fixtures.nats import NatsServer
from tests.fixtures.running import (
    billing_env,
    carrier_env,
    running_carrier_adapter,
    running_inventory,
    running_order,
    running_shipment,
)
from tests.fixtures.sandbox import sandbox_webhook
from tests.fixtures.spine import EAST, PARTNER, order_request, seed_catalog
from tests.fixtures.waiting import wait_for
from tools.warehouse_sim import SimulatorSettings, WarehouseSimulator

CHECK = "order_totals"
BILLING_CONSUMER = "billing-events"
CREDIT_EVENT = "crossdock.return.received.v1"
# MUG is catalogued with no stock: its order waits for stock and is cancelled unshipped.
ITEMS = {"KETTLE": (1.5, "40.00"), "MUG": (0.4, "9.50")}
STOCK = {("KETTLE", EAST): 50}


def test_it_is_registered_with_its_owner() -> None:
    assert isinstance(CHECKS[CHECK], OrderTotals)
    assert CHECK_OWNERS[CHECK] == "billing"


async def test_a_drift_is_left_to_an_operator() -> None:
    drift = Drift("order:ord_1", "ord_1", "cancelled order, nothing delivered: ...")
    with pytest.raises(OwnerRefused, match="operator's decision") as refused:
        await OrderTotals().correct(CheckContext(), drift)
    assert refused.value.code == "NOT_CORRECTABLE"


async def test_a_scan_without_the_owners_targets_fails_plainly() -> None:
    with pytest.raises(RuntimeError, match="needs the order, shipment and billing targets"):
        async for _ in OrderTotals().scan(CheckContext()):
            pass


@dataclass
class Services:
    orders: order_grpc.OrderServiceStub
    inventory: inv_grpc.InventoryServiceStub
    shipments: shipment_grpc.ShipmentServiceStub
    billing: billing_grpc.BillingServiceStub
    letters: dl_grpc.DeadLetterServiceStub
    carrier: carrier_grpc.CarrierAdapterServiceStub


@contextlib.asynccontextmanager
async def running_services(tmp_path: Path, nats_url: str, nc: NATS) -> AsyncIterator[Services]:
    """The order-to-cash services, the partner billed on ship; billing's own channel also
    serves its DeadLetterService."""
    urls = {
        name: f"sqlite:///{tmp_path / name}.db"
        for name in ("inventory", "order", "carrier_adapter", "shipment", "billing")
    }
    async with contextlib.AsyncExitStack() as stack:
        inventory = await stack.enter_async_context(
            running_inventory(urls["inventory"], nats_url, nc)
        )
        inventory_target = f"127.0.0.1:{inventory.server.port}"
        adapter = await stack.enter_async_context(
            running_carrier_adapter(carrier_env(urls["carrier_adapter"], nats_url))
        )
        shipments = await stack.enter_async_context(
            running_shipment(
                urls["shipment"], nats_url, inventory_target, f"127.0.0.1:{adapter.server.port}"
            )
        )
        orders = await stack.enter_async_context(
            running_order(
                urls["order"],
                nats_url,
                inventory_target,
                SHIPMENT_TARGET=shipments.target,
                CONSUMER_ACK_WAIT_SECONDS="5",
            )
        )
        config = BillingConfig.from_env(
            billing_env(urls["billing"], nats_url, ON_SHIP_PARTNERS=PARTNER)
        )
        server = ServiceServer.from_config(config)
        await billing_setup(server, config)
        port = await server.start()
        stack.push_async_callback(server.shutdown)
        channel = open_channel(f"127.0.0.1:{port}", default_timeout_seconds=10.0)
        stack.push_async_callback(channel.close)
        simulator = WarehouseSimulator(
            inventory.stub,
            SimulatorSettings(poll_seconds=0.2),
            orders=orders,  # type: ignore[arg-type]
            shipments=shipments.stub,  # type: ignore[arg-type]
        )
        stop = asyncio.Event()
        floor = asyncio.create_task(simulator.run(stop))
        try:
            yield Services(
                orders,
                inventory.stub,
                shipments.stub,
                billing_grpc.BillingServiceStub(channel),
                dl_grpc.DeadLetterServiceStub(channel),
                adapter.stub,
            )
        finally:
            stop.set()
            await floor


@pytest.fixture
def units(tmp_path: Path) -> Iterator[UnitsOfWork]:
    url = f"sqlite:///{tmp_path / 'tower'}.db"
    migrate(url)
    database = Database(url, service=SERVICE)
    yield UnitsOfWork(database)
    database.engine.dispose()


async def findings(units: UnitsOfWork, state: FindingState | None = None) -> list[Finding]:
    found, _ = await units.run(
        reconcile.list_findings, FindingsQuery(check=CHECK, state=state, page_size=100)
    )
    return sorted(found, key=lambda f: f.subject_id)


async def status_of(services: Services, order_id: str) -> order_pb2.Order:
    answer = await services.orders.GetOrder(order_svc.GetOrderRequest(order_id=order_id))
    return answer.order


async def until(services: Services, order_id: str, status: int) -> order_pb2.Order:
    order = await wait_for(
        lambda: status_of(services, order_id), lambda o: o.status == status, timeout=60
    )
    assert order.status == status, order
    return order


async def manifested(services: Services, order_id: str) -> shipment_pb2.Shipment:
    async def shipments() -> list[shipment_pb2.Shipment]:
        answer = await services.shipments.ListShipments(
            shipment_svc.ListShipmentsRequest(order_id=order_id)
        )
        return list(answer.shipments)

    found = await wait_for(
        shipments,
        lambda s: len(s) == 1 and s[0].status == shipment_pb2.SHIPMENT_STATUS_MANIFESTED,
        timeout=60,
    )
    assert [s.status for s in found] == [shipment_pb2.SHIPMENT_STATUS_MANIFESTED], found
    return found[0]


async def carrier_scans(services: Services, shipment: shipment_pb2.Shipment, code: str) -> None:
    """The sandbox carrier's signed push: picked up, then `code` (DLV delivered, RTS returned)."""
    t0 = datetime.now(UTC) - timedelta(hours=10)
    scans = [
        RawScan("PKP", "picked up", t0),
        RawScan(code, f"scan {code}", t0 + timedelta(hours=8)),
    ]
    await services.carrier.IngestWebhook(sandbox_webhook(shipment.tracking_number, scans))


async def credit_notes(services: Services, order_id: str) -> list[str]:
    answer = await services.billing.ListCreditNotes(
        billing_svc.ListCreditNotesRequest(order_id=order_id)
    )
    return [note.credit_note_number for note in answer.credit_notes]


async def test_finished_orders_agree_and_an_uncredited_return_is_found_until_it_is_credited(
    tmp_path: Path,
    nats_server: NatsServer,
    nats_client: NATS,
    units: UnitsOfWork,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Billing's credit handler rejects its event as a bug would, until the file is gone.
    fault = tmp_path / "fault"
    fault.write_text(f"handle/{BILLING_CONSUMER}/{CREDIT_EVENT}:poison\n")
    monkeypatch.setenv(faults.FAULT_FILE_ENV, str(fault))
    js = nats_client.jetstream()
    async with running_services(tmp_path, nats_server.url, nats_client) as services:
        # Grace 0: every finished order is judged (the default spares the last 10 minutes).
        ctx = CheckContext(
            # The services' stubs are on aio channels: async stubs, typed as the sync ones.
            order=services.orders,  # type: ignore[arg-type]
            shipment=services.shipments,  # type: ignore[arg-type]
            billing=services.billing,  # type: ignore[arg-type]
            order_totals_grace_seconds=0,
        )
        reconciler = Reconciler(units, registry(OrderTotals()), ctx)
        await seed_catalog(services.inventory, ITEMS, STOCK)

        # Completed: invoiced on ship, then delivered.
        placed = await services.orders.CreateOrder(
            order_request("TOTALS-OK", [("KETTLE", 2, "40.00")])
        )
        completed_id = placed.order.order_id
        await carrier_scans(services, await manifested(services, completed_id), "DLV")
        await until(services, completed_id, order_pb2.ORDER_STATUS_COMPLETED)
        # Cancelled while it waited for stock: never shipped, never invoiced.
        waiting = await services.orders.CreateOrder(
            order_request("TOTALS-CANCEL", [("MUG", 1, "9.50")])
        )
        await until(services, waiting.order.order_id, order_pb2.ORDER_STATUS_BACKORDERED)
        await services.orders.CancelOrder(
            order_svc.CancelOrderRequest(order_id=waiting.order.order_id, reason="no stock")
        )
        await until(services, waiting.order.order_id, order_pb2.ORDER_STATUS_CANCELLED)

        healthy = (await reconciler.run([CHECK])).runs[0]
        assert (healthy.error, healthy.scanned, healthy.drifts) == ("", 2, 0)
        assert await findings(units) == []

        # Billed on ship, returned to sender, cancelled and credited by the operator: the
        # order asks billing for the credit, and billing's handler dead-letters it.
        placed = await services.orders.CreateOrder(
            order_request("TOTALS-RTS", [("KETTLE", 1, "40.00")])
        )
        returned_id = placed.order.order_id
        parcel = await manifested(services, returned_id)
        await carrier_scans(services, parcel, "RTS")
        await until(services, returned_id, order_pb2.ORDER_STATUS_EXCEPTION)
        await services.orders.CancelAndCreditReturnedShipment(
            order_svc.CancelAndCreditReturnedShipmentRequest(
                order_id=returned_id,
                shipment_id=parcel.shipment_id,
                reason="customer refused the parcel",
            )
        )
        await until(services, returned_id, order_pb2.ORDER_STATUS_CANCELLED)
        letters = await wait_for(
            lambda: list_dead_letters(js, BILLING_CONSUMER), lambda got: len(got) == 1
        )
        (letter,) = letters
        assert letter.original_subject == CREDIT_EVENT, letter
        assert await credit_notes(services, returned_id) == []

        # One order per page here: the scan follows ListOrders' pages within each status.
        monkeypatch.setattr(order_totals, "ORDERS_PAGE_SIZE", 1)
        seen = (await reconciler.run([CHECK], report_only=True)).runs[0]
        monkeypatch.setattr(order_totals, "ORDERS_PAGE_SIZE", 200)
        assert (seen.error, seen.scanned, seen.drifts, seen.new_findings) == ("", 3, 1, 1)
        (finding,) = await findings(units, FindingState.OPEN)
        assert (finding.subject_id, finding.order_id) == (f"order:{returned_id}", returned_id)
        assert finding.evidence == (
            "cancelled order, nothing delivered: goods invoiced 40.00, credited 0.00, net 40.00 USD"
        )
        assert finding.correction is None

        # Correcting mode: refused for an operator, recorded; the finding stays, nothing moves.
        refused = (await reconciler.run([CHECK])).runs[0]
        assert (refused.error, refused.drifts, refused.new_findings, refused.corrected) == (
            "",
            1,
            0,
            0,
        )
        (finding,) = await findings(units, FindingState.OPEN)
        assert finding.correction is not None and not finding.correction.succeeded
        assert finding.correction.action == "billing.operator"
        assert "is an operator's decision" in finding.correction.result
        assert finding.runs_seen == 2
        assert await credit_notes(services, returned_id) == []

        # The fix is deployed and the letter redriven: billing credits the goods.
        fault.unlink()
        redriven = await services.letters.RedriveDeadLetter(
            dl.RedriveDeadLetterRequest(
                sequence=letter.seq, consumer=BILLING_CONSUMER, operator="ada"
            )
        )
        assert redriven.outcome == dl.REDRIVE_OUTCOME_APPLIED, redriven
        assert len(await credit_notes(services, returned_id)) == 1

        closed = (await reconciler.run([CHECK])).runs[0]
        assert (closed.error, closed.scanned, closed.drifts, closed.closed) == ("", 3, 0, 1)
        assert closed.open_findings == 0
        (done,) = await findings(units)
        assert done.state is FindingState.CLOSED
