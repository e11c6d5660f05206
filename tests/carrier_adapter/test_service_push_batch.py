"""IngestWebhooks: several carrier pushes in one call, each with the outcome IngestWebhook would
have given it. Real service over gRPC, real NATS, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import pytest
from crossdock.carrier.v1 import carrier_service_pb2 as svc
from crossdock.events.v1 import carrier_events_pb2 as events
from google.api import httpbody_pb2
from nats.aio.client import Client as NATS

from services.carrier_adapter.adapters.carriers.sandbox import webhooks
from services.carrier_adapter.domain.normalize import RawScan
from services.kit import events as ev
from services.kit.values import Money
from tests.carrier_adapter.service_support import TRACKING_UPDATED, scan
from tests.carrier_adapter.test_service_tracking import booked_tracking_number
from tests.fixtures.events import stream_messages
from tests.fixtures.nats import NatsServer
from tests.fixtures.running import CarrierAdapter, carrier_env, running_carrier_adapter
from tests.fixtures.sandbox import WEBHOOK_SECRET, sandbox_webhook
from tests.fixtures.waiting import wait_for


@pytest.fixture
async def adapter(
    db_url: str, nats_server: NatsServer, nats_client: NATS
) -> AsyncIterator[CarrierAdapter]:
    """On SQLite and on PostgreSQL: a batch is one transaction with a savepoint per push."""
    async with running_carrier_adapter(carrier_env(db_url, nats_server.url)) as service:
        yield service


def item(push: svc.IngestWebhookRequest, correlation_id: str) -> svc.IngestWebhookItem:
    return svc.IngestWebhookItem(push=push, correlation_id=correlation_id)


async def test_each_push_of_a_batch_gets_its_own_outcome(
    adapter: CarrierAdapter, nats_client: NATS
) -> None:
    first = await booked_tracking_number(adapter, "shp_batch_00001")
    second = await booked_tracking_number(adapter, "shp_batch_00002")
    pushes = [
        item(sandbox_webhook(first, [scan("LBL", 0), scan("PKP", 90)]), "corr-a"),
        item(sandbox_webhook(first, [scan("DLV", 300)], secret="not-the-secret"), "corr-forged"),
        item(sandbox_webhook(second, [scan("LBL", 0)]), "corr-b"),
        # The carrier re-sent the first push: its scans were recorded by the batch's first item.
        item(sandbox_webhook(first, [scan("LBL", 0), scan("PKP", 90)]), "corr-a-again"),
    ]
    reply = await adapter.stub.IngestWebhooks(svc.IngestWebhooksRequest(pushes=pushes))

    outcomes = [result.WhichOneof("outcome") for result in reply.results]
    assert outcomes == ["ingested", "error", "ingested", "ingested"]
    ingested = [(r.ingested.accepted_events, r.ingested.duplicate_events) for r in reply.results]
    assert [ingested[0], ingested[2], ingested[3]] == [(2, 0), (1, 0), (0, 2)]
    # The forged push is refused as IngestWebhook refuses it, and only it.
    assert reply.results[1].error.code == grpc.StatusCode.UNAUTHENTICATED.value[0]
    assert reply.results[1].error.message

    found = await wait_for(
        lambda: stream_messages(nats_client.jetstream(), "CARRIER", TRACKING_UPDATED),
        lambda messages: len(messages) >= 2,
    )
    assert len(found) == 2  # one per accepted push; the duplicate and the forgery add nothing
    published = {
        events.TrackingUpdated.FromString(m.data).tracking_number: m.headers[ev.CORRELATION_ID]
        for m in found
    }
    assert published == {first: "corr-a", second: "corr-b"}  # each push keeps its request's id

    # The forged scan was not recorded: the genuine delivery scan is still new.
    genuine = await adapter.stub.IngestWebhook(sandbox_webhook(first, [scan("DLV", 300)]))
    assert genuine.accepted_events == 1


async def test_a_push_for_an_unconfigured_carrier_fails_alone(adapter: CarrierAdapter) -> None:
    number = await booked_tracking_number(adapter, "shp_batch_00003")
    stranger = sandbox_webhook(number, [scan("LBL", 0)])
    stranger.carrier = "ups"
    reply = await adapter.stub.IngestWebhooks(
        svc.IngestWebhooksRequest(
            pushes=[item(stranger, "corr-ups"), item(sandbox_webhook(number, [scan("LBL", 0)]), "")]
        )
    )
    assert reply.results[0].error.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert reply.results[1].ingested.accepted_events == 1


async def test_a_push_with_no_scans_is_answered_with_its_zero_counts(
    adapter: CarrierAdapter,
) -> None:
    """(0, 0) is an answer too: the result is `ingested`, not an empty outcome."""
    number = await booked_tracking_number(adapter, "shp_batch_00006")
    now = datetime.now(UTC)
    body = webhooks.encode_push("evt_sbx_no_scans", number, [], now)
    empty = svc.IngestWebhookRequest(
        carrier="sandbox",
        body=httpbody_pb2.HttpBody(content_type="application/json", data=body),
        signature_headers=webhooks.sign(body, [WEBHOOK_SECRET], "evt_sbx_no_scans", now),
    )
    pushes = [item(empty, "corr-empty"), item(sandbox_webhook(number, [scan("LBL", 0)]), "")]
    reply = await adapter.stub.IngestWebhooks(svc.IngestWebhooksRequest(pushes=pushes))
    assert [result.WhichOneof("outcome") for result in reply.results] == ["ingested", "ingested"]
    counts = [(r.ingested.accepted_events, r.ingested.duplicate_events) for r in reply.results]
    assert counts == [(0, 0), (1, 0)]


async def test_an_empty_batch_is_invalid(adapter: CarrierAdapter) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await adapter.stub.IngestWebhooks(svc.IngestWebhooksRequest())
    assert empty.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def charged_push(number: str, scans: list[RawScan], amount: str) -> svc.IngestWebhookRequest:
    """A signed sandbox push whose final charge is `amount` USD."""
    now = datetime.now(UTC)
    event_id = f"evt_sbx_{number}_charged"
    body = webhooks.encode_push(event_id, number, scans, now, Money.of(amount, "USD"))
    return svc.IngestWebhookRequest(
        carrier="sandbox",
        body=httpbody_pb2.HttpBody(content_type="application/json", data=body),
        signature_headers=webhooks.sign(body, [WEBHOOK_SECRET], event_id, now),
    )


async def test_a_push_failing_while_recorded_fails_alone_and_leaves_nothing_behind(
    adapter: CarrierAdapter, nats_client: NATS
) -> None:
    """A push that passes its checks but fails while recorded (a final charge finer than a
    nano, refused when its event is built) gets IngestWebhook's error; the others are
    recorded and published once each, and none of its scans is kept as seen."""
    first = await booked_tracking_number(adapter, "shp_batch_00004")
    second = await booked_tracking_number(adapter, "shp_batch_00005")
    refused = charged_push(second, [scan("DLV", 300)], "12.0000000001")
    with pytest.raises(grpc.aio.AioRpcError) as alone:
        await adapter.stub.IngestWebhook(refused)

    pushes = [
        item(sandbox_webhook(first, [scan("LBL", 0)]), "corr-first"),
        item(refused, "corr-refused"),
        item(sandbox_webhook(first, [scan("LBL", 0), scan("PKP", 90)]), "corr-again"),
    ]
    reply = await adapter.stub.IngestWebhooks(svc.IngestWebhooksRequest(pushes=pushes))

    assert [result.WhichOneof("outcome") for result in reply.results] == [
        "ingested",
        "error",
        "ingested",
    ]
    assert reply.results[1].error.code == alone.value.code().value[0]
    ingested = [(r.ingested.accepted_events, r.ingested.duplicate_events) for r in reply.results]
    assert [ingested[0], ingested[2]] == [(1, 0), (1, 1)]

    # The refused push's scan was not kept as seen: without the odd charge it is new.
    genuine = await adapter.stub.IngestWebhook(charged_push(second, [scan("DLV", 300)], "12.5"))
    assert genuine.accepted_events == 1
    found = await wait_for(
        lambda: stream_messages(nats_client.jetstream(), "CARRIER", TRACKING_UPDATED),
        lambda messages: len(messages) >= 3,
    )
    published = [
        (events.TrackingUpdated.FromString(m.data).tracking_number, m.headers[ev.CORRELATION_ID])
        for m in found
    ]
    assert len(published) == 3  # once per accepted push, in each parcel's order
    assert [p for p in published if p[0] == first] == [(first, "corr-first"), (first, "corr-again")]
    assert [p[0] for p in published if p[0] != first] == [second]
