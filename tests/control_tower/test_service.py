"""The control tower as a running service: real nats-server, SQLite and PostgreSQL, gRPC.

Events are published into JetStream as their producers' relays would, out of order and with a
redelivery; the timeline is read through TowerService and the `crossdock tower` command.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC

import grpc
import pytest
from crossdock.events.v1 import shipment_events_pb2
from crossdock.tower.v1 import tower_pb2 as pb
from crossdock.tower.v1 import tower_pb2_grpc as pb_grpc
from google.rpc import error_details_pb2
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from services.control_tower.config import TowerConfig
from services.control_tower.main import setup
from services.kit import events as ev
from services.kit.cli import main as crossdock
from services.kit.client import open_channel
from services.kit.grpc_errors import details_of, status_from_error
from services.kit.server import ServiceServer
from services.kit.streams import DLQ_STREAM, dlq_subject
from tests.control_tower.lifecycle import T0, Lifecycle, Published
from tests.fixtures.events import stream_messages
from tests.fixtures.nats import NatsServer
from tests.fixtures.waiting import wait_for


@contextlib.asynccontextmanager
async def running_tower(
    db_url: str, nats_url: str, **owners: str
) -> AsyncIterator[tuple[str, pb_grpc.TowerServiceStub]]:
    """The tower built as its main module builds it; yields its target and a client stub.
    `owners` sets the workbench's targets (SHIPMENT_TARGET=..., CARRIER_ADAPTER_TARGET=...)."""
    env = {
        "CROSSDOCK_CONTROL_TOWER_DB_URL": db_url,
        "CROSSDOCK_CONTROL_TOWER_NATS_URL": nats_url,
        "CROSSDOCK_CONTROL_TOWER_GRPC_PORT": "0",
        "CROSSDOCK_CONTROL_TOWER_METRICS_PORT": "0",
        "CROSSDOCK_CONTROL_TOWER_BIND_HOST": "127.0.0.1",
        "CROSSDOCK_CONTROL_TOWER_CONSUMER_FETCH_TIMEOUT_SECONDS": "0.2",
        # The workbench's owners: not called by these tests (channels connect on first call).
        "CROSSDOCK_CONTROL_TOWER_SHIPMENT_TARGET": "127.0.0.1:1",
        "CROSSDOCK_CONTROL_TOWER_CARRIER_ADAPTER_TARGET": "127.0.0.1:1",
        "CROSSDOCK_CONTROL_TOWER_ORDER_TARGET": "127.0.0.1:1",
        "CROSSDOCK_CONTROL_TOWER_INVENTORY_TARGET": "127.0.0.1:1",
        "CROSSDOCK_CONTROL_TOWER_BILLING_TARGET": "127.0.0.1:1",
    }
    env |= {f"CROSSDOCK_CONTROL_TOWER_{name}": target for name, target in owners.items()}
    config = TowerConfig.from_env(env)
    server = ServiceServer.from_config(config)
    try:
        await setup(server, config)
        port = await server.start()
        target = f"127.0.0.1:{port}"
        channel = open_channel(target, default_timeout_seconds=10.0)
        try:
            yield target, pb_grpc.TowerServiceStub(channel)
        finally:
            await channel.close()
    finally:
        await server.shutdown()


async def publish(js: JetStreamContext, event: Published, msg_id: str | None = None) -> int:
    """Publish as the producer's relay would; returns the stream sequence."""
    headers = {**event.headers, ev.NATS_MSG_ID: msg_id or event.event_id}
    ack = await js.publish(event.subject, event.message.SerializeToString(), headers=headers)
    return int(ack.seq)


async def timeline_of(stub: pb_grpc.TowerServiceStub, reference: str) -> pb.GetTimelineResponse:
    try:
        return await stub.GetTimeline(pb.GetTimelineRequest(reference=reference))
    except grpc.aio.AioRpcError as error:
        if error.code() is grpc.StatusCode.NOT_FOUND:
            return pb.GetTimelineResponse()
        raise


