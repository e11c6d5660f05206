"""MapCarrierCode end to end: the real carrier-adapter (sandbox carrier, SQLite), real NATS and
the real shipment service consuming its TrackingUpdated.

A push carrying a code the sandbox table lacks leaves the scan UNKNOWN and raises
CarrierCodeUnmapped; mapping the code publishes that scan again with the mapped status, once,
and the shipment moves on (to DELIVERED) as if the code had been known; a scan mapped late (older
than the delivery) joins the timeline and moves nothing back. Then the RPC's bad inputs, field by
field, and ListCodeMappings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
from crossdock.carrier.v1 import carrier_service_pb2 as svc
from crossdock.carrier.v1 import tracking_pb2
from crossdock.events.v1 import carrier_events_pb2 as events
from google.rpc import error_details_pb2
from nats.aio.client import Client as NATS
from sqlalchemy import select

from services.kit.db import Database
from services.kit.grpc_errors import details_of, status_from_error
from services.kit.uow import UnitOfWork
from services.kit.values import Address, Money
from services.shipment.adapters.contracts import mapper as shipment_mapper
from services.shipment.adapters.store import migrate as migrate_shipment
from services.shipment.adapters.store import shipments as shipment_store
from services.shipment.adapters.store import tables as shipment_tables
from services.shipment.app import shipments
from services.shipment.domain.model import ServiceLevel, ShipmentStatus
from services.shipment.domain.packing import Box, PickedUnits
from services.shipment.domain.shipment import Label, OrderRef, Package, PendingPick, Rate
from services.shipment.domain.shipment import Shipment as ShipmentAggregate
from tests.carrier_adapter.service_support import (
    CODE_UNMAPPED,
    TRACKING_UPDATED,
    book_request,
    rates_request,
    scan,
)
from tests.fixtures.events import stream_messages
from tests.fixtures.nats import NatsServer
from tests.fixtures.running import (
    CarrierAdapter,
    carrier_env,
    running_carrier_adapter,
    running_shipment,
)
from tests.fixtures.sandbox import sandbox_webhook
from tests.fixtures.waiting import wait_for

CODE_MAPPED = "crossdock.carrier.code_mapped.v1"
SHIPMENT_ID = "shp_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"
HOME = Address("Ada", ("1 Rodeo Dr",), "Beverly Hills", "90210", "US", region="CA")
DOCK = Address("East DC", ("100 Dock St",), "Newark", "07102", "US")
OPERATOR = "ops@example.com"


@pytest.fixture
async def adapter(
    tmp_path: Path, nats_server: NatsServer, nats_client: NATS
) -> AsyncIterator[CarrierAdapter]:
    env = carrier_env(f"sqlite:///{tmp_path / 'carrier_adapter.db'}", nats_server.url)
    async with running_carrier_adapter(env) as service:
        yield service


def map_request(code: str, status: int, **fields: Any) -> svc.MapCarrierCodeRequest:
    values: dict[str, Any] = {
        "carrier": "sandbox",
        "carrier_status_code": code,
        "status": status,
        "note": "sandbox docs: the simulator's exception scan",
        "operator": OPERATOR,
        **fields,
    }
    return svc.MapCarrierCodeRequest(**values)


async def published(nc: NATS, subject: str, kind: Any, count: int) -> list[Any]:
    """The `subject` events in the CARRIER stream, once at least `count` are there."""
    found = await wait_for(
        lambda: stream_messages(nc.jetstream(), "CARRIER", subject), lambda m: len(m) >= count
    )
    return [kind.FromString(message.data) for message in found]


def manifest(db: Database, tracking_number: str) -> Callable[[Any], None]:
    """A manifested shipment in shipment's database, its label the one carrier-adapter booked."""

    def write(conn: Any) -> None:
        uow = UnitOfWork.of(conn)
        now = datetime.now(UTC)
        units = (PickedUnits(1, "KETTLE", 1),)
        order = OrderRef("ord_1", "ptn_1", int(ServiceLevel.STANDARD), HOME)
        package = Package.of_box(f"{SHIPMENT_ID}-1", Box(units, 3.0, 30.0, 20.0, 15.0))
        pick = PendingPick("pck_1", "ord_1", "EAST", units, "corr-1")
        shipment = ShipmentAggregate.create(SHIPMENT_ID, pick, order, [package], DOCK, now)
        shipment_store.insert_shipment(
            uow.conn, shipment, label_due_at=now.timestamp(), now=now.timestamp()
        )
        quote = Money("USD", Decimal("9.80"))
        rate = Rate("rte_1", "sandbox", ServiceLevel.STANDARD, quote, "sandbox", "GROUND", "", 2)
        label = Label("lbl_1", "sandbox", tracking_number, (tracking_number,), quote, rate)
        shipments.manifest(uow, SHIPMENT_ID, label, now)

    return write


