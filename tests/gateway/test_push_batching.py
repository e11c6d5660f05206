"""The gateway's PushBatcher against a real carrier-adapter: concurrent pushes ride in shared
IngestWebhooks calls, and each still gets the answer IngestWebhook would have given it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from crossdock.carrier.v1 import carrier_service_pb2 as carrier_pb
from nats.aio.client import Client as NATS

from gateway.adapters.push_batching import PushBatcher
from services.kit.client import open_channel
from services.kit.grpc_errors import status_from_error
from services.kit.request_context import correlation_scope
from tests.carrier_adapter.service_support import scan
from tests.carrier_adapter.test_service_tracking import booked_tracking_number
from tests.fixtures.nats import NatsServer
from tests.fixtures.running import CarrierAdapter, carrier_env, running_carrier_adapter
from tests.fixtures.sandbox import sandbox_webhook

SERVICE = "/crossdock.carrier.v1.CarrierAdapterService"


@pytest.fixture
async def adapter(
    tmp_path: Path, nats_server: NatsServer, nats_client: NATS
) -> AsyncIterator[CarrierAdapter]:
    env = carrier_env(f"sqlite:///{tmp_path / 'carrier_adapter.db'}", nats_server.url)
    async with running_carrier_adapter(env) as service:
        yield service


class Counted:
    """A real call that counts how often it was made."""

    def __init__(self, call):  # type: ignore[no-untyped-def]
        self.call, self.calls, self.sizes = call, 0, []

    async def __call__(self, request):  # type: ignore[no-untyped-def]
        self.calls += 1
        self.sizes.append(len(getattr(request, "pushes", [request])))
        return await self.call(request)


async def test_concurrent_pushes_share_calls_and_keep_their_own_outcomes(
    adapter: CarrierAdapter,
) -> None:
    numbers = [await booked_tracking_number(adapter, f"shp_burst_{i:05d}") for i in range(12)]
    batched = Counted(adapter.stub.IngestWebhooks)
    single = Counted(adapter.stub.IngestWebhook)
    batcher = PushBatcher(batched, single, max_batch=5, max_in_flight=1)

    async def push(index: int, number: str) -> carrier_pb.IngestWebhookResponse:
        secret = "forged-secret" if index % 4 == 3 else None
        webhook = (
            sandbox_webhook(number, [scan("LBL", 0)], secret=secret)
            if secret
            else sandbox_webhook(number, [scan("LBL", 0)])
        )
        with correlation_scope(f"burst-{index}"):
            return await batcher.ingest(webhook)

    answers = await asyncio.gather(
        *(push(i, n) for i, n in enumerate(numbers)), return_exceptions=True
    )
    for index, answer in enumerate(answers):
        if index % 4 == 3:
            assert isinstance(answer, grpc.aio.AioRpcError)
            assert answer.code() is grpc.StatusCode.UNAUTHENTICATED
            assert status_from_error(answer) is not None  # rich details, as a unary call has
            assert dict(answer.trailing_metadata())["x-correlation-id"] == f"burst-{index}"
        else:
            assert isinstance(answer, carrier_pb.IngestWebhookResponse), answer
            assert (answer.accepted_events, answer.duplicate_events) == (1, 0)
    # The first push went alone; the rest queued behind it and went in batches of at most 5.
    assert single.calls == 0
    assert batched.sizes[0] == 1 and max(batched.sizes) == 5
    assert batched.calls < len(numbers)
    await batcher.close()


async def test_a_cancelled_push_does_not_disturb_the_others(adapter: CarrierAdapter) -> None:
    numbers = [await booked_tracking_number(adapter, f"shp_cancel_{i:04d}") for i in range(3)]
    batcher = PushBatcher(adapter.stub.IngestWebhooks, adapter.stub.IngestWebhook)
    tasks = [
        asyncio.create_task(batcher.ingest(sandbox_webhook(n, [scan("LBL", 0)]))) for n in numbers
    ]
    await asyncio.sleep(0)  # all three are queued or in flight
    tasks[1].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[1], asyncio.CancelledError)
    assert [done[0].accepted_events, done[2].accepted_events] == [1, 1]  # type: ignore[union-attr]
    await batcher.close()


async def test_an_adapter_without_ingest_webhooks_gets_pushes_one_by_one(
    adapter: CarrierAdapter,
) -> None:
    """A carrier-adapter of an older release answers UNIMPLEMENTED, as any server does for a
    method it does not have: the pushes still go through, one IngestWebhook each."""
    number = await booked_tracking_number(adapter, "shp_older_00001")
    channel = open_channel(f"127.0.0.1:{adapter.server.port}", default_timeout_seconds=10.0)
    missing = channel.unary_unary(
        f"{SERVICE}/IngestWebhooksNotHere",
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=carrier_pb.IngestWebhooksResponse.FromString,
    )
    batched, single = Counted(missing), Counted(adapter.stub.IngestWebhook)
    batcher = PushBatcher(batched, single)
    first = await batcher.ingest(sandbox_webhook(number, [scan("LBL", 0)]))
    second = await batcher.ingest(sandbox_webhook(number, [scan("LBL", 0), scan("PKP", 90)]))
    assert (first.accepted_events, second.accepted_events, second.duplicate_events) == (1, 1, 1)
    assert (batched.calls, single.calls) == (1, 2)  # batching is not retried at once
    await batcher.close()
    await channel.close()
