"""shipment inside the real spine: packing, rate shopping, exactly-once labels, the tracking
timeline with duplicate and out-of-order scans, and the read API.

Every other service runs for real (in-process, own database, one nats-server); carrier scans
arrive as the sandbox carrier's own signed webhooks through carrier-adapter's IngestWebhook.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from crossdock.billing.v1 import billing_service_pb2 as billing_svc
from crossdock.carrier.v1 import tracking_pb2
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as order_svc
from crossdock.shipment.v1 import shipment_pb2
from crossdock.shipment.v1 import shipment_service_pb2 as svc
from nats.aio.client import Client as NATS

from services.carrier_adapter.adapters.store.labels import (
    LabelStatus,
    StoredLabel,
    get_label_by_key,
)
from services.carrier_adapter.domain.normalize import RawScan
from services.kit.db import Database
from tests.fixtures.nats import NatsServer
from tests.fixtures.sandbox import sandbox_webhook
from tests.fixtures.spine import EAST, PARTNER, Spine, order_request, running_spine, seed_catalog
from tests.fixtures.waiting import wait_for

OTHER_PARTNER = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8Q"

ITEMS = {"KETTLE": (1.5, "40.00"), "ANVIL": (12.0, "99.00")}
STOCK = {("KETTLE", EAST): 50, ("ANVIL", EAST): 20}


def db_urls(tmp_path: Path, db_url: str) -> dict[str, str]:
    urls = {n: f"sqlite:///{tmp_path / n}.db" for n in ("inventory", "order", "carrier_adapter")}
    urls["billing"] = f"sqlite:///{tmp_path / 'billing.db'}"
    urls["shipment"] = db_url
    return urls


async def shipments_of(spine: Spine, order_id: str) -> list[shipment_pb2.Shipment]:
    answer = await spine.shipments.ListShipments(svc.ListShipmentsRequest(order_id=order_id))
    return list(answer.shipments)


async def place(spine: Spine, lines: list[tuple[str, int, str]], external_id: str) -> str:
    answer = await spine.orders.CreateOrder(order_request(external_id, lines))
    return str(answer.order.order_id)


async def shipments_once_up(spine: Spine, order_id: str) -> list[shipment_pb2.Shipment]:
    """shipments_of, or none while the shipment service is (re)starting: a restarted process
    answers UNAVAILABLE until it listens, and the client's balancer fails fast until then."""
    try:
        return await shipments_of(spine, order_id)
    except grpc.aio.AioRpcError as error:
        if error.code() is not grpc.StatusCode.UNAVAILABLE:
            raise
        return []


async def one_manifested(spine: Spine, order_id: str) -> shipment_pb2.Shipment:
    found = await wait_for(
        lambda: shipments_once_up(spine, order_id),
        lambda s: len(s) == 1 and s[0].status == shipment_pb2.SHIPMENT_STATUS_MANIFESTED,
    )
    assert [s.status for s in found] == [shipment_pb2.SHIPMENT_STATUS_MANIFESTED], found
    return found[0]


def scan(code: str, when: datetime, **fields: Any) -> RawScan:
    return RawScan(code, f"scan {code}", when, **fields)


