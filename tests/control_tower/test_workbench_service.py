"""The exceptions workbench on the running tower, its actions through the REAL owners.

The spine (inventory, order, carrier-adapter with the sandbox carrier, shipment, billing) runs
in-process on one nats-server; the tower consumes what they publish. A label booking that keeps
failing shows as label_failed and is fixed by RetryException (shipment.RetryLabel) until the
order ships; a scan with a code the sandbox does not know shows as carrier_code_unmapped and is
fixed by MapCarrierCodeException (carrier-adapter.MapCarrierCode). Every action is in the audit
trail and on the order's timeline; the owners' events close the exceptions.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from crossdock.carrier.v1 import tracking_pb2
from crossdock.events.v1 import order_events_pb2, shipment_events_pb2
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as order_svc
from crossdock.shipment.v1 import shipment_pb2
from crossdock.shipment.v1 import shipment_service_pb2 as shipment_svc
from crossdock.tower.v1 import tower_pb2 as pb
from crossdock.tower.v1 import tower_pb2_grpc as pb_grpc
from nats.aio.client import Client as NATS

from services.carrier_adapter.domain.normalize import RawScan
from services.kit.cli import main as crossdock
from tests.control_tower.exception_scenarios import code_unmapped, label_failed, manifested
from tests.control_tower.lifecycle import published
from tests.control_tower.test_flows_service import gauge, samples
from tests.control_tower.test_flows_service import tower as flows_tower
from tests.control_tower.test_service import publish, running_tower, violations
from tests.fixtures.nats import NatsServer
from tests.fixtures.sandbox import sandbox_webhook
from tests.fixtures.spine import EAST, Spine, order_request, running_spine, seed_catalog
from tests.fixtures.waiting import wait_for

OPERATOR = "ops@example.com"
LABEL_FAILED = pb.EXCEPTION_KIND_LABEL_FAILED
CODE_UNMAPPED = pb.EXCEPTION_KIND_CARRIER_CODE_UNMAPPED


def spine_urls(tmp_path: Path) -> dict[str, str]:
    names = ("inventory", "order", "carrier_adapter", "shipment", "billing")
    return {name: f"sqlite:///{tmp_path / name}.db" for name in names}


def owner_targets(spine: Spine) -> dict[str, str]:
    """The tower's targets of the spine's shipment (its own process) and carrier-adapter."""
    assert spine.shipment_process is not None
    return {
        "SHIPMENT_TARGET": spine.shipment_process.target,
        "CARRIER_ADAPTER_TARGET": f"127.0.0.1:{spine.carrier.server.port}",
    }


async def exceptions(
    stub: pb_grpc.TowerServiceStub, kind: int = 0, state: int = 0
) -> list[pb.Exception]:
    answer = await stub.ListExceptions(pb.ListExceptionsRequest(kind=kind, state=state))
    return list(answer.exceptions)


async def order_status(spine: Spine, order_id: str) -> int:
    answer = await spine.orders.GetOrder(order_svc.GetOrderRequest(order_id=order_id))
    return int(answer.order.status)


async def shipment_status(spine: Spine, shipment_id: str) -> int:
    request = shipment_svc.GetShipmentRequest(shipment_id=shipment_id)
    return int((await spine.shipments.GetShipment(request)).shipment.status)


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def test_a_failing_label_is_retried_and_an_unmapped_code_is_mapped_through_the_owners(
    tmp_path: Path,
    db_url: str,
    nats_server: NatsServer,
    nats_client: NATS,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # One attempt of 0.3 s against a carrier that takes 1 s: every booking fails for good.
    async with (
        running_spine(
            spine_urls(tmp_path),
            nats_server.url,
            nats_client,
            carrier={"ACCOUNT_SANDBOX_LABEL_DELAY_SECONDS": "1", "SANDBOX_PUSH": "off"},
            shipment={"LABEL_TIMEOUT_SECONDS": "0.3", "LABEL_MAX_ATTEMPTS": "1"},
            shipment_as_process=True,
        ) as spine,
        running_tower(
            db_url,
            nats_server.url,
            **owner_targets(spine),
        ) as (target, tower),
    ):
        await seed_catalog(spine.inventory, {"KETTLE": (1.5, "40.00")}, {("KETTLE", EAST): 50})
        placed = await spine.orders.CreateOrder(order_request("EXC-1", [("KETTLE", 1, "40.00")]))
        order_id = placed.order.order_id

        # The failure appears with its kind, owner, subject and order.
        (failure,) = await wait_for(
            lambda: exceptions(tower, LABEL_FAILED), lambda found: len(found) == 1
        )
        assert (failure.owner, failure.subject_kind, failure.order_id) == (
            "shipment",
            "shipment",
            order_id,
        )
        assert failure.state == pb.EXCEPTION_STATE_OPEN
        assert failure.detail.startswith("label booking failed: DEADLINE_EXCEEDED")
        shown = await tower.GetException(pb.GetExceptionRequest(exception_id=failure.exception_id))
        # The same exception, only older.
        assert shown.exception.age.ToTimedelta() >= failure.age.ToTimedelta()
        shown.exception.ClearField("age")
        failure.ClearField("age")
        assert shown.exception == failure and list(shown.audit) == []

        # Map-code on a label failure is refused, naming the field; nothing is audited.
        error = await refused(
            tower.MapCarrierCodeException(
                pb.MapCarrierCodeExceptionRequest(
                    exception_id=failure.exception_id,
                    status=tracking_pb2.TRACKING_STATUS_IN_TRANSIT,
                    operator=OPERATOR,
                    note="n/a",
                )
            )
        )
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert (error.details() or "").startswith("exception_id: ")

        # The operator retries through the tower until the carrier's booking lands (each
        # attempt gives the carrier 0.3 s; a timed-out booking finishes there in the background
        # and is handed back under the same key).
        retries = 0
        for _ in range(6):
            acted = await tower.RetryException(
                pb.RetryExceptionRequest(
                    exception_id=failure.exception_id, operator=OPERATOR, reason="carrier is back"
                )
            )
            retries += 1
            assert acted.audit.owner_call == "shipment.RetryLabel" and acted.audit.succeeded
            # Back to CREATED by the retry; wait for the booking's outcome.
            status = await wait_for(
                lambda: shipment_status(spine, failure.subject_id),
                lambda s: s != shipment_pb2.SHIPMENT_STATUS_CREATED,
            )
            if status == shipment_pb2.SHIPMENT_STATUS_MANIFESTED:
                break
            await asyncio.sleep(1.5)  # let a booking still running at the carrier finish
        assert status == shipment_pb2.SHIPMENT_STATUS_MANIFESTED
        # The order leaves EXCEPTION once its shipment is manifested.
        shipped = await wait_for(
            lambda: order_status(spine, order_id), lambda s: s == order_pb2.ORDER_STATUS_SHIPPED
        )
        assert shipped == order_pb2.ORDER_STATUS_SHIPPED

        # The manifest closes it; the audit trail has every retry.
        closed = await wait_for(
            lambda: tower.GetException(pb.GetExceptionRequest(exception_id=failure.exception_id)),
            lambda got: got.exception.state == pb.EXCEPTION_STATE_CLOSED,
        )
        assert closed.exception.closed_by.startswith("event crossdock.shipment.manifested.v1 ")
        assert [(a.action, a.operator, a.reason) for a in closed.audit] == [
            (pb.EXCEPTION_ACTION_RETRY, OPERATOR, "carrier is back")
        ] * retries
        assert closed.audit[0].result.startswith("shipment ") and "SHIPMENT_STATUS_" in (
            closed.audit[0].result
        )
        # A closed exception cannot be retried or resolved.
        for call in (
            tower.RetryException(
                pb.RetryExceptionRequest(exception_id=failure.exception_id, operator=OPERATOR)
            ),
            tower.ResolveException(
                pb.ResolveExceptionRequest(
                    exception_id=failure.exception_id, operator=OPERATOR, note="done"
                )
            ),
        ):
            error = await refused(call)
            assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
            assert "is closed (event crossdock.shipment.manifested.v1" in (error.details() or "")

        # A scan with a code the sandbox's table lacks: carrier_code_unmapped, on the order.
        shipment = (
            await spine.shipments.GetShipment(
                shipment_svc.GetShipmentRequest(shipment_id=failure.subject_id)
            )
        ).shipment
        at = datetime.now(UTC) - timedelta(minutes=5)
        push = sandbox_webhook(shipment.tracking_number, [RawScan("ZQ7", "odd scan", at)])
        await spine.carrier.stub.IngestWebhook(push)
        (unmapped,) = await wait_for(
            lambda: exceptions(tower, CODE_UNMAPPED), lambda found: len(found) == 1
        )
        assert (unmapped.owner, unmapped.subject_kind, unmapped.subject_id) == (
            "carrier-adapter",
            "carrier_code",
            "sandbox:ZQ7",
        )
        assert unmapped.order_id == order_id
        error = await refused(
            tower.RetryException(
                pb.RetryExceptionRequest(exception_id=unmapped.exception_id, operator=OPERATOR)
            )
        )
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        mapped = await tower.MapCarrierCodeException(
            pb.MapCarrierCodeExceptionRequest(
                exception_id=unmapped.exception_id,
                status=tracking_pb2.TRACKING_STATUS_IN_TRANSIT,
                operator=OPERATOR,
                note="sandbox docs: ZQ7 is a hub scan",
            )
        )
        assert mapped.audit.succeeded and mapped.audit.owner_call == (
            "carrier-adapter.MapCarrierCode"
        )
        assert mapped.audit.result == (
            "sandbox:ZQ7 mapped to TRACKING_STATUS_IN_TRANSIT (version 1, 1 scans renormalized)"
        )
        gone = await wait_for(
            lambda: exceptions(tower, CODE_UNMAPPED, pb.EXCEPTION_STATE_OPEN),
            lambda found: found == [],
        )
        assert gone == []
        (fixed,) = await exceptions(tower, CODE_UNMAPPED)
        assert fixed.closed_by.startswith("event crossdock.carrier.code_mapped.v1 ")

        # The order's timeline shows each action as an entry of its own, in time order.
        timeline = await tower.GetTimeline(pb.GetTimelineRequest(reference=order_id))
        actions = [e for e in timeline.entries if e.producer == "operator"]
        assert [e.subject for e in actions] == ["exception.retry"] * retries + [
            "exception.map_code"
        ]
        assert actions[-1].state_change.startswith(
            f"{OPERATOR}: carrier-adapter.MapCarrierCode done: sandbox:ZQ7 mapped"
        )
        times = [(e.occur_time.seconds, e.occur_time.nanos) for e in timeline.entries]
        assert times == sorted(times)

        # The operator's commands: list, and show with the audit trail.
        assert await asyncio.to_thread(crossdock, ["exceptions", "list", "--target", target]) == 0
        table = capsys.readouterr().out
        assert "label_failed" in table and "carrier_code_unmapped" in table
        show = ["exceptions", "show", str(unmapped.exception_id), "--target", target, "--json"]
        assert await asyncio.to_thread(crossdock, show) == 0
        body = json.loads(capsys.readouterr().out)
        assert body["exception"]["subject_id"] == "sandbox:ZQ7"
        assert body["audit"][0]["operator"] == OPERATOR


async def test_an_owner_refusal_is_audited_and_answered_precisely(
    tmp_path: Path,
    sqlite_url: str,
    nats_server: NatsServer,
    nats_client: NATS,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A label failure of a shipment the shipment service does not know (published by hand):
    shipment answers NOT_FOUND; the tower audits the refusal and answers FAILED_PRECONDITION."""
    async with (
        running_spine(
            spine_urls(tmp_path),
            nats_server.url,
            nats_client,
            warehouse=False,
            shipment_as_process=True,
        ) as spine,
        running_tower(
            sqlite_url,
            nats_server.url,
            **owner_targets(spine),
        ) as (target, tower),
    ):
        shipment_id, order_id = "shp_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P", "ord_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"
        message = shipment_events_pb2.ShipmentDeliveryException(
            shipment=shipment_events_pb2.ShipmentRef(shipment_id=shipment_id, order_id=order_id),
            description="label booking failed: no rate",
        )
        at = datetime.now(UTC).timestamp()
        placed = order_events_pb2.OrderPlaced(order=order_pb2.Order(order_id=order_id))
        js = nats_client.jetstream()
        await publish(js, published(placed, order_id, at - 60, "corr-1"))
        await publish(js, published(message, shipment_id, at, "corr-1"))
        (found,) = await wait_for(lambda: exceptions(tower), lambda got: len(got) == 1)

        error = await refused(
            tower.RetryException(
                pb.RetryExceptionRequest(
                    exception_id=found.exception_id, operator=OPERATOR, reason="try again"
                )
            )
        )
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert (error.details() or "").startswith("shipment.RetryLabel answered NOT_FOUND: ")
        shown = await tower.GetException(pb.GetExceptionRequest(exception_id=found.exception_id))
        (entry,) = shown.audit
        assert (entry.action, entry.succeeded, entry.owner_call) == (
            pb.EXCEPTION_ACTION_RETRY,
            False,
            "shipment.RetryLabel",
        )
        assert entry.result.startswith("NOT_FOUND: ")
        assert shown.exception.state == pb.EXCEPTION_STATE_OPEN

        # Resolving it by hand closes it, audited, and it shows on the order's timeline.
        resolve = [
            "exceptions",
            "resolve",
            str(found.exception_id),
            "--note",
            "shipment was rebuilt by hand",
            "--operator",
            "alice",
            "--target",
            target,
        ]
        assert await asyncio.to_thread(crossdock, resolve) == 0
        capsys.readouterr()
        shown = await tower.GetException(pb.GetExceptionRequest(exception_id=found.exception_id))
        assert shown.exception.state == pb.EXCEPTION_STATE_CLOSED
        assert shown.exception.closed_by == "operator alice"
        assert [(a.action, a.operator, a.reason) for a in shown.audit][1:] == [
            (pb.EXCEPTION_ACTION_RESOLVE, "alice", "shipment was rebuilt by hand")
        ]
        timeline = await tower.GetTimeline(pb.GetTimelineRequest(reference=order_id))
        assert [e.subject for e in timeline.entries] == [
            "crossdock.order.placed.v1",
            "exception.retry",
            "exception.resolve",
        ]


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (pb.GetExceptionRequest(exception_id=0), {("exception_id", "int64.gt")}),
        (
            pb.RetryExceptionRequest(exception_id=1, operator=""),
            {("operator", "string.min_len"), ("operator", "string.pattern")},
        ),
        (
            pb.RetryExceptionRequest(exception_id=1, operator="a b", reason="x\x07"),
            {("operator", "string.pattern"), ("reason", "string.pattern")},
        ),
        (
            pb.ResolveExceptionRequest(exception_id=1, operator="ops", note=""),
            {("note", "string.min_len"), ("note", "string.pattern")},
        ),
        (
            pb.ResolveExceptionRequest(exception_id=1, operator="ops", note=" padded"),
            {("note", "string.pattern")},
        ),
        (
            pb.MapCarrierCodeExceptionRequest(
                exception_id=1,
                status=tracking_pb2.TRACKING_STATUS_UNKNOWN,
                operator="ops",
                note="x",
            ),
            {("status", "enum.not_in")},
        ),
        (pb.ListExceptionsRequest(kind=99), {("kind", "enum.defined_only")}),
        (pb.ListExceptionsRequest(page_token="bad!"), {("page_token", "page_token")}),
    ],
)
async def test_bad_inputs_are_invalid_arguments_naming_each_field(
    sqlite_url: str, nats_server: NatsServer, request_: object, expected: set[tuple[str, str]]
) -> None:
    async with running_tower(sqlite_url, nats_server.url) as (_, tower):
        method = {
            pb.GetExceptionRequest: tower.GetException,
            pb.RetryExceptionRequest: tower.RetryException,
            pb.ResolveExceptionRequest: tower.ResolveException,
            pb.MapCarrierCodeExceptionRequest: tower.MapCarrierCodeException,
            pb.ListExceptionsRequest: tower.ListExceptions,
        }[type(request_)]
        error = await refused(method(request_))
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert violations(error) == expected


