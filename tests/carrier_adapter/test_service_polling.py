"""carrier-adapter polls carriers that do not push: the real service (in-process, real NATS, SQLite
or PostgreSQL) with a UPS account whose HTTP is stubbed at the transport with recorded UPS
answers. Books a label, lets the poller run many rounds, and checks JetStream: each scan is
published once, an unmapped code is raised once, and a delivered parcel is no longer tracked.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from crossdock.carrier.v1 import tracking_pb2
from crossdock.events.v1 import carrier_events_pb2 as events
from nats.aio.client import Client as NATS
from sqlalchemy import Connection, func, select

from services.carrier_adapter.adapters.carriers.karrio_http import HttpResponse
from services.carrier_adapter.adapters.store import SERVICE
from services.carrier_adapter.adapters.store.tables import payload_log
from services.carrier_adapter.domain.payload_log import PayloadDirection
from services.kit import outbox
from services.kit.db import Database
from tests.carrier_adapter.karrio_support import fresh_ups_token, json_answer
from tests.carrier_adapter.service_support import (
    CODE_UNMAPPED,
    TRACKING_UPDATED,
    book_request,
    rates_request,
)
from tests.carrier_adapter.stub_transport import StubTransport, payload
from tests.fixtures.events import stream_messages
from tests.fixtures.nats import NatsServer
from tests.fixtures.running import CarrierAdapter, carrier_env, running_carrier_adapter
from tests.fixtures.waiting import wait_for

TRACKING_NUMBER = "1Z5R89390357567127"  # what the recorded ship.json books
TRACK = r"/api/track/v1/details/"
UPS_ACCOUNT = {
    "CARRIER_ACCOUNTS": "ups_east",
    "ACCOUNT_UPS_EAST_CARRIER": "ups",
    "ACCOUNT_UPS_EAST_CLIENT_ID": "UPS-CLIENT-ID-TEST",
    "ACCOUNT_UPS_EAST_CLIENT_SECRET": "s3cr3t-ups-client-secret",
    "ACCOUNT_UPS_EAST_ACCOUNT_NUMBER": "5R8939",
    "ACCOUNT_UPS_EAST_TEST_MODE": "true",
    # A sweep every 0.1 s, and per-status intervals of milliseconds (4 h x 1e-6): every sweep
    # polls every parcel still moving.
    "POLL_INTERVAL_SECONDS": "0.1",
    "POLL_INTERVAL_SCALE": "0.000001",
}
FIRST_HALF = ["MP", "OR", "DP", "AR"]  # the recorded journey's first four activities, oldest first
SECOND_HALF = ["OT", "NA", "OT", "KB"]


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """The service's database, for checking what it stored (the service migrates it)."""
    database = Database(db_url, service=SERVICE)
    yield database
    await database.close()


def ups_stub(stub: StubTransport, *track_answers: HttpResponse) -> None:
    stub.route("POST", r"/security/v1/oauth/token$", fresh_ups_token())
    stub.route("POST", r"/api/rating/", json_answer("ups", "rate_shop.json"))
    stub.route("POST", r"/api/shipments/v2409/ship$", json_answer("ups", "ship.json"))
    stub.route("GET", TRACK, *track_answers)


def in_transit_answer() -> HttpResponse:
    """The recorded delivered answer as UPS gave it mid-journey: its four oldest activities
    (UPS lists newest first), no delivery details yet."""
    body = json.loads(payload("ups", "track_delivered.json"))
    package = body["trackResponse"]["shipment"][0]["package"][0]
    package["activity"] = package["activity"][-4:]
    package["currentStatus"] = {"code": "005", "description": "On the Way"}
    for key in ("deliveryDate", "deliveryTime", "deliveryInformation"):
        package.pop(key, None)
    return HttpResponse(200, json.dumps(body).encode(), {"Content-Type": "application/json"})


async def book_ups_label(service: CarrierAdapter, key: str) -> str:
    rates = await service.stub.GetRates(rates_request(carriers=["ups"]))
    assert rates.rates, rates.carrier_errors
    answer = await service.stub.BookLabel(book_request(key, rates.rates[0].rate_id))
    return str(answer.label.tracking_number)


def sweeps(service: CarrierAdapter) -> float:
    value = service.metrics.registry.get_sample_value("crossdock_carrier_poll_sweeps_total")
    return value or 0.0


def polls(service: CarrierAdapter, outcome: str) -> float:
    value = service.metrics.registry.get_sample_value(
        "crossdock_carrier_polls_total", {"carrier": "ups", "outcome": outcome}
    )
    return value or 0.0


async def more_sweeps(service: CarrierAdapter, count: int) -> None:
    """Wait until the poller has completed `count` further sweeps (bounded)."""
    target = sweeps(service) + count

    async def probe() -> float:
        return sweeps(service)

    assert await wait_for(probe, lambda done: done >= target) >= target


