"""The workbench's order_exception and label_outcome_unknown kinds on the running tower.

An order whose pick times out (a real order service, with inventory and shipment, on one
nats-server) shows as order_exception, one per episode: RetryException goes through the order's
own RetryOrderStep, the order's exception_cleared closes that episode, and the retried step
timing out again is a new exception of the same order. A label whose booking outcome is unknown
at the carrier shows as label_outcome_unknown, whose retry is refused precisely (a retry would
book twice) and which an operator resolves once reconciled.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from crossdock.tower.v1 import tower_pb2 as pb
from nats.aio.client import Client as NATS

from tests.control_tower.exception_scenarios import outcome_unknown
from tests.control_tower.test_service import publish, running_tower
from tests.control_tower.test_workbench_service import OPERATOR, exceptions, refused
from tests.fixtures.catalog import EAST, seed
from tests.fixtures.nats import NatsServer
from tests.fixtures.ports import free_port
from tests.fixtures.waiting import wait_for
from tests.order.service_support import order_request, running_mesh

ORDER_EXCEPTION = pb.EXCEPTION_KIND_ORDER_EXCEPTION
OUTCOME_UNKNOWN = pb.EXCEPTION_KIND_LABEL_OUTCOME_UNKNOWN


async def test_an_order_exception_is_retried_through_order_and_its_next_failure_is_a_new_one(
    tmp_path: Path, sqlite_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    urls = {name: f"sqlite:///{tmp_path / name}.db" for name in ("inventory", "shipment", "order")}
    # Nobody picks here: every pick times out, the first one and the retried one.
    order_port = free_port()
    settings = {"PICK_TIMEOUT_SECONDS": "1", "GRPC_PORT": str(order_port)}
    async with (
        running_mesh(urls, nats_server.url, nats_client, settings) as mesh,
        running_tower(sqlite_url, nats_server.url, ORDER_TARGET=f"127.0.0.1:{order_port}") as (
            _,
            tower,
        ),
    ):
        await seed(mesh.inventory, ["SKU-A"], {("SKU-A", EAST): 5})
        created = await mesh.orders.CreateOrder(order_request([("SKU-A", 2)]))
        order_id = created.order.order_id

        (first,) = await wait_for(
            lambda: exceptions(tower, ORDER_EXCEPTION), lambda found: len(found) == 1
        )
        assert (first.owner, first.subject_kind, first.subject_id, first.order_id) == (
            "order",
            "order",
            f"{order_id}:1",
            order_id,
        )
        assert first.state == pb.EXCEPTION_STATE_OPEN
        assert first.detail.startswith("order in EXCEPTION at AWAIT_PICK: AWAIT_PICK not done by")

        acted = await tower.RetryException(
            pb.RetryExceptionRequest(
                exception_id=first.exception_id, operator=OPERATOR, reason="floor is back"
            )
        )
        assert (acted.audit.owner_call, acted.audit.succeeded) == ("order.RetryOrderStep", True)
        assert acted.audit.result == (
            f"order {order_id} is ORDER_STATUS_RELEASED (FULFILLMENT_STEP_AWAIT_PICK)"
        )

        # The order's clear closes episode 1; the retried pick times out again: episode 2.
        found = await wait_for(
            lambda: exceptions(tower, ORDER_EXCEPTION),
            lambda got: len(got) == 2 and got[0].state == pb.EXCEPTION_STATE_CLOSED,
        )
        closed, second = found
        assert closed.exception_id == first.exception_id
        assert closed.closed_by.startswith("event crossdock.order.exception_cleared.v1 ")
        assert (second.subject_id, second.order_id, second.state) == (
            f"{order_id}:2",
            order_id,
            pb.EXCEPTION_STATE_OPEN,
        )

        # The order's timeline shows both moves of each episode, and the operator's retry.
        timeline = await tower.GetTimeline(pb.GetTimelineRequest(reference=order_id))
        moves = [
            (e.subject, e.state_change)
            for e in timeline.entries
            if "exception" in e.subject and e.producer == "order"
        ]
        raised = ("crossdock.order.exception_raised.v1", "order → EXCEPTION")
        cleared = ("crossdock.order.exception_cleared.v1", "order exception → CLEARED")
        assert moves == [raised, cleared, raised]
        assert [e.subject for e in timeline.entries if e.producer == "operator"] == [
            "exception.retry"
        ]


async def test_a_label_whose_outcome_is_unknown_is_never_retried_and_is_resolved_by_hand(
    sqlite_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    shipment_id, order_id = "shp_01JD8Q3V6F1Q2ZK9WJ7X4M5N8R", "ord_01JD8Q3V6F1Q2ZK9WJ7X4M5N8R"
    async with running_tower(sqlite_url, nats_server.url) as (_, tower):
        await publish(nats_client.jetstream(), outcome_unknown(shipment_id, order_id, 1.8e9))
        (found,) = await wait_for(
            lambda: exceptions(tower, OUTCOME_UNKNOWN), lambda got: len(got) == 1
        )
        assert (found.owner, found.subject_kind, found.subject_id, found.order_id) == (
            "shipment",
            "shipment",
            shipment_id,
            order_id,
        )
        assert await exceptions(tower, pb.EXCEPTION_KIND_LABEL_FAILED) == []

        error = await refused(
            tower.RetryException(
                pb.RetryExceptionRequest(exception_id=found.exception_id, operator=OPERATOR)
            )
        )
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert error.details() == (
            f"exception_id: exception {found.exception_id} is label_outcome_unknown: the "
            "label's booking outcome is unknown at the carrier (a retry would book a second "
            "label or be refused): reconcile with the carrier, then resolve it"
        )

        resolved = await tower.ResolveException(
            pb.ResolveExceptionRequest(
                exception_id=found.exception_id,
                operator=OPERATOR,
                note="carrier confirmed no label was booked",
            )
        )
        assert resolved.exception.state == pb.EXCEPTION_STATE_CLOSED
        assert resolved.exception.closed_by == f"operator {OPERATOR}"
        shown = await tower.GetException(pb.GetExceptionRequest(exception_id=found.exception_id))
        # The refused retry called no owner, so only the resolve is audited.
        assert [(a.action, a.owner_call) for a in shown.audit] == [
            (pb.EXCEPTION_ACTION_RESOLVE, "")
        ]


@pytest.mark.parametrize("kind", [ORDER_EXCEPTION, OUTCOME_UNKNOWN])
async def test_the_new_kinds_are_valid_filters(
    sqlite_url: str, nats_server: NatsServer, kind: int
) -> None:
    async with running_tower(sqlite_url, nats_server.url) as (_, tower):
        assert await exceptions(tower, kind) == []