async def test_an_unknown_exception_is_not_found(sqlite_url: str, nats_server: NatsServer) -> None:
    async with running_tower(sqlite_url, nats_server.url) as (_, tower):
        for call in (
            tower.GetException(pb.GetExceptionRequest(exception_id=404)),
            tower.RetryException(pb.RetryExceptionRequest(exception_id=404, operator="ops")),
            tower.ResolveException(
                pb.ResolveExceptionRequest(exception_id=404, operator="ops", note="x")
            ),
        ):
            error = await refused(call)
            assert error.code() is grpc.StatusCode.NOT_FOUND
            assert error.details() == "no exception 404"


async def test_open_exceptions_by_kind_and_age_are_gauges(
    sqlite_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    now = datetime.now(UTC).timestamp()
    shipment_id, order_id = "shp_01JD8Q3V6F1Q2ZK9WJ7X4M5N8Q", "ord_01JD8Q3V6F1Q2ZK9WJ7X4M5N8Q"
    async with flows_tower(sqlite_url, nats_server.url) as (_, _stub, server):
        await publish(js, label_failed(shipment_id, order_id, now - 600, "no rate"))
        await publish(js, code_unmapped("sandbox", "QQ1", "1Z9", now - 60))

        def opened(s: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> tuple[float, ...]:
            return (
                gauge(s, "crossdock_exceptions_open", kind="label_failed", owner="shipment"),
                gauge(
                    s,
                    "crossdock_exceptions_open",
                    kind="carrier_code_unmapped",
                    owner="carrier-adapter",
                ),
                gauge(s, "crossdock_exceptions_open", kind="label_void_failed", owner="shipment"),
            )

        found = await wait_for(lambda: samples(server), lambda s: opened(s) == (1, 1, 0))
        oldest = "crossdock_exceptions_oldest_age_seconds"
        assert (gauge(found, oldest, kind="label_failed") or 0) >= 600
        assert gauge(found, oldest, kind="label_void_failed") == 0

        # The manifest fixes the label: its series falls to zero.
        await publish(js, manifested(shipment_id, order_id, now))
        found = await wait_for(lambda: samples(server), lambda s: opened(s) == (0, 1, 0))
        assert gauge(found, oldest, kind="label_failed") == 0
