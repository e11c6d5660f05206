"""Dead letters in the workbench: a poison event dead-lettered by the REAL billing service shows
as a dead_letter exception owned by billing; a redrive goes through billing's DeadLetterService
(it fails again: the event is still poison) and is audited; the letter discarded, it closes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import pytest
from crossdock.events.v1 import shipment_events_pb2
from crossdock.shipment.v1 import shipment_pb2
from crossdock.tower.v1 import tower_pb2 as pb
from nats.aio.client import Client as NATS

from services.billing.config import BillingConfig
from services.billing.main import setup as billing_setup
from services.kit import dlq
from services.kit import events as ev
from services.kit.cli import main as crossdock
from services.kit.server import ServiceServer
from tests.control_tower.lifecycle import published
from tests.control_tower.test_service import running_tower
from tests.control_tower.test_workbench_service import OPERATOR, exceptions, refused
from tests.fixtures.nats import NatsServer
from tests.fixtures.running import billing_env
from tests.fixtures.waiting import wait_for

DEAD_LETTER = pb.EXCEPTION_KIND_DEAD_LETTER


@contextlib.asynccontextmanager
async def running_billing(db_url: str, nats_url: str) -> AsyncIterator[str]:
    """billing as its main module builds it; yields its gRPC target."""
    config = BillingConfig.from_env(billing_env(db_url, nats_url))
    server = ServiceServer.from_config(config)
    try:
        await billing_setup(server, config)
        yield f"127.0.0.1:{await server.start()}"
    finally:
        await server.shutdown()


async def test_a_poison_event_is_a_dead_letter_exception_redriven_through_its_owner(
    sqlite_url: str,
    nats_server: NatsServer,
    nats_client: NATS,
    capsys: pytest.CaptureFixture[str],
) -> None:
    js = nats_client.jetstream()
    billing_db = sqlite_url.replace("service.db", "billing.db")
    async with (
        running_billing(billing_db, nats_server.url) as billing_target,
        running_tower(sqlite_url, nats_server.url, BILLING_TARGET=billing_target) as (
            target,
            tower,
        ),
    ):
        # A delivery whose body billing cannot decode: billing dead-letters it.
        shipment_id = "shp_01JD8Q3V6F1Q2ZK9WJ7X4M5N8R"
        order_id = "ord_01JD8Q3V6F1Q2ZK9WJ7X4M5N8R"
        delivered = published(
            shipment_events_pb2.ShipmentDelivered(
                shipment=shipment_pb2.Shipment(shipment_id=shipment_id, order_id=order_id)
            ),
            shipment_id,
            datetime.now(UTC).timestamp(),
            "corr-poison",
        )
        headers = {**delivered.headers, ev.NATS_MSG_ID: delivered.event_id}
        await js.publish(delivered.subject, b"\xff\xff\xff", headers=headers)

        def billings(found: list[pb.Exception]) -> list[pb.Exception]:
            return [x for x in found if x.owner == "billing"]

        (letter,) = billings(
            await wait_for(lambda: exceptions(tower, DEAD_LETTER), lambda f: len(billings(f)) == 1)
        )
        durable, sequence = letter.subject_id.rsplit(":", 1)
        assert (letter.subject_kind, durable) == ("dead_letter", "billing-events")
        assert letter.event_id == delivered.event_id
        assert letter.detail.startswith(f"{delivered.subject} {delivered.event_id} dead-lettered")
        assert letter.state == pb.EXCEPTION_STATE_OPEN

        # Redriven while still poison: billing answers FAILED_AGAIN; audited, still open.
        error = await refused(
            tower.RedriveException(
                pb.RedriveExceptionRequest(
                    exception_id=letter.exception_id, operator=OPERATOR, reason="fix deployed"
                )
            )
        )
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert (error.details() or "").startswith("billing.RedriveDeadLetter answered FAILED_AGAIN")
        shown = await tower.GetException(pb.GetExceptionRequest(exception_id=letter.exception_id))
        (entry,) = shown.audit
        assert (entry.action, entry.succeeded, entry.owner_call, entry.reason) == (
            pb.EXCEPTION_ACTION_REDRIVE,
            False,
            "billing.RedriveDeadLetter",
            "fix deployed",
        )
        assert shown.exception.state == pb.EXCEPTION_STATE_OPEN
        # The same from a shell: the refusal on stderr, exit 1, one more audit row.
        command = ["exceptions", "redrive", str(letter.exception_id), "--operator", "bob"]
        assert await asyncio.to_thread(crossdock, [*command, "--target", target]) == 1
        assert capsys.readouterr().err.startswith(
            "crossdock: FAILED_PRECONDITION: billing.RedriveDeadLetter answered FAILED_AGAIN"
        )
        shown = await tower.GetException(pb.GetExceptionRequest(exception_id=letter.exception_id))
        assert [a.operator for a in shown.audit] == [OPERATOR, "bob"]

        # An unknown exception is NOT_FOUND.
        other = await refused(
            tower.RedriveException(
                pb.RedriveExceptionRequest(exception_id=letter.exception_id + 1000, operator="o")
            )
        )
        assert other.code() is grpc.StatusCode.NOT_FOUND

        # The letter discarded (by an admin with the dlq command's rights): the exception closes.
        assert await dlq.discard(js, int(sequence))
        closed = await wait_for(
            lambda: tower.GetException(pb.GetExceptionRequest(exception_id=letter.exception_id)),
            lambda got: got.exception.state == pb.EXCEPTION_STATE_CLOSED,
        )
        assert closed.exception.closed_by == "dead letter gone from the DLQ (redriven or discarded)"
        # Closed: no more redrives.
        again = await refused(
            tower.RedriveException(
                pb.RedriveExceptionRequest(exception_id=letter.exception_id, operator=OPERATOR)
            )
        )
        assert again.code() is grpc.StatusCode.FAILED_PRECONDITION