async def published(db: Database, nc: NATS, subject: str) -> list[Any]:
    """Every event of `subject` in JetStream, once the relay has published all committed ones."""

    async def pending() -> int:
        return (await db.run(outbox.backlog))[0]

    assert await wait_for(pending, lambda count: count == 0) == 0
    return await stream_messages(nc.jetstream(), "CARRIER", subject)


def decode(kind: Any, message: Any) -> Any:
    event = kind()
    event.ParseFromString(message.data)
    return event


async def test_polled_scans_are_published_once_and_delivered_parcels_are_left_alone(
    db_url: str, db: Database, stub: StubTransport, nats_server: NatsServer, nats_client: NATS
) -> None:
    transit, delivered = in_transit_answer(), json_answer("ups", "track_delivered.json")
    ups_stub(stub, transit, transit, transit, delivered)  # the last answer repeats

    async with running_carrier_adapter(
        carrier_env(db_url, nats_server.url, **UPS_ACCOUNT)
    ) as service:
        assert await book_ups_label(service, "shp_poll_0000001") == TRACKING_NUMBER

        async def delivered_polls() -> float:
            return polls(service, "news")

        # Two polls brought news (the first transit answer, then the delivery); the two transit
        # answers between them repeated scans already published.
        assert await wait_for(delivered_polls, lambda count: count >= 2) == 2
        track_calls = len(stub.sent("GET", TRACK))
        assert track_calls == 4
        assert polls(service, "no_news") == 2

        # Delivered is terminal: however many more sweeps run, UPS is not asked again.
        await more_sweeps(service, 5)
        assert len(stub.sent("GET", TRACK)) == track_calls
        updates = [
            decode(events.TrackingUpdated, m)
            for m in await published(db, nats_client, TRACKING_UPDATED)
        ]

    assert len(updates) == 2
    assert {(u.carrier, u.tracking_number) for u in updates} == {("ups", TRACKING_NUMBER)}
    assert [e.carrier_status_code for e in updates[0].events] == FIRST_HALF
    assert [e.status for e in updates[0].events] == [
        tracking_pb2.TRACKING_STATUS_PENDING,
        tracking_pb2.TRACKING_STATUS_PICKED_UP,
        tracking_pb2.TRACKING_STATUS_IN_TRANSIT,
        tracking_pb2.TRACKING_STATUS_IN_TRANSIT,
    ]
    assert [e.carrier_status_code for e in updates[1].events] == SECOND_HALF
    assert [e.status for e in updates[1].events] == [
        tracking_pb2.TRACKING_STATUS_OUT_FOR_DELIVERY,
        tracking_pb2.TRACKING_STATUS_DELIVERY_FAILED,
        tracking_pb2.TRACKING_STATUS_OUT_FOR_DELIVERY,
        tracking_pb2.TRACKING_STATUS_DELIVERED,
    ]
    keys = [e.dedupe_key for u in updates for e in u.events]
    assert len(set(keys)) == len(keys) == 8
    # Each poll's raw UPS answer went to the payload log, like every other carrier exchange.
    assert await db.run(track_responses_logged, TRACKING_NUMBER) == track_calls


def track_responses_logged(conn: Connection, tracking_number: str) -> int:
    query = select(func.count()).where(
        payload_log.c.operation == "track",
        payload_log.c.direction == PayloadDirection.RESPONSE.value,
        payload_log.c.reference == tracking_number,
    )
    return int(conn.execute(query).scalar_one())


async def test_an_unmapped_code_from_a_poll_is_raised_once(
    tmp_path: Path, stub: StubTransport, nats_server: NatsServer, nats_client: NATS
) -> None:
    db_url = f"sqlite:///{tmp_path / 'carrier_adapter.db'}"
    ups_stub(stub, json_answer("ups", "track_unmapped.json"))
    db = Database(db_url, service=SERVICE)
    try:
        async with running_carrier_adapter(
            carrier_env(db_url, nats_server.url, **UPS_ACCOUNT)
        ) as service:
            await book_ups_label(service, "shp_poll_unmapped")

            # UNKNOWN is not terminal: the parcel keeps being polled, and re-polled scans are
            # duplicates that raise nothing again.
            async def track_calls() -> int:
                return len(stub.sent("GET", TRACK))

            assert await wait_for(track_calls, lambda count: count >= 4) >= 4
            unmapped = await published(db, nats_client, CODE_UNMAPPED)
            updates = await published(db, nats_client, TRACKING_UPDATED)
    finally:
        await db.close()

    (code,) = [decode(events.CarrierCodeUnmapped, m) for m in unmapped]
    assert (code.carrier, code.tracking_number, code.carrier_status_code) == (
        "ups",
        TRACKING_NUMBER,
        "UJ",
    )
    (update,) = [decode(events.TrackingUpdated, m) for m in updates]
    assert [(e.carrier_status_code, e.status) for e in update.events] == [
        ("OR", tracking_pb2.TRACKING_STATUS_PICKED_UP),
        ("UJ", tracking_pb2.TRACKING_STATUS_UNKNOWN),
    ]
