"""Acceptance, end to end on the session mesh (the same launcher as `make run`): a delivered event
purged from the SHIPMENT stream before billing consumed it leaves a delivered shipment with no
invoice. The tower's `delivered_vs_invoiced` check finds it: report-only changes nothing; the
correcting run has shipment re-emit the delivery under its event id and billing invoices it once;
the next run finds nothing and the finding is closed. The `event_flow` check sees the same loss
from the other side (published by shipment, never applied by billing) and closes once it is.

The drift is made through NATS's own means: billing's durable on the SHIPMENT stream is paused
(JetStream consumer pause, nats-server >= 2.11) while the order travels, the delivered message is
deleted from the stream, and the durable resumes past the gap. It is always resumed, even when
the test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import nats
import pytest
from crossdock.tower.v1 import tower_pb2 as pb
from crossdock.tower.v1 import tower_pb2_grpc as pb_grpc
from nats.js import JetStreamContext

from localmesh import Mesh
from localmesh.demo import DemoOrder, PartnerApi, place, sample_order
from services.kit import events as ev
from services.kit.cli import main as crossdock
from tests.fixtures.events import stream_messages
from tests.fixtures.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STREAM = "SHIPMENT"
BILLING_DURABLE = "billing-events"
DELIVERED = "crossdock.shipment.delivered.v1"
CHECK = "delivered_vs_invoiced"
EVENT_FLOW = "event_flow"


@contextlib.asynccontextmanager
async def paused(js: JetStreamContext, stream: str, durable: str) -> AsyncIterator[None]:
    """The durable delivers nothing for the block; it resumes after, whatever happens."""
    until = (datetime.now(UTC) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    await js.pause_consumer(stream, durable, until)
    try:
        yield
    finally:
        await js.resume_consumer(stream, durable)


async def delivered_message(js: JetStreamContext, shipment_id: str) -> Any:
    for message in await stream_messages(js, STREAM, DELIVERED):
        if (message.headers or {}).get(ev.CE_SUBJECT) == shipment_id:
            return message
    return None


async def purge_delivery_before_billing(mesh: Mesh) -> tuple[str, str, str]:
    """An order placed over REST, delivered while billing's durable is paused, its delivered
    event deleted from the stream; (order id, shipment id, the event id that was purged)."""
    api = PartnerApi(mesh.gateway_url, mesh.demo_api_key)
    client = await nats.connect(mesh.nats_admin_url)
    try:
        js = client.jetstream()
        async with paused(js, STREAM, BILLING_DURABLE):
            order = DemoOrder(f"RECON-{uuid.uuid4().hex[:10]}")
            place(api, order, sample_order(order.external_id, random.Random(11)))
            assert order.order_id, order.error

            def shipments() -> list[dict[str, Any]]:
                return api.list_for_order("/v1/shipments", "shipments", order.order_id)

            found = await wait_for(
                shipments,
                lambda got: (
                    bool(got) and all(s["status"] == "SHIPMENT_STATUS_DELIVERED" for s in got)
                ),
                timeout=90,
                interval=0.5,
            )
            assert found and found[0]["status"] == "SHIPMENT_STATUS_DELIVERED", found
            shipment_id = str(found[0]["shipmentId"])
            message = await wait_for(
                lambda: delivered_message(js, shipment_id), lambda got: got is not None
            )
            assert message is not None
            event_id = str(message.headers[ev.CE_ID])
            await js.delete_msg(STREAM, message.seq)
            assert await delivered_message(js, shipment_id) is None
    finally:
        await client.close()
    # Billing resumed past the gap: the shipment stays delivered and uninvoiced.
    await asyncio.sleep(2)
    assert api.list_for_order("/v1/invoices", "invoices", order.order_id) == []
    return order.order_id, shipment_id, event_id


def run_check(
    tower: pb_grpc.TowerServiceStub, *, report_only: bool, check: str = CHECK
) -> pb.ReconciliationRun:
    answer = tower.RunReconciliation(
        pb.RunReconciliationRequest(checks=[check], report_only=report_only), timeout=120
    )
    (run,) = answer.runs
    assert run.check == check and not run.error, run
    return run


def findings_of(
    tower: pb_grpc.TowerServiceStub, subject_id: str, check: str = CHECK
) -> list[pb.Finding]:
    answer = tower.ListFindings(pb.ListFindingsRequest(check=check, page_size=1000), timeout=10)
    return [f for f in answer.findings if f.subject_id == subject_id]


async def test_a_purged_delivery_is_found_reported_corrected_once_and_closed(
    mesh: Mesh, capsys: pytest.CaptureFixture[str]
) -> None:
    order_id, shipment_id, event_id = await purge_delivery_before_billing(mesh)
    api = PartnerApi(mesh.gateway_url, mesh.demo_api_key)

    def invoices() -> list[dict[str, Any]]:
        return api.list_for_order("/v1/invoices", "invoices", order_id)

    with grpc.insecure_channel(mesh.grpc_targets["control-tower"]) as channel:
        tower = pb_grpc.TowerServiceStub(channel)

        # Report-only: one finding with its evidence, nothing corrected, nothing changed.
        reported = run_check(tower, report_only=True)
        assert reported.mode == pb.RECONCILIATION_MODE_REPORT_ONLY
        assert reported.corrected == 0 and reported.drifts >= 1
        (finding,) = findings_of(tower, shipment_id)
        assert (finding.state, finding.order_id, finding.corrected) == (
            pb.FINDING_STATE_OPEN,
            order_id,
            False,
        )
        assert "no invoice" in finding.evidence
        await asyncio.sleep(1)
        assert invoices() == []

        # The lost-event check sees it too: published by shipment, not applied by billing.
        await asyncio.sleep(2.5)  # past event_flow's grace (2 s on the session mesh)
        run_check(tower, report_only=True, check=EVENT_FLOW)
        (lost,) = findings_of(tower, event_id, check=EVENT_FLOW)
        assert lost.state == pb.FINDING_STATE_OPEN and not lost.corrected
        assert "billing-events" in lost.evidence and "published by shipment" in lost.evidence

        # A second report-only run raises no second finding for the same drift.
        run_check(tower, report_only=True)
        (again,) = findings_of(tower, shipment_id)
        assert (again.finding_id, again.runs_seen) == (finding.finding_id, 2)

        # The operator's command corrects: shipment re-emits the delivery under its event id.
        command = [
            "reconcile",
            "run",
            "--check",
            CHECK,
            "--target",
            mesh.grpc_targets["control-tower"],
        ]
        assert await asyncio.to_thread(crossdock, command) == 0
        table = capsys.readouterr().out
        assert CHECK in table
        (corrected,) = findings_of(tower, shipment_id)
        assert corrected.corrected and "ReemitDelivered" in corrected.action, corrected
        assert event_id in corrected.result, corrected

        # Billing applies it, once: one invoice, and the order completes.
        posted = await wait_for(invoices, lambda got: len(got) >= 1, timeout=30)
        assert [i["shipmentId"] for i in posted] == [shipment_id]
        status = await wait_for(
            lambda: api.call("GET", f"/v1/orders/{order_id}")["order"]["status"],
            lambda got: got == "ORDER_STATUS_COMPLETED",
            timeout=30,
        )
        assert status == "ORDER_STATUS_COMPLETED"

        # The next run finds nothing for it, and the finding is closed (its exception too).
        run_check(tower, report_only=False)
        (closed,) = findings_of(tower, shipment_id)
        assert closed.state == pb.FINDING_STATE_CLOSED
        assert len(invoices()) == 1
        # Billing has applied the event now: the lost-event finding closes too.
        run_check(tower, report_only=True, check=EVENT_FLOW)
        (applied,) = findings_of(tower, event_id, check=EVENT_FLOW)
        assert applied.state == pb.FINDING_STATE_CLOSED