async def test_a_heavy_pick_ships_in_two_boxes_with_the_cheapest_standard_rate(
    tmp_path: Path, db_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    urls = db_urls(tmp_path, db_url)
    async with running_spine(urls, nats_server.url, nats_client) as spine:
        await seed_catalog(spine.inventory, ITEMS, STOCK)
        order_id = await place(spine, [("ANVIL", 3, "99.00"), ("KETTLE", 2, "40.00")], "BOX-1")
        shipment = await one_manifested(spine, order_id)

        # 3 x 12 kg + 2 x 1.5 kg against a 30 kg box limit: two boxes, every unit in one.
        assert [round(p.weight.value, 3) for p in shipment.packages] == [24.0, 15.0]
        units = [
            (i.order_line_number, i.sku, i.quantity) for p in shipment.packages for i in p.items
        ]
        assert sorted(units) == [(1, "ANVIL", 1), (1, "ANVIL", 2), (2, "KETTLE", 2)]
        assert shipment.ship_from.city == "Atlanta" and shipment.ship_to.city == "Beverly Hills"
        assert shipment.partner_id == PARTNER and shipment.location_id == EAST
        # The booked rate is the cheapest sandbox service that meets STANDARD.
        rates = await spine.carrier.stub.GetRates(_rates_for(shipment), timeout=10)
        eligible = [
            r
            for r in rates.rates
            if r.service_level >= 2  # standard or faster
        ]
        cheapest = min(eligible, key=lambda r: (r.total_charge.units, r.total_charge.nanos))
        assert shipment.rate.service_code == cheapest.service_code
        assert shipment.carrier == "sandbox" and shipment.label_id.startswith("lbl_")
        assert shipment.tracking_number
        assert all(p.tracking_number for p in shipment.packages)


def _rates_for(shipment: shipment_pb2.Shipment) -> Any:
    from crossdock.carrier.v1 import carrier_pb2, carrier_service_pb2

    return carrier_service_pb2.GetRatesRequest(
        ship_from=shipment.ship_from,
        ship_to=shipment.ship_to,
        parcels=[
            carrier_pb2.Parcel(weight=p.weight, dimensions=p.dimensions) for p in shipment.packages
        ],
    )


async def test_a_label_call_that_times_out_is_retried_and_books_exactly_one_label(
    tmp_path: Path, db_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    urls = db_urls(tmp_path, db_url)
    # The sandbox takes 1.5 s to book; shipment gives each call 0.3 s.
    async with running_spine(
        urls,
        nats_server.url,
        nats_client,
        carrier={"ACCOUNT_SANDBOX_LABEL_DELAY_SECONDS": "1.5"},
        shipment={"LABEL_TIMEOUT_SECONDS": "0.3", "LABEL_MAX_ATTEMPTS": "50"},
    ) as spine:
        await seed_catalog(spine.inventory, ITEMS, STOCK)
        order_id = await place(spine, [("KETTLE", 1, "40.00")], "SLOW-1")
        shipment = await one_manifested(spine, order_id)

        calls = spine.carrier.metrics.registry
        book_calls = sum(
            sample.value
            for metric in calls.collect()
            if metric.name == "crossdock_grpc_requests"
            for sample in metric.samples
            if sample.name.endswith("_total") and sample.labels["method"].endswith("/BookLabel")
        )
        assert book_calls >= 2, "the first call should have timed out and been retried"
        assert spine.carrier.label_bookings() == 1
        assert shipment.label_id.startswith("lbl_")
        # Still one label a while later: nothing else books for this shipment.
        await asyncio.sleep(0.5)
        assert spine.carrier.label_bookings() == 1


async def test_tracking_timeline_dedupes_scans_and_milestones_never_regress(
    tmp_path: Path, db_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    urls = db_urls(tmp_path, db_url)
    # No sandbox pushes: the test is the carrier, sending its signed webhooks itself.
    async with running_spine(
        urls, nats_server.url, nats_client, carrier={"SANDBOX_PUSH": "off"}
    ) as spine:
        await seed_catalog(spine.inventory, ITEMS, STOCK)
        order_id = await place(spine, [("KETTLE", 2, "40.00")], "TRACK-1")
        shipment = await one_manifested(spine, order_id)
        number = shipment.tracking_number
        t0 = datetime.now(UTC) - timedelta(hours=30)
        pickup = scan("PKP", t0)
        transit = scan("DEP", t0 + timedelta(hours=3))
        out = scan("OFD", t0 + timedelta(hours=20))
        failed = scan("ATT", t0 + timedelta(hours=22), incident_code="NA")
        out_again = scan("OFD", t0 + timedelta(hours=27))
        delivered = scan("DLV", t0 + timedelta(hours=28), signed_by="A. LOVELACE")
        late_transit = scan("ARR", t0 + timedelta(hours=10))

        ingest = spine.carrier.stub.IngestWebhook
        await ingest(sandbox_webhook(number, [pickup, transit]))
        await ingest(sandbox_webhook(number, [pickup, transit]))  # the carrier retried
        await ingest(sandbox_webhook(number, [pickup, transit, out, failed]))

        async def status() -> int:
            got = await spine.shipments.GetShipment(
                svc.GetShipmentRequest(shipment_id=shipment.shipment_id)
            )
            return int(got.shipment.status)

        assert await wait_for(status, lambda s: s == shipment_pb2.SHIPMENT_STATUS_EXCEPTION) == (
            shipment_pb2.SHIPMENT_STATUS_EXCEPTION
        )
        order = await wait_for(
            lambda: spine.orders.GetOrder(order_svc.GetOrderRequest(order_id=order_id)),
            lambda o: o.order.status == order_pb2.ORDER_STATUS_EXCEPTION,
        )
        assert order.order.status == order_pb2.ORDER_STATUS_EXCEPTION

        await ingest(sandbox_webhook(number, [out_again, delivered]))
        assert await wait_for(status, lambda s: s == shipment_pb2.SHIPMENT_STATUS_DELIVERED) == (
            shipment_pb2.SHIPMENT_STATUS_DELIVERED
        )
        # A late in-transit scan after delivery, and the delivery sent again.
        await ingest(sandbox_webhook(number, [late_transit]))
        await ingest(sandbox_webhook(number, [delivered]))

        async def tracking() -> svc.GetTrackingResponse:
            return await spine.shipments.GetTracking(
                svc.GetTrackingRequest(shipment_id=shipment.shipment_id)
            )

        timeline = await wait_for(tracking, lambda t: len(t.events) >= 7)
        # Every distinct scan once, oldest first, the late one in its place; status unmoved.
        assert [e.carrier_status_code for e in timeline.events] == [
            "PKP",
            "DEP",
            "ARR",
            "OFD",
            "ATT",
            "OFD",
            "DLV",
        ]
        assert timeline.status == shipment_pb2.SHIPMENT_STATUS_DELIVERED
        got = await spine.shipments.GetShipment(
            svc.GetShipmentRequest(shipment_id=shipment.shipment_id)
        )
        assert got.shipment.proof_of_delivery.signed_by == "A. LOVELACE"
        assert got.shipment.last_tracking_status == tracking_pb2.TRACKING_STATUS_DELIVERED

        # Delivered → invoiced once → the order completes.
        done = await wait_for(
            lambda: spine.orders.GetOrder(order_svc.GetOrderRequest(order_id=order_id)),
            lambda o: o.order.status == order_pb2.ORDER_STATUS_COMPLETED,
        )
        assert done.order.status == order_pb2.ORDER_STATUS_COMPLETED
        invoices = await spine.billing.ListInvoices(
            billing_svc.ListInvoicesRequest(order_id=order_id)
        )
        assert [i.shipment_id for i in invoices.invoices] == [shipment.shipment_id]

        # Only milestones were published, each once.
        published = await _subjects(nats_client, shipment.shipment_id)
        assert published == [
            "crossdock.shipment.created.v1",
            "crossdock.shipment.manifested.v1",
            "crossdock.shipment.picked_up.v1",
            "crossdock.shipment.out_for_delivery.v1",
            "crossdock.shipment.delivery_exception.v1",
            "crossdock.shipment.delivered.v1",
        ]


async def _subjects(nc: NATS, shipment_id: str) -> list[str]:
    js = nc.jetstream()
    info = await js.stream_info("SHIPMENT")
    subjects = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        message = await js.get_msg("SHIPMENT", seq)
        if (message.headers or {}).get("ce-subject") == shipment_id:
            subjects.append(message.subject)
    return subjects


async def test_reads_are_scoped_to_the_partner_and_validated(
    tmp_path: Path, db_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    urls = db_urls(tmp_path, db_url)
    async with running_spine(
        urls, nats_server.url, nats_client, carrier={"SANDBOX_PUSH": "off"}
    ) as spine:
        await seed_catalog(spine.inventory, ITEMS, STOCK)
        order_id = await place(spine, [("KETTLE", 1, "40.00")], "READ-1")
        shipment = await one_manifested(spine, order_id)
        sid = shipment.shipment_id

        own = await spine.shipments.GetShipment(
            svc.GetShipmentRequest(shipment_id=sid, partner_id=PARTNER)
        )
        assert own.shipment.shipment_id == sid
        for call in (
            spine.shipments.GetShipment(
                svc.GetShipmentRequest(shipment_id=sid, partner_id=OTHER_PARTNER)
            ),
            spine.shipments.GetTracking(
                svc.GetTrackingRequest(shipment_id=sid, partner_id=OTHER_PARTNER)
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        theirs = await spine.shipments.ListShipments(
            svc.ListShipmentsRequest(partner_id=OTHER_PARTNER)
        )
        assert list(theirs.shipments) == []
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await spine.shipments.GetShipment(svc.GetShipmentRequest(shipment_id="nope"))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await spine.shipments.ListShipments(svc.ListShipmentsRequest(page_token="bad!"))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_failed_label_shows_on_the_order_and_a_retry_books_exactly_one_label(
    tmp_path: Path, db_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    urls = db_urls(tmp_path, db_url)
    # One attempt of 0.3 s against a carrier that takes 1 s: the booking fails for good.
    async with running_spine(
        urls,
        nats_server.url,
        nats_client,
        carrier={"ACCOUNT_SANDBOX_LABEL_DELAY_SECONDS": "1", "SANDBOX_PUSH": "off"},
        shipment={"LABEL_TIMEOUT_SECONDS": "0.3", "LABEL_MAX_ATTEMPTS": "1"},
    ) as spine:
        await seed_catalog(spine.inventory, ITEMS, STOCK)
        order_id = await place(spine, [("KETTLE", 1, "40.00")], "FAIL-1")
        failed = await wait_for(
            lambda: shipments_of(spine, order_id),
            lambda s: len(s) == 1 and s[0].status == shipment_pb2.SHIPMENT_STATUS_LABEL_FAILED,
        )
        assert [s.status for s in failed] == [shipment_pb2.SHIPMENT_STATUS_LABEL_FAILED]
        assert "DEADLINE_EXCEEDED" in failed[0].failure_reason
        order = await wait_for(
            lambda: spine.orders.GetOrder(order_svc.GetOrderRequest(order_id=order_id)),
            lambda o: o.order.status == order_pb2.ORDER_STATUS_EXCEPTION,
        )
        assert order.order.status == order_pb2.ORDER_STATUS_EXCEPTION
        assert "label booking failed" in order.order.exception_reason

        # The operator retries the order; the saga asks shipment to book again under the same
        # key. Each attempt still gives the carrier only 0.3 s, so an attempt succeeds once the
        # carrier has finished a booking for that key in the background (a timed-out call keeps
        # booking there) and hands it back. Under load the first call may not even have reached
        # the carrier, so the operator retries until the order moves on.
        async def order_status() -> int:
            answer = await spine.orders.GetOrder(order_svc.GetOrderRequest(order_id=order_id))
            return int(answer.order.status)

        settled = (order_pb2.ORDER_STATUS_EXCEPTION, order_pb2.ORDER_STATUS_SHIPPED)
        for _ in range(6):
            await spine.orders.RetryOrderStep(order_svc.RetryOrderStepRequest(order_id=order_id))
            status = await wait_for(order_status, lambda s: s in settled)
            if status == order_pb2.ORDER_STATUS_SHIPPED:
                break
            await asyncio.sleep(1.5)  # let a booking still running at the carrier finish
        assert status == order_pb2.ORDER_STATUS_SHIPPED
        shipment = await one_manifested(spine, order_id)
        assert shipment.shipment_id == failed[0].shipment_id and shipment.label_id
        assert spine.carrier.label_bookings() == 1

        # Retrying a shipment that is not failed changes nothing; an unknown one is NOT_FOUND.
        again = await spine.shipments.RetryLabel(
            svc.RetryLabelRequest(shipment_id=shipment.shipment_id)
        )
        assert again.shipment.status == shipment_pb2.SHIPMENT_STATUS_MANIFESTED
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await spine.shipments.RetryLabel(
                svc.RetryLabelRequest(shipment_id="shp_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P")
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_shipment_restarted_mid_booking_still_gets_exactly_one_label(
    tmp_path: Path, db_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    """shipment stops while the carrier is still booking (its lease and the booking outlive the
    process); a new shipment process on the same database books again under the same key and
    carrier-adapter hands back the one label it booked."""
    urls = db_urls(tmp_path, db_url)
    async with running_spine(
        urls,
        nats_server.url,
        nats_client,
        carrier={"ACCOUNT_SANDBOX_LABEL_DELAY_SECONDS": "1.5", "SANDBOX_PUSH": "off"},
        # A short lease so the restarted worker may take the shipment over soon.
        shipment={"LABEL_TIMEOUT_SECONDS": "5", "WORKER_LEASE_SECONDS": "1"},
        shipment_as_process=True,
    ) as spine:
        process = spine.shipment_process
        assert process is not None
        await seed_catalog(spine.inventory, ITEMS, STOCK)
        order_id = await place(spine, [("KETTLE", 1, "40.00")], "RESTART-1")
        created = await wait_for(lambda: shipments_of(spine, order_id), lambda s: len(s) == 1)
        # carrier-adapter has claimed the shipment's key (shop and book): the booking is under
        # way at the carrier.
        booking = await _carrier_booking(urls["carrier_adapter"], created[0].shipment_id)
        assert booking.status is LabelStatus.BOOKING
        after = await shipments_of(spine, order_id)
        assert [s.status for s in after] == [shipment_pb2.SHIPMENT_STATUS_CREATED]

        # kill -9 the shipment process while its BookLabel call is in flight, then start
        # another on the same database: it takes the shipment over once the lease runs out.
        process.kill()
        assert spine.carrier.label_bookings() == 0  # the carrier is still booking
        await process.start()
        shipment = await one_manifested(spine, order_id)
        assert shipment.shipment_id == created[0].shipment_id and shipment.label_id
        assert spine.carrier.label_bookings() == 1


async def _carrier_booking(carrier_db_url: str, key: str) -> StoredLabel:
    """carrier-adapter's label row for `key`, once it exists (read from its database)."""
    db = Database(carrier_db_url, service="carrier-adapter-test")
    try:
        found = await wait_for(lambda: db.run(get_label_by_key, key), lambda row: row is not None)
    finally:
        await db.close()
    assert found is not None
    return found
