"""PollTracking over gRPC: one parcel polled now, as the tracking poller polls it. The real
service (real NATS, SQLite) with the sandbox carrier: in-process for the scans, then as its own
HTTP server (tools/sandbox_carrier.py's app) that can be switched to answering 503, for a
carrier that is down. New scans are published once as TrackingUpdated, read back from JetStream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from crossdock.carrier.v1 import carrier_service_pb2 as svc
from crossdock.events.v1 import carrier_events_pb2 as events
from nats.aio.client import Client as NATS
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from services.carrier_adapter.adapters.carriers.sandbox.connector import (
    SandboxConnector,
    SandboxSettings,
)
from services.carrier_adapter.adapters.carriers.tables import load_service_table, load_status_table
from services.carrier_adapter.adapters.reliability.clock import SystemClock
from tests.carrier_adapter.service_support import TRACKING_UPDATED, book_request, rates_request
from tests.fixtures.asgi_server import serving
from tests.fixtures.events import stream_messages
from tests.fixtures.nats import NatsServer
from tests.fixtures.running import CarrierAdapter, carrier_env, running_carrier_adapter
from tests.fixtures.sandbox import WEBHOOK_SECRET
from tests.fixtures.waiting import wait_for
from tools.sandbox_carrier import Journal, create_app

# 600 simulated seconds a real second: the label scan (2 min after booking) is due 0.2 s after
# booking, the pickup (3 h) 18 s after, well after these tests.
TIME_SCALE = "600"


@pytest.fixture
async def adapter(
    tmp_path: Path, nats_server: NatsServer, nats_client: NATS
) -> AsyncIterator[CarrierAdapter]:
    env = carrier_env(
        f"sqlite:///{tmp_path / 'carrier_adapter.db'}",
        nats_server.url,
        ACCOUNT_SANDBOX_TIME_SCALE=TIME_SCALE,
    )
    async with running_carrier_adapter(env) as service:
        yield service


async def booked(service: CarrierAdapter, key: str) -> str:
    rates = await service.stub.GetRates(rates_request())
    answer = await service.stub.BookLabel(book_request(key, rates.rates[0].rate_id))
    return str(answer.label.tracking_number)


def poll(number: str, carrier: str = "sandbox") -> svc.PollTrackingRequest:
    return svc.PollTrackingRequest(carrier=carrier, tracking_number=number)


def polling(service: CarrierAdapter, number: str) -> Any:
    """A probe for wait_for: PollTracking of `number`."""

    async def call() -> Any:
        return await service.stub.PollTracking(poll(number))

    return call


async def published(nc: NATS, count: int) -> list[events.TrackingUpdated]:
    found = await wait_for(
        lambda: stream_messages(nc.jetstream(), "CARRIER", TRACKING_UPDATED),
        lambda m: len(m) >= count,
    )
    return [events.TrackingUpdated.FromString(message.data) for message in found]


async def test_a_poll_publishes_new_scans_once(adapter: CarrierAdapter, nats_client: NATS) -> None:
    number = await booked(adapter, "shp_pollnow_0001")
    # Polled before the label scan is due, the carrier has nothing: nothing is published.
    answer = await wait_for(polling(adapter, number), lambda a: a.new_scans > 0)
    assert (answer.new_scans, answer.duplicate_scans) == (1, 0)
    (update,) = await published(nats_client, 1)
    assert (update.carrier, update.tracking_number) == ("sandbox", number)
    assert [e.carrier_status_code for e in update.events] == ["LBL"]

    # Polled again: the same scan is a duplicate, published no more.
    again = await adapter.stub.PollTracking(poll(number))
    assert (again.new_scans, again.duplicate_scans) == (0, 1)
    # Another parcel's poll, published after it, proves the relay caught up with the duplicate.
    other = await booked(adapter, "shp_pollnow_0002")
    await wait_for(polling(adapter, other), lambda a: a.new_scans > 0)
    updates = await published(nats_client, 2)
    assert [u.tracking_number for u in updates] == [number, other]


async def test_an_unknown_tracking_number_is_not_found(adapter: CarrierAdapter) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await adapter.stub.PollTracking(poll("SBX-NEVER-BOOKED"))
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
    assert "SBX-NEVER-BOOKED" in (unknown.value.details() or "")

    # A number carrier-adapter booked, asked of another carrier: not that carrier's parcel.
    number = await booked(adapter, "shp_pollnow_0003")
    with pytest.raises(grpc.aio.AioRpcError) as other_carrier:
        await adapter.stub.PollTracking(poll(number, carrier="ups"))
    assert other_carrier.value.code() is grpc.StatusCode.NOT_FOUND


async def test_a_malformed_request_is_invalid(adapter: CarrierAdapter) -> None:
    for request in (poll("x"), poll("SBX12345", carrier="UPS!")):
        with pytest.raises(grpc.aio.AioRpcError) as malformed:
            await adapter.stub.PollTracking(request)
        assert malformed.value.code() is grpc.StatusCode.INVALID_ARGUMENT


class Outage:
    """An ASGI app that answers 503 for every request while `down`, else passes to `app`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.down = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.down and scope["type"] == "http":
            await JSONResponse({"detail": "maintenance"}, status_code=503)(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def test_a_carrier_that_is_down_is_unavailable(
    tmp_path: Path, nats_server: NatsServer, nats_client: NATS
) -> None:
    clock = SystemClock()
    sandbox = SandboxConnector(
        "sandbox",
        SandboxSettings(webhook_secrets=(WEBHOOK_SECRET,), seed=7, time_scale=float(TIME_SCALE)),
        status_table=load_status_table("sandbox"),
        service_table=load_service_table("sandbox"),
        clock=clock,
    )
    carrier = Outage(create_app(sandbox, Journal(None), clock))
    async with serving(carrier) as url:
        env = carrier_env(
            f"sqlite:///{tmp_path / 'carrier_adapter.db'}",
            nats_server.url,
            ACCOUNT_SANDBOX_ENDPOINT=url,
        )
        async with running_carrier_adapter(env) as service:
            number = await booked(service, "shp_pollnow_0004")
            carrier.down = True
            with pytest.raises(grpc.aio.AioRpcError) as down:
                await service.stub.PollTracking(poll(number))
            assert down.value.code() is grpc.StatusCode.UNAVAILABLE

            # Back up: the same poll records the scans the outage held back.
            carrier.down = False
            answer = await wait_for(polling(service, number), lambda a: a.new_scans > 0)
            assert answer.new_scans == 1