async def shipment_state(db: Database) -> tuple[ShipmentStatus, list[int]]:
    """The shipment's status and the canonical status of every scan in its timeline."""

    def read(conn: Any) -> tuple[ShipmentStatus, list[int]]:
        status = conn.execute(select(shipment_tables.shipments.c.status)).scalar_one()
        scans = conn.execute(
            select(shipment_tables.scans.c.event).order_by(shipment_tables.scans.c.occur_time)
        ).scalars()
        return ShipmentStatus(status), [
            tracking_pb2.TrackingEvent.FromString(event).status for event in scans
        ]

    return await db.run(read)


async def test_mapping_a_code_moves_the_shipment_its_scan_was_stuck_on(
    tmp_path: Path, nats_server: NatsServer, nats_client: NATS, adapter: CarrierAdapter
) -> None:
    rates = await adapter.stub.GetRates(rates_request())
    booked = await adapter.stub.BookLabel(book_request("shp_map_0001", rates.rates[0].rate_id))
    number = booked.label.tracking_number
    shipment_url = f"sqlite:///{tmp_path / 'shipment.db'}"
    migrate_shipment(shipment_url)
    shipment_db = Database(shipment_url, service="shipment", event_mapper=shipment_mapper)
    await shipment_db.run(manifest(shipment_db, number))
    carrier_target = f"127.0.0.1:{adapter.server.port}"
    async with running_shipment(shipment_url, nats_server.url, "127.0.0.1:1", carrier_target):
        # Picked up, then two codes the sandbox table lacks: XSC (the delivery, as the carrier
        # meant it) and QQQ (earlier, out for delivery).
        push = sandbox_webhook(number, [scan("PKP", 0), scan("QQQ", 100), scan("XSC", 120)])
        assert (await adapter.stub.IngestWebhook(push)).accepted_events == 3
        unmapped = await published(nats_client, CODE_UNMAPPED, events.CarrierCodeUnmapped, 2)
        assert sorted(u.carrier_status_code for u in unmapped) == ["QQQ", "XSC"]
        unknown = tracking_pb2.TRACKING_STATUS_UNKNOWN
        picked_up = (
            ShipmentStatus.PICKED_UP,
            [tracking_pb2.TRACKING_STATUS_PICKED_UP, unknown, unknown],
        )
        assert await wait_for(lambda: shipment_state(shipment_db), picked_up.__eq__)

        mapped = await adapter.stub.MapCarrierCode(
            map_request("XSC", tracking_pb2.TRACKING_STATUS_DELIVERED)
        )
        assert (mapped.created, mapped.renormalized_scans) == (True, 1)
        assert (mapped.mapping.version, mapped.mapping.operator) == (1, OPERATOR)
        assert mapped.mapping.status == tracking_pb2.TRACKING_STATUS_DELIVERED

        (_, update) = await published(nats_client, TRACKING_UPDATED, events.TrackingUpdated, 2)
        assert [(e.carrier_status_code, e.status) for e in update.events] == [
            ("XSC", tracking_pb2.TRACKING_STATUS_DELIVERED)
        ]
        (announced,) = await published(nats_client, CODE_MAPPED, events.CarrierCodeMapped, 1)
        assert (announced.carrier, announced.carrier_status_code, announced.version) == (
            "sandbox",
            "XSC",
            1,
        )
        assert announced.renormalized_scans == 1
        delivered = tracking_pb2.TRACKING_STATUS_DELIVERED
        moved = await wait_for(
            lambda: shipment_state(shipment_db), lambda s: s[0] is ShipmentStatus.DELIVERED
        )
        # The UNKNOWN scan stays in the timeline as received; the mapped one joins it.
        assert sorted(moved[1]) == sorted(
            [tracking_pb2.TRACKING_STATUS_PICKED_UP, unknown, unknown, delivered]
        )

        # Mapped again to the same status: nothing changes, nothing is published.
        repeat = await adapter.stub.MapCarrierCode(
            map_request("XSC", tracking_pb2.TRACKING_STATUS_DELIVERED, note="asked twice")
        )
        assert (repeat.created, repeat.renormalized_scans, repeat.mapping.version) == (False, 0, 1)

        # QQQ mapped late: its scan is older than the delivery, so it joins the timeline and
        # moves nothing back.
        late = await adapter.stub.MapCarrierCode(
            map_request("QQQ", tracking_pb2.TRACKING_STATUS_OUT_FOR_DELIVERY)
        )
        assert late.renormalized_scans == 1
        updates = await published(nats_client, TRACKING_UPDATED, events.TrackingUpdated, 3)
        assert [e.carrier_status_code for e in updates[2].events] == ["QQQ"]
        final = await wait_for(lambda: shipment_state(shipment_db), lambda s: len(s[1]) == 5)
        assert final[0] is ShipmentStatus.DELIVERED
        # By now the relay has published everything the repeat could have: it added nothing.
        assert len(await published(nats_client, TRACKING_UPDATED, events.TrackingUpdated, 3)) == 3
        assert len(await published(nats_client, CODE_MAPPED, events.CarrierCodeMapped, 2)) == 2

        # A later push carrying XSC is normalized with the mapping straight away.
        again = sandbox_webhook(number, [scan("XSC", 200)])
        assert (await adapter.stub.IngestWebhook(again)).accepted_events == 1
        updates = await published(nats_client, TRACKING_UPDATED, events.TrackingUpdated, 4)
        assert updates[3].events[0].status == delivered
        unmapped = await published(nats_client, CODE_UNMAPPED, events.CarrierCodeUnmapped, 2)
        assert len(unmapped) == 2
    await shipment_db.close()


def violations(error: grpc.aio.AioRpcError) -> list[str]:
    status = status_from_error(error)
    assert status is not None
    (bad_request,) = details_of(status, error_details_pb2.BadRequest)
    return [v.field for v in bad_request.field_violations]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"carrier": "UPS!"}, "carrier"),
        ({"carrier": "acme"}, "carrier"),  # well formed, but no code table
        ({"carrier_status_code": ""}, "carrier_status_code"),
        ({"carrier_status_code": " XSC"}, "carrier_status_code"),
        ({"carrier_status_code": "X\tSC"}, "carrier_status_code"),
        ({"carrier_status_code": "X" * 33}, "carrier_status_code"),
        ({"status": tracking_pb2.TRACKING_STATUS_UNSPECIFIED}, "status"),
        ({"status": tracking_pb2.TRACKING_STATUS_UNKNOWN}, "status"),
        ({"status": 99}, "status"),
        ({"note": ""}, "note"),
        ({"note": "line one\nline two"}, "note"),
        ({"note": "bell\u0085"}, "note"),
        ({"note": "n" * 501}, "note"),
        ({"operator": ""}, "operator"),
        ({"operator": "ops\x1b[31m"}, "operator"),
        ({"operator": "o" * 129}, "operator"),
    ],
)
async def test_bad_input_names_its_field_and_maps_nothing(
    adapter: CarrierAdapter, fields: dict[str, Any], field: str
) -> None:
    request = map_request("XSC", tracking_pb2.TRACKING_STATUS_DELIVERED)
    for name, value in fields.items():
        setattr(request, name, value)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await adapter.stub.MapCarrierCode(request)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert violations(refused.value) == [field]
    listed = await adapter.stub.ListCodeMappings(svc.ListCodeMappingsRequest())
    assert list(listed.mappings) == []


async def test_list_code_mappings_pages_every_version_newest_first(
    adapter: CarrierAdapter,
) -> None:
    for status in (
        tracking_pb2.TRACKING_STATUS_DELIVERED,
        tracking_pb2.TRACKING_STATUS_IN_TRANSIT,
        tracking_pb2.TRACKING_STATUS_IN_TRANSIT,  # the same again: no version
    ):
        await adapter.stub.MapCarrierCode(map_request("XSC", status))
    await adapter.stub.MapCarrierCode(
        map_request("ZZ9", tracking_pb2.TRACKING_STATUS_ON_HOLD, carrier="ups")
    )

    first = await adapter.stub.ListCodeMappings(svc.ListCodeMappingsRequest(page_size=2))
    assert [(m.carrier, m.carrier_status_code, m.version) for m in first.mappings] == [
        ("ups", "ZZ9", 1),
        ("sandbox", "XSC", 2),
    ]
    assert first.mappings[0].HasField("create_time") and first.next_page_token
    rest = await adapter.stub.ListCodeMappings(
        svc.ListCodeMappingsRequest(page_size=2, page_token=first.next_page_token)
    )
    assert [(m.carrier_status_code, m.version) for m in rest.mappings] == [("XSC", 1)]
    assert rest.next_page_token == ""
    sandbox = await adapter.stub.ListCodeMappings(svc.ListCodeMappingsRequest(carrier="sandbox"))
    assert [m.version for m in sandbox.mappings] == [2, 1]

    for request, field in (
        (svc.ListCodeMappingsRequest(carrier="acme"), "carrier"),
        (svc.ListCodeMappingsRequest(page_size=501), "page_size"),
        (svc.ListCodeMappingsRequest(page_token="not-ours"), "page_token"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await adapter.stub.ListCodeMappings(request)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert violations(refused.value) == [field]
