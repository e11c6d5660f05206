"""End to end: an order placed through the partner REST API on the whole local mesh (the same
launcher as `make run`) reaches COMPLETED, and the control tower shows its timeline from every
service in causal order, the same whichever of its references it is looked up by.

The mesh is the test session's shared one (tests/fixtures/mesh.py, registered in
tests/conftest.py).
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from crossdock.tower.v1 import tower_pb2 as pb
from crossdock.tower.v1 import tower_pb2_grpc as pb_grpc

from localmesh import Mesh
from localmesh.demo import PartnerApi, run_demo
from tests.fixtures.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Quiet:
    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def timeline(stub: pb_grpc.TowerServiceStub, reference: str) -> pb.GetTimelineResponse:
    return stub.GetTimeline(pb.GetTimelineRequest(reference=reference), timeout=10)


def test_a_completed_orders_timeline_spans_the_mesh_by_any_reference(mesh: Mesh) -> None:
    api = PartnerApi(mesh.gateway_url, mesh.demo_api_key)
    (order,) = run_demo(api, count=1, timeout_seconds=120, out=Quiet(), seed=3)  # type: ignore[arg-type]
    assert order.status == "COMPLETED", order
    shipments: list[dict[str, Any]] = api.list_for_order(
        "/v1/shipments", "shipments", order.order_id
    )
    invoices = api.list_for_order("/v1/invoices", "invoices", order.order_id)
    assert shipments and invoices

    with grpc.insecure_channel(mesh.grpc_targets["control-tower"]) as channel:
        stub = pb_grpc.TowerServiceStub(channel)
        # The tower consumes asynchronously: wait for the completion to reach it.
        full = wait_until(
            lambda: timeline(stub, order.order_id),
            lambda answer: any(e.subject == "crossdock.order.completed.v1" for e in answer.entries),
            timeout=30,
        )
        subjects = [e.subject for e in full.entries]
        assert "crossdock.order.completed.v1" in subjects, subjects
        assert full.order_id == order.order_id
        assert len({e.producer for e in full.entries}) >= 5, {e.producer for e in full.entries}
        # Causal order: never back in time, placed first, completed after delivered and invoiced.
        times = [e.occur_time.ToNanoseconds() for e in full.entries]
        assert times == sorted(times)
        assert subjects[0] == "crossdock.order.placed.v1"
        completed = subjects.index("crossdock.order.completed.v1")
        assert subjects.index("crossdock.shipment.delivered.v1") < completed
        assert subjects.index("crossdock.billing.invoice_posted.v1") < completed
        # Every entry is a distinct event (the mesh runs untraced: trace ids are empty here).
        assert len({e.event_id for e in full.entries}) == len(full.entries)
        assert full.entries[0].state_change == "order → PLACED"

        references = {
            pb.REFERENCE_KIND_EXTERNAL_ORDER_ID: order.external_id,
            pb.REFERENCE_KIND_SHIPMENT_ID: shipments[0]["shipmentId"],
            pb.REFERENCE_KIND_TRACKING_NUMBER: shipments[0]["trackingNumber"],
            pb.REFERENCE_KIND_INVOICE_NUMBER: invoices[0]["invoiceNumber"],
        }
        for kind, reference in references.items():
            # Read side by side: a late carrier scan may still land between two reads.
            other, latest = wait_until(
                lambda reference=reference: (
                    timeline(stub, reference),
                    timeline(stub, order.order_id),
                ),
                lambda pair: list(pair[0].entries) == list(pair[1].entries),
                timeout=10,
            )
            assert (other.order_id, other.matched) == (order.order_id, kind), reference
            assert list(other.entries) == list(latest.entries), reference
