"""carrier-adapter webhooks through gRPC: signed pushes become TrackingUpdated events (via the
outbox, read back from JetStream), duplicates publish nothing, forgeries are refused, and an
unmapped carrier code raises CarrierCodeUnmapped. Real service, real NATS, SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from crossdock.carrier.v1 import tracking_pb2
from crossdock.events.v1 import carrier_events_pb2 as events
from nats.aio.client import Client as NATS

from tests.carrier_adapter.service_support import (
    CODE_UNMAPPED,
    TRACKING_UPDATED,
    book_request,
    rates_request,
    return_rates_request,
    return_request,
    scan,
)
from tests.fixtures.events import stream_messages
from tests.fixtures.nats import NatsServer
from tests.fixtures.running import CarrierAdapter, carrier_env, running_carrier_adapter
from tests.fixtures.sandbox import sandbox_webhook
from tests.fixtures.waiting import wait_for


@pytest.fixture
async def adapter(
    tmp_path: Path, nats_server: NatsServer, nats_client: NATS
) -> AsyncIterator[CarrierAdapter]:
    env = carrier_env(f"sqlite:///{tmp_path / 'carrier_adapter.db'}", nats_server.url)
    async with running_carrier_adapter(env) as service:
        yield service


async def booked_tracking_number(service: CarrierAdapter, key: str) -> str:
    rates = await service.stub.GetRates(rates_request())
    answer = await service.stub.BookLabel(book_request(key, rates.rates[0].rate_id))
    return answer.label.tracking_number


async def updates(nc: NATS, count: int) -> list[events.TrackingUpdated]:
    """The TrackingUpdated events in JetStream, once at least `count` have arrived."""
    found = await wait_for(
        lambda: stream_messages(nc.jetstream(), "CARRIER", TRACKING_UPDATED),
        lambda m: len(m) >= count,
    )
    return [_decode(events.TrackingUpdated, message) for message in found]


def _decode(kind: Any, message: Any) -> Any:
    event = kind()
    event.ParseFromString(message.data)
    return event


async def test_a_webhook_publishes_its_scans_once(
    adapter: CarrierAdapter, nats_client: NATS
) -> None:
    number = await booked_tracking_number(adapter, "shp_webhook_001")
    push = sandbox_webhook(number, [scan("LBL", 0), scan("PKP", 90)])

    first = await adapter.stub.IngestWebhook(push)
    assert (first.accepted_events, first.duplicate_events) == (2, 0)
    (update,) = await updates(nats_client, 1)
    assert update.carrier == "sandbox" and update.tracking_number == number
    assert [e.status for e in update.events] == [
        tracking_pb2.TRACKING_STATUS_PENDING,
        tracking_pb2.TRACKING_STATUS_PICKED_UP,
    ]
    assert all(e.dedupe_key for e in update.events)

    # The carrier re-sends the same push (newly signed): nothing new to publish.
    again = await adapter.stub.IngestWebhook(
        sandbox_webhook(number, [scan("LBL", 0), scan("PKP", 90)])
    )
    assert (again.accepted_events, again.duplicate_events) == (0, 2)

    # A later push with one old and one new scan publishes only the new one. It also proves the
    # relay has caught up, so a stray event from the duplicate would be in the stream by now.
    later = await adapter.stub.IngestWebhook(
        sandbox_webhook(number, [scan("PKP", 90), scan("DEP", 200)])
    )
    assert (later.accepted_events, later.duplicate_events) == (1, 1)
    published = await updates(nats_client, 2)
    assert len(published) == 2
    assert [e.carrier_status_code for e in published[1].events] == ["DEP"]


async def test_a_tampered_webhook_is_unauthenticated(
    adapter: CarrierAdapter, nats_client: NATS
) -> None:
    number = await booked_tracking_number(adapter, "shp_tamper_0001")
    push = sandbox_webhook(number, [scan("DLV", 30)])
    push.body.data = push.body.data.replace(b"DLV", b"RTS")
    with pytest.raises(grpc.aio.AioRpcError) as tampered:
        await adapter.stub.IngestWebhook(push)
    assert tampered.value.code() is grpc.StatusCode.UNAUTHENTICATED

    forged = sandbox_webhook(number, [scan("DLV", 30)], secret="not-the-shared-secret")
    with pytest.raises(grpc.aio.AioRpcError) as wrong_secret:
        await adapter.stub.IngestWebhook(forged)
    assert wrong_secret.value.code() is grpc.StatusCode.UNAUTHENTICATED

    # The forged scan was not recorded as seen: the genuine push is still accepted.
    genuine = await adapter.stub.IngestWebhook(sandbox_webhook(number, [scan("DLV", 30)]))
    assert genuine.accepted_events == 1


async def test_an_unmapped_code_raises_carrier_code_unmapped(
    adapter: CarrierAdapter, nats_client: NATS
) -> None:
    number = await booked_tracking_number(adapter, "shp_unmapped_01")
    push = sandbox_webhook(number, [scan("PKP", 10), scan("XSC", 20)])
    assert (await adapter.stub.IngestWebhook(push)).accepted_events == 2

    found = await wait_for(
        lambda: stream_messages(nats_client.jetstream(), "CARRIER", CODE_UNMAPPED),
        lambda m: len(m) >= 1,
    )
    (unmapped,) = [_decode(events.CarrierCodeUnmapped, m) for m in found]
    assert (unmapped.carrier, unmapped.tracking_number) == ("sandbox", number)
    assert unmapped.carrier_status_code == "XSC"
    (update,) = await updates(nats_client, 1)
    assert [e.status for e in update.events] == [
        tracking_pb2.TRACKING_STATUS_PICKED_UP,
        tracking_pb2.TRACKING_STATUS_UNKNOWN,
    ]

    # A re-sent push raises nothing again: the code was reported when the scan was first seen.
    repeat = await adapter.stub.IngestWebhook(
        sandbox_webhook(number, [scan("PKP", 10), scan("XSC", 20)])
    )
    assert repeat.duplicate_events == 2
    await adapter.stub.IngestWebhook(sandbox_webhook(number, [scan("DEP", 30)]))
    await updates(nats_client, 2)  # the relay has published everything committed before
    assert len(await stream_messages(nats_client.jetstream(), "CARRIER", CODE_UNMAPPED)) == 1


async def test_the_sandbox_pusher_delivers_into_the_ingest_path(
    tmp_path: Path, nats_server: NatsServer, nats_client: NATS
) -> None:
    env = carrier_env(
        f"sqlite:///{tmp_path / 'carrier_adapter.db'}",
        nats_server.url,
        SANDBOX_PUSH="direct",
        SANDBOX_PUSH_INTERVAL_SECONDS="0.1",
        # A simulated hour per real second: the label scan (two minutes in) comes at once.
        ACCOUNT_SANDBOX_TIME_SCALE="3600",
    )
    async with running_carrier_adapter(env) as service:
        number = await booked_tracking_number(service, "shp_pusher_0001")
        first = (await updates(nats_client, 1))[0]
        assert first.tracking_number == number
        assert first.events[0].carrier_status_code == "LBL"


async def test_a_return_parcel_is_tracked_like_any_parcel_to_the_warehouse(
    tmp_path: Path, nats_server: NatsServer, nats_client: NATS
) -> None:
    env = carrier_env(
        f"sqlite:///{tmp_path / 'carrier_adapter.db'}",
        nats_server.url,
        SANDBOX_PUSH="direct",
        SANDBOX_PUSH_INTERVAL_SECONDS="0.1",
        # Days of transit in about a second, every push sent twice and some held back.
        ACCOUNT_SANDBOX_TIME_SCALE="1000000",
        ACCOUNT_SANDBOX_DUPLICATE_WEBHOOK_RATE="1",
        ACCOUNT_SANDBOX_LATE_WEBHOOK_RATE="0.3",
    )
    async with running_carrier_adapter(env) as service:
        rates = await service.stub.GetRates(return_rates_request())
        booked = await service.stub.BookLabel(
            return_request("rma_track_0001", rates.rates[0].rate_id)
        )
        number = booked.label.tracking_number
        assert booked.label.is_return

        def picked_up_and_delivered(found: list[Any]) -> bool:
            # Pushes may arrive out of order (held back), so wait for both ends of the story.
            scans = [e for m in found for e in _decode(events.TrackingUpdated, m).events]
            return {"LBL", "PKP", "DLV"} <= {e.carrier_status_code for e in scans}

        found = await wait_for(
            lambda: stream_messages(nats_client.jetstream(), "CARRIER", TRACKING_UPDATED),
            picked_up_and_delivered,
        )
        published = [_decode(events.TrackingUpdated, m) for m in found]

    assert {update.tracking_number for update in published} == {number}
    scans = [e for update in published for e in update.events]
    # Duplicate pushes published nothing twice, and every push is oldest first.
    assert len({e.dedupe_key for e in scans}) == len(scans)
    for update in published:
        times = [e.occur_time.ToDatetime() for e in update.events]
        assert times == sorted(times)
    story = sorted(scans, key=lambda e: e.occur_time.ToDatetime())
    assert [e.carrier_status_code for e in story[:2]] == ["LBL", "PKP"]
    assert story[0].location.city == "Beverly Hills"  # picked up from the customer
    assert story[-1].status == tracking_pb2.TRACKING_STATUS_DELIVERED
    assert story[-1].location.city == "Atlanta"  # delivered to the warehouse
