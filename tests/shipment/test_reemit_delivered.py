"""ReemitDelivered over a real gRPC server, a real nats-server and the shipment database (SQLite
and PostgreSQL): the delivered event goes out again with its original ce-id, and anything but a
delivered outbound shipment is refused precisely."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import grpc
import pytest
from crossdock.events.v1 import shipment_events_pb2 as events_pb
from crossdock.shipment.v1 import shipment_service_pb2 as svc
from crossdock.shipment.v1 import shipment_service_pb2_grpc as svc_grpc
from nats.aio.client import Client as NATS

from services.kit import outbox
from services.kit.client import open_channel
from services.kit.clock import utc_now
from services.kit.db import Database
from services.kit.relay import OutboxRelay
from services.kit.streams import ensure_streams
from services.kit.uow import UnitOfWork, UnitsOfWork
from services.shipment.adapters.contracts import DELIVERED_SUBJECT, mapper
from services.shipment.adapters.store import migrate
from services.shipment.app.tracking import apply_tracking
from services.shipment.entrypoints.grpc import ShipmentApi
from tests.fixtures.events import stream_messages
from tests.kit.server_support import serving
from tests.kit.test_relay import FAST
from tests.shipment.test_tracking_delivery import SHIPMENT, _manifest, _updates

UNKNOWN = "shp_01JD8Q3V6F1Q2ZK9WJ7X4M5N8Q"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    migrate(db_url)
    database = Database(db_url, service="shipment", event_mapper=mapper)
    yield database
    database.engine.dispose()


def _deliver(db: Database, kind: str = "outbound") -> None:
    db.run_sync(lambda conn: _manifest(UnitOfWork.of(conn), kind))
    for update, now in _updates():
        db.run_sync(lambda conn, u=update, n=now: apply_tracking(UnitOfWork.of(conn), u, n))


@asynccontextmanager
async def shipment_stub(db: Database) -> AsyncIterator[svc_grpc.ShipmentServiceStub]:
    api = ShipmentApi(UnitsOfWork(db), utc_now)
    service = svc.DESCRIPTOR.services_by_name["ShipmentService"]
    async with (
        serving(
            (svc_grpc.add_ShipmentServiceServicer_to_server, api, service),
            service="shipment",
        ) as server,
        open_channel(f"127.0.0.1:{server.port}", default_timeout_seconds=10) as channel,
    ):
        yield svc_grpc.ShipmentServiceStub(channel)


async def test_a_delivered_shipment_reemits_its_event_under_the_same_ce_id(
    db: Database, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    await ensure_streams(js)
    _deliver(db)
    relay = OutboxRelay(db, nats_client, settings=FAST)
    assert await relay.flush(10)
    [original] = await stream_messages(js, "SHIPMENT", DELIVERED_SUBJECT)
    event_id = original.headers["ce-id"]
    # The message is lost before a consumer took it (the drift reconciliation repairs).
    await js.delete_msg("SHIPMENT", original.seq)

    async with shipment_stub(db) as stub:
        request = svc.ReemitDeliveredRequest(shipment_id=SHIPMENT, reason="no invoice found")
        answer = await stub.ReemitDelivered(request)
        assert (answer.event_id, answer.reemitted) == (event_id, True)
        # Asked again before the relay ran: already pending, nothing to do.
        again = await stub.ReemitDelivered(request)
        assert (again.event_id, again.reemitted) == (event_id, False)

    assert await relay.flush(10)
    [copy] = await stream_messages(js, "SHIPMENT", DELIVERED_SUBJECT)
    assert copy.seq > original.seq
    assert copy.headers["ce-id"] == event_id
    assert copy.headers["Nats-Msg-Id"] == f"{event_id}:reemit:1"
    assert copy.data == original.data
    assert events_pb.ShipmentDelivered.FromString(copy.data).shipment.shipment_id == SHIPMENT
    assert (await db.run(outbox.backlog))[0] == 0
    await relay.stop()


async def test_anything_but_a_delivered_outbound_shipment_is_refused(db: Database) -> None:
    db.run_sync(lambda conn: _manifest(UnitOfWork.of(conn), "outbound"))
    async with shipment_stub(db) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stub.ReemitDelivered(svc.ReemitDeliveredRequest(shipment_id=UNKNOWN))
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        assert f"shipment {UNKNOWN} not found" in (unknown.value.details() or "")

        with pytest.raises(grpc.aio.AioRpcError) as manifested:
            await stub.ReemitDelivered(svc.ReemitDeliveredRequest(shipment_id=SHIPMENT))
        assert manifested.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert manifested.value.details() == (
            f"shipment {SHIPMENT} is SHIPMENT_STATUS_MANIFESTED; only a DELIVERED shipment's "
            "delivered event can be re-emitted"
        )

        for bad in (
            svc.ReemitDeliveredRequest(shipment_id="shp_1"),
            svc.ReemitDeliveredRequest(shipment_id=SHIPMENT, reason="two\nlines"),
            svc.ReemitDeliveredRequest(shipment_id=SHIPMENT, reason="x" * 501),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as invalid:
                await stub.ReemitDelivered(bad)
            assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_delivered_return_parcel_is_refused(db: Database) -> None:
    _deliver(db, "return")
    async with shipment_stub(db) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ReemitDelivered(svc.ReemitDeliveredRequest(shipment_id=SHIPMENT))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "is a return parcel" in (refused.value.details() or "")


async def test_a_delivered_event_gone_with_the_outbox_retention_is_refused(db: Database) -> None:
    _deliver(db)
    rows = await db.run(outbox.fetch_pending, 100)
    await db.run(outbox.mark_sent, [row.seq for row in rows], 0.0)
    assert await db.run(outbox.purge_sent, 60.0) == len(rows)
    async with shipment_stub(db) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as purged:
            await stub.ReemitDelivered(svc.ReemitDeliveredRequest(shipment_id=SHIPMENT))
    assert purged.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no longer in the outbox (retention)" in (purged.value.details() or "")