def violations(error: grpc.aio.AioRpcError) -> set[tuple[str, str]]:
    status = status_from_error(error)
    assert status is not None
    (bad_request,) = details_of(status, error_details_pb2.BadRequest)
    return {(v.field, v.reason) for v in bad_request.field_violations}


def precondition_subjects(error: grpc.aio.AioRpcError) -> list[str]:
    status = status_from_error(error)
    assert status is not None
    (failure,) = details_of(status, error_details_pb2.PreconditionFailure)
    return [v.subject for v in failure.violations]


async def test_events_from_every_stream_in_any_order_and_twice_make_one_timeline(
    db_url: str, nats_server: NatsServer, nats_client: NATS, capsys: pytest.CaptureFixture[str]
) -> None:
    js = nats_client.jetstream()
    order = Lifecycle().build()
    async with running_tower(db_url, nats_server.url) as (target, stub):
        # Billing's and the carrier's events first, the order's placement last.
        sequences = {}
        for event in reversed(order.events):
            sequences[event.event_id] = await publish(js, event)
        # A redelivery JetStream does not de-duplicate: same ce-id, fresh Nats-Msg-Id.
        await publish(js, order.events[5], msg_id="again-" + order.events[5].event_id)

        got = await wait_for(
            lambda: timeline_of(stub, order.order_id),
            lambda answer: len(answer.entries) >= len(order.events),
        )
        assert [e.event_id for e in got.entries] == [e.event_id for e in order.events]
        assert [e.stream_sequence for e in got.entries] == [
            sequences[e.event_id] for e in order.events
        ]
        released = got.entries[3]
        assert (released.producer, released.subject, released.state_change) == (
            "order",
            "crossdock.order.released.v1",
            "order → RELEASED",
        )
        assert released.event_type == "crossdock.events.v1.OrderReleased"
        assert released.trace_id == order.trace_id
        assert released.correlation_id == f"corr-{order.order_id}"
        assert released.occur_time.ToDatetime(tzinfo=UTC).timestamp() == T0 + 2

        for reference, matched in (
            (order.external_order_id, pb.REFERENCE_KIND_EXTERNAL_ORDER_ID),
            (order.tracking_number, pb.REFERENCE_KIND_TRACKING_NUMBER),
            (order.invoice_number, pb.REFERENCE_KIND_INVOICE_NUMBER),
        ):
            other = await stub.GetTimeline(pb.GetTimelineRequest(reference=reference))
            assert (other.order_id, other.matched) == (order.order_id, matched)
            assert other.entries == got.entries

        # The operator's command prints the same timeline, as a table or as JSON.
        command = ["tower", "timeline", order.tracking_number, "--target", target]
        assert await asyncio.to_thread(crossdock, command) == 0
        table = capsys.readouterr().out.splitlines()
        assert table[0] == f"order {order.order_id} (matched tracking_number), 13 events"
        assert table[2].split()[2:] == ["PRODUCER", "EVENT", "STATE", "AGGREGATE", "TRACE"]
        assert table[3].split()[1:3] == ["order", "order.placed.v1"]
        assert "order → RELEASED" in table[6]
        assert await asyncio.to_thread(crossdock, [*command, "--json"]) == 0
        body = json.loads(capsys.readouterr().out)
        assert body["order_id"] == order.order_id
        assert [e["event_id"] for e in body["entries"]] == [e.event_id for e in order.events]
        placed = body["entries"][0]["details"]
        assert placed["@type"] == "type.googleapis.com/crossdock.events.v1.OrderPlaced"
        assert placed["order"]["external_order_id"] == order.external_order_id

        # Details on request only: the stored body, typed, decoded by the reader.
        assert not any(entry.HasField("details") for entry in got.entries)
        detailed = await stub.GetTimeline(
            pb.GetTimelineRequest(reference=order.shipment_id, include_details=True)
        )
        manifested = shipment_events_pb2.ShipmentManifested()
        assert detailed.entries[6].details.Unpack(manifested)
        assert manifested.shipment.tracking_number == order.tracking_number


