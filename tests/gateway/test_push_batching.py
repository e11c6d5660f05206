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
    # The first call took the pushes queued when it started (all 12 were: at most 5 a call);
    # the rest queued behind it and went in batches of at most 5.
    assert single.calls == 0
    assert batched.sizes[0] == 5 and max(batched.sizes) == 5
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


class FakeIngest:
    """IngestWebhooks as a fake: accepts every push, after `delay` seconds; records call sizes."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay, self.sizes = delay, []  # type: list[int]

    async def __call__(
        self, request: carrier_pb.IngestWebhooksRequest
    ) -> carrier_pb.IngestWebhooksResponse:
        self.sizes.append(len(request.pushes))
        await asyncio.sleep(self.delay)
        accepted = carrier_pb.IngestWebhookResponse(accepted_events=1)
        return carrier_pb.IngestWebhooksResponse(
            results=[carrier_pb.IngestWebhookResult(ingested=accepted) for _ in request.pushes]
        )


async def _no_single(request: carrier_pb.IngestWebhookRequest) -> carrier_pb.IngestWebhookResponse:
    raise AssertionError("IngestWebhook must not be called while IngestWebhooks works")


def _push(index: int) -> carrier_pb.IngestWebhookRequest:
    return carrier_pb.IngestWebhookRequest(carrier="sandbox", body={"data": b"%d" % index})


async def test_a_lone_push_goes_at_once_in_a_call_of_its_own() -> None:
    fake = FakeIngest()
    batcher = PushBatcher(fake, _no_single)
    answer = await asyncio.wait_for(batcher.ingest(_push(0)), timeout=5)
    assert answer.accepted_events == 1
    assert fake.sizes == [1]
    await batcher.close()


async def test_pushes_of_one_loop_turn_share_the_first_call() -> None:
    """Pushes whose requests the event loop handled in the same turn ride in one call, though
    a second call slot is free: the call takes what is queued when it starts."""
    fake = FakeIngest(delay=0.05)
    batcher = PushBatcher(fake, _no_single, max_batch=10, max_in_flight=2)
    first = [asyncio.ensure_future(batcher.ingest(_push(i))) for i in range(3)]
    await asyncio.sleep(0.01)  # the first call is out; these queue behind it
    later = [asyncio.ensure_future(batcher.ingest(_push(i))) for i in range(3, 7)]
    answers = await asyncio.gather(*first, *later)
    assert [answer.accepted_events for answer in answers] == [1] * 7
    assert fake.sizes == [3, 4]
    await batcher.close()
