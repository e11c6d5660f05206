"""IngestWebhooks: several carrier pushes in one call, each with the outcome IngestWebhook would
have given it. Real service over gRPC, real NATS, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from crossdock.carrier.v1 import carrier_service_pb2 as svc
from crossdock.events.v1 import carrier_events_pb2 as events
from nats.aio.client import Client as NATS

from services.kit import events as ev
from tests.carrier_adapter.service_support import TRACKING_UPDATED, scan
from tests.carrier_adapter.test_service_tracking import booked_tracking_number
from tests.fixtures.events import stream_messages
from tests.fixtures.nats import NatsServer
from tests.fixtures.running import CarrierAdapter, carrier_env, running_carrier_adapter
from tests.fixtures.sandbox import sandbox_webhook
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


async def test_an_empty_batch_is_invalid(adapter: CarrierAdapter) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await adapter.stub.IngestWebhooks(svc.IngestWebhooksRequest())
    assert empty.value.code() is grpc.StatusCode.INVALID_ARGUMENT