@pytest.mark.parametrize(
    ("reference", "rule"),
    [
        ("", "string.min_len"),
        ("x" * 129, "string.max_len"),
        ("PO\x071", "reference.printable"),
        ("PO 1", "reference.printable"),
    ],
)
async def test_malformed_references_are_invalid_arguments_naming_the_field(
    sqlite_url: str, nats_server: NatsServer, reference: str, rule: str
) -> None:
    async with running_tower(sqlite_url, nats_server.url) as (_, stub):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetTimeline(pb.GetTimelineRequest(reference=reference))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert violations(caught.value) == {("reference", rule)}


async def test_an_unknown_reference_is_not_found_with_the_reference_named(
    sqlite_url: str, nats_server: NatsServer
) -> None:
    async with running_tower(sqlite_url, nats_server.url) as (_, stub):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetTimeline(pb.GetTimelineRequest(reference="PO-404"))
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND
        assert caught.value.details() == "no order is known by reference 'PO-404'"


async def test_a_shared_external_id_needs_the_partner_and_the_cli_says_why(
    sqlite_url: str,
    nats_server: NatsServer,
    nats_client: NATS,
    capsys: pytest.CaptureFixture[str],
) -> None:
    js = nats_client.jetstream()
    first = Lifecycle().build()
    second = Lifecycle(external_order_id=first.external_order_id).build()
    async with running_tower(sqlite_url, nats_server.url) as (target, stub):
        await publish(js, first.events[0])
        await publish(js, second.events[0])
        shared = pb.GetTimelineRequest(reference=first.external_order_id)

        async def refusal() -> grpc.aio.AioRpcError | None:
            try:
                await stub.GetTimeline(shared)
            except grpc.aio.AioRpcError as error:
                if error.code() is grpc.StatusCode.FAILED_PRECONDITION:
                    return error
            return None

        error = await wait_for(refusal, lambda found: found is not None)
        assert error is not None
        assert f"{first.external_order_id!r} is used by 2 partners" in str(error.details())
        assert precondition_subjects(error) == ["partner_id"]
        picked = await stub.GetTimeline(
            pb.GetTimelineRequest(reference=first.external_order_id, partner_id=first.partner_id)
        )
        assert (picked.order_id, picked.matched) == (
            first.order_id,
            pb.REFERENCE_KIND_EXTERNAL_ORDER_ID,
        )

        command = ["tower", "timeline", "PO 1", "--target", target]
        assert await asyncio.to_thread(crossdock, command) == 2
        assert capsys.readouterr().err == (
            "crossdock: INVALID_ARGUMENT: reference: must be printable ASCII without spaces or "
            "control characters\n"
        )


async def test_an_undecodable_reference_event_is_dead_lettered_and_the_rest_applies(
    sqlite_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    order = Lifecycle().build()
    placed, reserved, released = order.events[0], order.events[1], order.events[3]
    async with running_tower(sqlite_url, nats_server.url) as (_, stub):
        headers = {**placed.headers, ev.NATS_MSG_ID: placed.event_id}
        await js.publish(placed.subject, b"\xff\xff", headers=headers)
        await publish(js, released)
        await publish(js, reserved)

        letters = await wait_for(
            lambda: stream_messages(js, DLQ_STREAM, dlq_subject("control-tower-projections")),
            lambda found: len(found) == 1,
        )
        assert [letter.headers["ce-id"] for letter in letters] == [placed.event_id]
        got = await wait_for(
            lambda: timeline_of(stub, order.order_id), lambda answer: len(answer.entries) == 2
        )
        assert [e.event_id for e in got.entries] == [reserved.event_id, released.event_id]
        # Nothing of the bad event stayed behind: its external order id is unknown.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetTimeline(pb.GetTimelineRequest(reference=order.external_order_id))
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND
