"""Return parcels (RMA) inside the real spine: an authorized return becomes one return parcel,
booked exactly once as a return label, tracked on the same path as outbound shipments, and
announced only under its own subjects, so order, billing and inventory never take it for goods
leaving (no second invoice, no moved line figures, no status change). The warehouse simulator
receives it once delivered, and the return ends CREDITED.

Every service runs for real (in-process, own database, one nats-server); carrier scans arrive
as the sandbox carrier's signed webhooks through carrier-adapter's IngestWebhook.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
from crossdock.billing.v1 import billing_service_pb2 as billing_svc
from crossdock.carrier.v1 import carrier_pb2
from crossdock.carrier.v1 import carrier_service_pb2 as carrier_svc
from crossdock.common.v1 import common_pb2
from crossdock.events.v1 import order_events_pb2, return_events_pb2
from crossdock.inventory.v1 import inventory_service_pb2 as inv_svc
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as order_svc
from crossdock.shipment.v1 import shipment_pb2
from crossdock.shipment.v1 import shipment_service_pb2 as svc
from nats.aio.client import Client as NATS

from services.kit.catalog import OBSERVERS, load_catalog
from services.kit.ids import resource_id
from services.kit.values import to_decimal
from tests.fixtures.events import publish_as_relay, stream_messages
from tests.fixtures.nats import NatsServer
from tests.fixtures.running import (
    carrier_env,
    running_carrier_adapter,
    running_inventory,
    running_shipment,
)
from tests.fixtures.sandbox import sandbox_webhook
from tests.fixtures.spine import EAST, PARTNER, Spine, running_spine, seed_catalog
from tests.fixtures.waiting import wait_for
from tests.shipment.test_service_shipment import ITEMS, STOCK, db_urls, one_manifested, place, scan

RETURN_SUBJECTS = {
    "crossdock.shipment.return_parcel_manifested.v1",
    "crossdock.shipment.return_parcel_picked_up.v1",
    "crossdock.shipment.return_parcel_delivered.v1",
    "crossdock.shipment.return_parcel_exception.v1",
}


def test_only_the_gateway_subscribes_to_return_parcel_milestones() -> None:
    """Order, billing and inventory consume outbound milestones as goods leaving; they must
    never receive a return parcel's (the catalog is what NATS permissions are built from). The
    control tower observes every event, read-only."""
    catalog = {event.subject: event for event in load_catalog()}
    assert set(catalog) >= RETURN_SUBJECTS
    for subject in RETURN_SUBJECTS:
        consumers = set(catalog[subject].consumers) - set(OBSERVERS)
        assert consumers == {"gateway"}, subject
        assert catalog[subject].milestone and catalog[subject].producer == "shipment"
    assert "shipment" in catalog["crossdock.return.authorized.v1"].consumers


async def parcels_of(spine: Spine, order_id: str) -> list[shipment_pb2.Shipment]:
    answer = await spine.shipments.ListShipments(
        svc.ListShipmentsRequest(order_id=order_id, kind=shipment_pb2.SHIPMENT_KIND_RETURN)
    )
    return list(answer.shipments)


async def get_order(spine: Spine, order_id: str) -> order_pb2.Order:
    return (await spine.orders.GetOrder(order_svc.GetOrderRequest(order_id=order_id))).order


async def subjects_of(nc: NATS, shipment_id: str) -> list[str]:
    messages = await stream_messages(nc.jetstream(), "SHIPMENT")
    return [m.subject for m in messages if (m.headers or {}).get("ce-subject") == shipment_id]


async def sellable(spine: Spine, sku: str, location_id: str) -> int:
    answer = await spine.inventory.ListPositions(
        inv_svc.ListPositionsRequest(sku=sku, location_id=location_id)
    )
    return sum(p.quantity_on_hand for p in answer.positions)


async def delivered(spine: Spine, number: str, signed_by: str = "A. LOVELACE") -> None:
    """The carrier picks the parcel up and delivers it (scans a day and an hour ago)."""
    t0 = datetime.now(UTC) - timedelta(days=1)
    await spine.carrier.stub.IngestWebhook(
        sandbox_webhook(
            number,
            [scan("PKP", t0), scan("DLV", t0 + timedelta(hours=23), signed_by=signed_by)],
        )
    )


def return_request(order_id: str, *lines: tuple[int, int], key: str) -> Any:
    return order_svc.CreateReturnRequest(
        order_id=order_id,
        partner_id=PARTNER,
        idempotency_key=key,
        order_return=order_svc.ReturnInput(
            lines=[
                order_svc.ReturnLineInput(
                    order_line_number=number,
                    quantity=quantity,
                    disposition=order_pb2.RETURN_DISPOSITION_RESTOCK,
                    reason="DAMAGED",
                )
                for number, quantity in lines
            ]
        ),
    )


def money(value: common_pb2.Money) -> Decimal:
    return to_decimal(value.units, value.nanos)


async def test_a_return_parcel_is_booked_once_tracked_and_never_taken_for_outbound_goods(
    tmp_path: Path, db_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    urls = db_urls(tmp_path, db_url)
    async with running_spine(
        urls, nats_server.url, nats_client, carrier={"SANDBOX_PUSH": "off"}
    ) as spine:
        await seed_catalog(spine.inventory, ITEMS, STOCK)
        order_id = await place(spine, [("KETTLE", 3, "40.00"), ("ANVIL", 1, "99.00")], "RMA-1")
        outbound = await one_manifested(spine, order_id)
        await delivered(spine, outbound.tracking_number)
        completed = await wait_for(
            lambda: get_order(spine, order_id),
            lambda o: o.status == order_pb2.ORDER_STATUS_COMPLETED,
        )
        assert completed.status == order_pb2.ORDER_STATUS_COMPLETED
        kettles_before = await sellable(spine, "KETTLE", EAST)

        created = await spine.orders.CreateReturn(return_request(order_id, (1, 2), key="rma-1"))
        return_id = created.order_return.return_id
        parcels = await wait_for(
            lambda: parcels_of(spine, order_id),
            lambda p: len(p) == 1 and p[0].status == shipment_pb2.SHIPMENT_STATUS_MANIFESTED,
        )
        assert [p.status for p in parcels] == [shipment_pb2.SHIPMENT_STATUS_MANIFESTED]
        parcel = parcels[0]

        # The parcel: the returned units, from the customer back to the return warehouse.
        assert parcel.kind == shipment_pb2.SHIPMENT_KIND_RETURN
        assert (parcel.return_id, parcel.pick_id, parcel.location_id) == (return_id, "", EAST)
        assert parcel.ship_from == outbound.ship_to and parcel.ship_to == outbound.ship_from
        units = [(i.order_line_number, i.sku, i.quantity) for p in parcel.packages for i in p.items]
        assert units == [(1, "KETTLE", 2)]
        assert parcel.service_level == carrier_pb2.SERVICE_LEVEL_STANDARD
        assert parcel.tracking_number and parcel.tracking_number != outbound.tracking_number
        # Listed with the order's shipments, and found by its return.
        both = await spine.shipments.ListShipments(svc.ListShipmentsRequest(order_id=order_id))
        assert [s.shipment_id for s in both.shipments] == [
            parcel.shipment_id,
            outbound.shipment_id,
        ]
        assert [s.kind for s in both.shipments] == [
            shipment_pb2.SHIPMENT_KIND_RETURN,
            shipment_pb2.SHIPMENT_KIND_OUTBOUND,
        ]
        by_return = await spine.shipments.ListShipments(
            svc.ListShipmentsRequest(return_id=return_id)
        )
        assert [s.shipment_id for s in by_return.shipments] == [parcel.shipment_id]
        outbound_only = await spine.shipments.ListShipments(
            svc.ListShipmentsRequest(order_id=order_id, kind=shipment_pb2.SHIPMENT_KIND_OUTBOUND)
        )
        assert [s.shipment_id for s in outbound_only.shipments] == [outbound.shipment_id]

        # Exactly one label, a return label, under the parcel's id: asking again replays it,
        # asking for an outbound label under that key is refused.
        assert spine.carrier.label_bookings() == 2  # the outbound label and this one
        booking = carrier_svc.BookLabelRequest(
            idempotency_key=parcel.shipment_id,
            rate_id=parcel.rate.rate_id,
            ship_from=parcel.ship_from,
            ship_to=parcel.ship_to,
            parcels=[
                carrier_pb2.Parcel(weight=p.weight, dimensions=p.dimensions)
                for p in parcel.packages
            ],
            label_format=carrier_pb2.LABEL_FORMAT_PDF,
            is_return=True,
        )
        replay = await spine.carrier.stub.BookLabel(booking)
        assert replay.replayed and replay.label.is_return
        assert replay.label.label_id == parcel.label_id
        booking.is_return = False
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await spine.carrier.stub.BookLabel(booking)
        assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert spine.carrier.label_bookings() == 2

        # Scans: duplicates dropped, a late one kept in the timeline without moving the status,
        # out for delivery kept internal, an exception then the delivery at the warehouse.
        number = parcel.tracking_number
        t0 = datetime.now(UTC) - timedelta(hours=30)
        pickup, transit = scan("PKP", t0), scan("DEP", t0 + timedelta(hours=3))
        out = scan("OFD", t0 + timedelta(hours=20))
        failed = scan("ATT", t0 + timedelta(hours=22), incident_code="NA")
        dock = scan("DLV", t0 + timedelta(hours=28), signed_by="DOCK 4")
        late = scan("ARR", t0 + timedelta(hours=10))
        ingest = spine.carrier.stub.IngestWebhook
        await ingest(sandbox_webhook(number, [pickup, transit]))
        await ingest(sandbox_webhook(number, [pickup, transit]))  # the carrier retried
        await ingest(sandbox_webhook(number, [pickup, transit, out, failed]))

        async def status() -> int:
            got = await spine.shipments.GetShipment(
                svc.GetShipmentRequest(shipment_id=parcel.shipment_id)
            )
            return int(got.shipment.status)

        excepted = shipment_pb2.SHIPMENT_STATUS_EXCEPTION
        assert await wait_for(status, lambda s: s == excepted) == excepted
        await ingest(sandbox_webhook(number, [dock]))
        done = shipment_pb2.SHIPMENT_STATUS_DELIVERED
        assert await wait_for(status, lambda s: s == done) == done
        await ingest(sandbox_webhook(number, [late, dock]))
        timeline = await wait_for(
            lambda: spine.shipments.GetTracking(
                svc.GetTrackingRequest(shipment_id=parcel.shipment_id)
            ),
            lambda t: len(t.events) >= 6,
        )
        codes = [e.carrier_status_code for e in timeline.events]
        assert codes == ["PKP", "DEP", "ARR", "OFD", "ATT", "DLV"]
        assert timeline.status == done

        # The warehouse receives the parcel; order and billing settle the return.
        credited = await wait_for(
            lambda: spine.orders.GetReturn(order_svc.GetReturnRequest(return_id=return_id)),
            lambda r: r.order_return.status == order_pb2.RETURN_STATUS_CREDITED,
        )
        assert credited.order_return.status == order_pb2.RETURN_STATUS_CREDITED
        assert [line.quantity_received for line in credited.order_return.lines] == [2]
        assert len(spine.simulator.received) == 1
        assert await sellable(spine, "KETTLE", EAST) == kettles_before + 2

        # Never re-invoiced: one invoice, the outbound shipment's; one credit note, 2 x 40.00.
        invoices = await spine.billing.ListInvoices(
            billing_svc.ListInvoicesRequest(order_id=order_id)
        )
        assert [i.shipment_id for i in invoices.invoices] == [outbound.shipment_id]
        notes = await spine.billing.ListCreditNotes(
            billing_svc.ListCreditNotesRequest(order_id=order_id)
        )
        assert [(n.return_id, money(n.total)) for n in notes.credit_notes] == [
            (return_id, Decimal("80.00"))
        ]
        # The order's status and line figures are as delivery left them; only the units the
        # warehouse received back count as returned.
        after = await get_order(spine, order_id)
        assert after.status == order_pb2.ORDER_STATUS_COMPLETED
        expected = [order_pb2.OrderLine() for _ in completed.lines]
        for line, before in zip(expected, completed.lines, strict=True):
            line.CopyFrom(before)
        expected[0].quantity_returned = 2
        assert list(after.lines) == expected
        timeline_of_order = await spine.orders.GetOrderTimeline(
            order_svc.GetOrderTimelineRequest(order_id=order_id)
        )
        assert parcel.shipment_id not in str(timeline_of_order)

        # Only the parcel's own milestones were published, each once; none an outbound one.
        assert await subjects_of(nats_client, parcel.shipment_id) == [
            "crossdock.shipment.return_parcel_manifested.v1",
            "crossdock.shipment.return_parcel_picked_up.v1",
            "crossdock.shipment.return_parcel_exception.v1",
            "crossdock.shipment.return_parcel_delivered.v1",
        ]


async def test_a_return_before_its_order_waits_and_makes_one_parcel_however_often_sent(
    tmp_path: Path, db_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    """ReturnAuthorized overtakes OrderPlaced on its way to shipment: NAKed until the order is
    known, then one parcel; the same return again (another event id) changes nothing."""
    js = nats_client.jetstream()
    async with (
        running_inventory(
            f"sqlite:///{tmp_path / 'inventory'}.db", nats_server.url, nats_client
        ) as inventory,
        running_carrier_adapter(
            carrier_env(f"sqlite:///{tmp_path / 'carrier'}.db", nats_server.url)
        ) as carrier,
        running_shipment(
            db_url,
            nats_server.url,
            f"127.0.0.1:{inventory.server.port}",
            f"127.0.0.1:{carrier.server.port}",
        ) as shipment,
    ):
        await seed_catalog(inventory.stub, ITEMS, STOCK)
        order_id, return_id = resource_id("ord"), resource_id("rma")
        authorized = return_events_pb2.ReturnAuthorized(
            order_return=order_pb2.Return(
                return_id=return_id,
                order_id=order_id,
                partner_id=PARTNER,
                status=order_pb2.RETURN_STATUS_AUTHORIZED,
                return_location_id=EAST,
                lines=[
                    order_pb2.ReturnLine(order_line_number=2, sku="ANVIL", quantity_authorized=3),
                    order_pb2.ReturnLine(order_line_number=1, sku="KETTLE", quantity_authorized=1),
                ],
            )
        )
        await publish_as_relay(js, authorized, return_id)

        async def parcels() -> list[shipment_pb2.Shipment]:
            answer = await shipment.stub.ListShipments(
                svc.ListShipmentsRequest(return_id=return_id)
            )
            return list(answer.shipments)

        await asyncio.sleep(1.0)  # redelivered meanwhile, and still waiting for its order
        assert await parcels() == []

        ship_to = common_pb2.Address(
            name="Ada Lovelace",
            lines=["1 Rodeo Dr"],
            city="Beverly Hills",
            region="CA",
            postal_code="90210",
            country_code="US",
        )
        placed = order_events_pb2.OrderPlaced(
            order=order_pb2.Order(
                order_id=order_id,
                partner_id=PARTNER,
                ship_to=ship_to,
                service_level=carrier_pb2.SERVICE_LEVEL_OVERNIGHT,
            )
        )
        await publish_as_relay(js, placed, order_id)
        booked = await wait_for(
            parcels,
            lambda p: len(p) == 1 and p[0].status == shipment_pb2.SHIPMENT_STATUS_MANIFESTED,
        )
        assert [p.status for p in booked] == [shipment_pb2.SHIPMENT_STATUS_MANIFESTED]
        parcel = booked[0]
        assert parcel.ship_from == ship_to and parcel.ship_to.city == "Atlanta"
        # Returns book at the return level, not the order's overnight.
        assert parcel.service_level == carrier_pb2.SERVICE_LEVEL_STANDARD
        # 3 x 12 kg + 1 x 1.5 kg against a 30 kg box: two boxes, every returned unit in one.
        units = sorted(
            (i.order_line_number, i.sku, i.quantity) for p in parcel.packages for i in p.items
        )
        assert units == [(1, "KETTLE", 1), (2, "ANVIL", 1), (2, "ANVIL", 2)]

        await publish_as_relay(js, authorized, return_id)  # re-emitted: another event id
        await asyncio.sleep(1.0)
        assert [p.shipment_id for p in await parcels()] == [parcel.shipment_id]
        assert carrier.label_bookings() == 1
