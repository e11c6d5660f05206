"""ListShipments narrowed to orders (order_ids), over a real gRPC server on the shipment
database (SQLite and PostgreSQL): only those orders' shipments, the other filters and paging as
without it, and the field's rules enforced."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import grpc
import pytest
from crossdock.shipment.v1 import shipment_pb2
from crossdock.shipment.v1 import shipment_service_pb2 as svc
from crossdock.shipment.v1 import shipment_service_pb2_grpc as svc_grpc

from services.kit.client import open_channel
from services.kit.clock import ManualClock
from services.kit.db import Database
from services.kit.uow import UnitsOfWork
from services.kit.values import Address
from services.shipment.adapters.store import migrate
from services.shipment.adapters.store import shipments as store
from services.shipment.domain.packing import PickedUnits
from services.shipment.domain.shipment import OrderRef, PendingPick, Shipment
from services.shipment.entrypoints.grpc import ShipmentApi
from tests.kit.server_support import serving

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PARTNER = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"
OTHER_PARTNER = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8Q"
HOME = Address(
    name="Ada", lines=("1 Rodeo Dr",), city="Beverly Hills", postal_code="90210", country_code="US"
)
DOCK = Address(
    name="DC", lines=("100 Dock Rd",), city="Atlanta", postal_code="30301", country_code="US"
)


def _id(prefix: str, n: int) -> str:
    return f"{prefix}_01JD8Q3V6F1Q2ZK9WJ7X4M5N{n:02d}"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    migrate(db_url)
    database = Database(db_url, service="shipment")
    # Shipments 1..5 of orders 1, 2, 3, 4, 2 (order 2 ships twice); order 4 is another
    # partner's; shipment 3 is cancelled.
    for n, order_n in enumerate((1, 2, 3, 4, 2), start=1):
        partner = OTHER_PARTNER if order_n == 4 else PARTNER
        order = OrderRef(_id("ord", order_n), partner, 2, HOME)
        pick = PendingPick(
            _id("pck", n), order.order_id, "EAST", (PickedUnits(1, "KETTLE", 1),), "c"
        )
        made = (
            Shipment.cancelled_pick(_id("shp", n), pick, partner, "gone", NOW)
            if n == 3
            else Shipment.create(_id("shp", n), pick, order, [], DOCK, NOW)
        )
        database.run_sync(
            lambda conn, s=made: store.insert_shipment(conn, s, label_due_at=None, now=0.0)
        )
    yield database
    database.engine.dispose()


@asynccontextmanager
async def shipment_stub(db: Database) -> AsyncIterator[svc_grpc.ShipmentServiceStub]:
    service = svc.DESCRIPTOR.services_by_name["ShipmentService"]
    api = ShipmentApi(UnitsOfWork(db), ManualClock(NOW))
    async with (
        serving(
            (svc_grpc.add_ShipmentServiceServicer_to_server, api, service), service="shipment"
        ) as server,
        open_channel(f"127.0.0.1:{server.port}", default_timeout_seconds=10) as channel,
    ):
        yield svc_grpc.ShipmentServiceStub(channel)


def _ids(answer: svc.ListShipmentsResponse) -> list[str]:
    return [shipment.shipment_id for shipment in answer.shipments]


WANTED = [_id("ord", 2), _id("ord", 3), _id("ord", 4), _id("ord", 9)]


async def test_only_the_named_orders_shipments_are_listed_and_paged(db: Database) -> None:
    async with shipment_stub(db) as stub:
        answer = await stub.ListShipments(svc.ListShipmentsRequest(order_ids=WANTED))
        # Newest first; order 9 has no shipment.
        assert _ids(answer) == [_id("shp", 5), _id("shp", 4), _id("shp", 3), _id("shp", 2)]
        assert answer.next_page_token == ""

        # The other filters still apply.
        scoped = await stub.ListShipments(
            svc.ListShipmentsRequest(order_ids=WANTED, partner_id=PARTNER)
        )
        assert _ids(scoped) == [_id("shp", 5), _id("shp", 3), _id("shp", 2)]
        cancelled = await stub.ListShipments(
            svc.ListShipmentsRequest(
                order_ids=WANTED, status=shipment_pb2.SHIPMENT_STATUS_CANCELLED
            )
        )
        assert _ids(cancelled) == [_id("shp", 3)]

        first = await stub.ListShipments(svc.ListShipmentsRequest(order_ids=WANTED, page_size=3))
        assert _ids(first) == [_id("shp", 5), _id("shp", 4), _id("shp", 3)]
        second = await stub.ListShipments(
            svc.ListShipmentsRequest(
                order_ids=WANTED, page_size=3, page_token=first.next_page_token
            )
        )
        assert _ids(second) == [_id("shp", 2)] and second.next_page_token == ""

        everything = await stub.ListShipments(svc.ListShipmentsRequest())
        assert len(everything.shipments) == 5


async def test_bad_order_ids_are_invalid_arguments(db: Database) -> None:
    async with shipment_stub(db) as stub:
        for bad in (["ord_1"], [_id("ord", 1), ""], [_id("ord", 1)] * 501):
            with pytest.raises(grpc.aio.AioRpcError) as invalid:
                await stub.ListShipments(svc.ListShipmentsRequest(order_ids=bad))
            assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "order_ids" in (invalid.value.details() or "")
        answer = await stub.ListShipments(svc.ListShipmentsRequest(order_ids=[_id("ord", 1)] * 500))
        assert _ids(answer) == [_id("shp", 1)]
