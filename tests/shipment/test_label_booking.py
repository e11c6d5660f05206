"""shipment's label booking against the real carrier-adapter (in-process, sandbox carrier): one
call shops and books, the label's quote is recorded at the manifest, a booking replayed after a
crash gets its first label, a quote chosen before is still booked by its id, no quote that
meets the level is LABEL_FAILED, and a label whose outcome is unknown at a carrier that does not
dedupe bookings is LABEL_FAILED at once, its exception event marked LABEL_OUTCOME_UNKNOWN.

shipment's database is real (SQLite); carrier-adapter runs with its own SQLite file and NATS.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from crossdock.carrier.v1 import carrier_pb2
from crossdock.carrier.v1 import carrier_service_pb2 as carrier_svc
from crossdock.carrier.v1 import carrier_service_pb2_grpc as carrier_grpc
from crossdock.events.v1 import shipment_events_pb2
from nats.aio.client import Client as NATS
from sqlalchemy import text

from services.carrier_adapter.adapters.carriers.karrio_http import (
    TransportTimeout,
    transport_installed,
)
from services.kit.client import open_channel
from services.kit.db import Database
from services.kit.proto_values import address_to_proto
from services.kit.uow import UnitOfWork, UnitsOfWork
from services.kit.values import Address
from services.shipment.adapters.clients import CarrierCallFailed, CarrierClient
from services.shipment.adapters.contracts import mapper, parcels_of, rate_to_domain
from services.shipment.adapters.store import migrate
from services.shipment.adapters.store import shipments as store
from services.shipment.app import intake, shipments
from services.shipment.app.booking import Booking, BookingSettings, book_label
from services.shipment.domain.model import ServiceLevel, ShipmentStatus
from services.shipment.domain.packing import ItemSpec, PickedUnits
from services.shipment.domain.shipment import OrderRef, PendingPick, Shipment
from tests.carrier_adapter.karrio_support import json_answer
from tests.carrier_adapter.stub_transport import StubTransport
from tests.fixtures.nats import NatsServer
from tests.fixtures.running import CarrierAdapter, carrier_env, running_carrier_adapter

HOME = Address("Ada", ("1 Rodeo Dr",), "Beverly Hills", "90210", "US", region="CA")
DOCK = Address("East DC", ("1 Dock Rd",), "Atlanta", "30301", "US", region="GA")
ITEMS = {"KETTLE": ItemSpec("KETTLE", 1.5, 30, 20, 20)}


@dataclass
class Rig:
    units: UnitsOfWork
    booking: Booking
    carrier: CarrierAdapter

    async def new_shipment(self, pick_id: str, *, return_id: str = "") -> Shipment:
        """A shipment packed from a pick (or a return's units), its label due and leased."""
        now = datetime.now(UTC)
        pick = PendingPick(
            pick_id, "ord_label", "EAST", (PickedUnits(1, "KETTLE", 2),), "c", return_id=return_id
        )

        def pack(uow: UnitOfWork) -> Shipment:
            intake.record_pick(uow, pick, now, lease_until=now.timestamp() + 60)
            packed = shipments.create_shipment(
                uow, pick, ITEMS, DOCK, 30.0, now, label_lease_seconds=60
            )
            return packed.shipment

        return await self.units.run(pack)

    async def stored(self, shipment_id: str) -> Shipment:
        found = await self.units.run(lambda uow: store.get_shipment(uow.conn, shipment_id))
        assert found is not None
        return found


@contextlib.asynccontextmanager
async def rig(
    sqlite_url: str, tmp_path: Path, nats_server: NatsServer, **carrier: str
) -> AsyncIterator[Rig]:
    env = carrier_env(f"sqlite:///{tmp_path / 'carrier'}.db", nats_server.url, **carrier)
    async with running_carrier_adapter(env) as carrier_adapter:
        migrate(sqlite_url)
        db = Database(sqlite_url, service="shipment", event_mapper=mapper)
        channel = open_channel(
            f"127.0.0.1:{carrier_adapter.server.port}", default_timeout_seconds=10.0
        )
        units = UnitsOfWork(db)
        booking = Booking(
            units,
            None,  # type: ignore[arg-type]  # booking a label asks inventory nothing
            CarrierClient(carrier_grpc.CarrierAdapterServiceStub(channel)),
            lambda: datetime.now(UTC),
            BookingSettings(label_timeout_seconds=10.0),
        )
        order = OrderRef("ord_label", "ptn_label", int(ServiceLevel.STANDARD), HOME)
        await units.run(lambda uow: intake.record_order(uow, order))
        try:
            yield Rig(units, booking, carrier_adapter)
        finally:
            await channel.close(None)
            await db.close()


async def test_one_call_shops_and_books_and_the_manifest_records_the_quote_booked(
    sqlite_url: str, tmp_path: Path, nats_server: NatsServer, nats_client: NATS
) -> None:
    async with rig(sqlite_url, tmp_path, nats_server) as r:
        shipment = await r.new_shipment("pck_shop")
        await book_label(r.booking, shipment)

        booked = await r.stored(shipment.shipment_id)
        assert booked.status is ShipmentStatus.MANIFESTED and booked.label_id
        assert booked.rate is not None and booked.rate.rate_id.startswith("rte_")
        assert booked.rate.service_level is ServiceLevel.STANDARD  # the cheapest that meets it
        assert booked.rate.carrier == booked.carrier == "sandbox"
        assert r.carrier.label_bookings() == 1


async def test_a_booking_replayed_after_a_crash_before_the_manifest_gets_its_first_label(
    sqlite_url: str, tmp_path: Path, nats_server: NatsServer, nats_client: NATS
) -> None:
    async with rig(sqlite_url, tmp_path, nats_server) as r:
        shipment = await r.new_shipment("pck_crash")
        # The call that booked; its answer was lost with the process (nothing stored here).
        lost = await r.booking.carriers.shop_and_book_label(shipment, (), timeout=10.0)
        assert (await r.stored(shipment.shipment_id)).status is ShipmentStatus.CREATED

        await book_label(r.booking, shipment)  # the next attempt, same key
        booked = await r.stored(shipment.shipment_id)
        assert booked.status is ShipmentStatus.MANIFESTED
        assert (booked.label_id, booked.tracking_number) == (lost.label_id, lost.tracking_number)
        assert booked.rate == lost.rate
        assert r.carrier.label_bookings() == 1


async def test_a_quote_chosen_before_booking_is_booked_by_its_rate_id(
    sqlite_url: str, tmp_path: Path, nats_server: NatsServer, nats_client: NATS
) -> None:
    """A shipment whose quote was stored before the call (as shipment did before shop and
    book) books exactly that quote, here an overnight one rather than the cheapest standard."""
    async with rig(sqlite_url, tmp_path, nats_server) as r:
        shipment = await r.new_shipment("pck_chosen")
        assert shipment.ship_from is not None and shipment.ship_to is not None
        quotes = await r.carrier.stub.GetRates(
            carrier_svc.GetRatesRequest(
                ship_from=address_to_proto(shipment.ship_from),
                ship_to=address_to_proto(shipment.ship_to),
                parcels=parcels_of(shipment),
                service_level=carrier_pb2.SERVICE_LEVEL_OVERNIGHT,
            )
        )
        overnight = rate_to_domain(quotes.rates[0])
        await r.units.run(shipments.choose_rate, shipment.shipment_id, overnight, datetime.now(UTC))

        await book_label(r.booking, await r.stored(shipment.shipment_id))
        booked = await r.stored(shipment.shipment_id)
        assert booked.status is ShipmentStatus.MANIFESTED
        assert booked.rate == overnight and overnight.service_level is ServiceLevel.OVERNIGHT
        assert r.carrier.label_bookings() == 1


async def test_no_quote_that_meets_the_level_is_label_failed_at_once(
    sqlite_url: str, tmp_path: Path, nats_server: NatsServer, nats_client: NATS
) -> None:
    # carrier-adapter's one account (USPS) books no return labels: a return parcel finds none.
    usps = {
        "CARRIER_ACCOUNTS": "usps",
        "ACCOUNT_USPS_CARRIER": "usps",
        "ACCOUNT_USPS_CLIENT_ID": "usps-client-id-test",
        "ACCOUNT_USPS_CLIENT_SECRET": "usps-client-secret",
        "ACCOUNT_USPS_TEST_MODE": "true",
    }
    # Scoped, so the service installs no HTTP transport of its own that outlives the test;
    # with no routes, any request to USPS would fail the test.
    no_http = StubTransport()
    with transport_installed(no_http, default_timeout=5.0):
        async with rig(sqlite_url, tmp_path, nats_server, **usps) as r:
            parcel = await r.new_shipment("rma_label", return_id="rma_label")
            await book_label(r.booking, parcel)
            failed = await r.stored(parcel.shipment_id)
    assert no_http.requests == []
    assert failed.status is ShipmentStatus.LABEL_FAILED
    assert (
        failed.failure_reason == "no carrier rate for a return label meets service level STANDARD"
    )
    assert failed.label_attempts == 0 and failed.rate is None


USPS = {
    "CARRIER_ACCOUNTS": "usps",
    "ACCOUNT_USPS_CARRIER": "usps",
    "ACCOUNT_USPS_CLIENT_ID": "usps-client-id-test",
    "ACCOUNT_USPS_CLIENT_SECRET": "usps-client-secret",
    "ACCOUNT_USPS_ACCOUNT_NUMBER": "1000405525",
    "ACCOUNT_USPS_CRID": "56982563",
    "ACCOUNT_USPS_MID": "904128936",
    "ACCOUNT_USPS_MANIFEST_MID": "904128937",
    "ACCOUNT_USPS_TEST_MODE": "true",
}


def published(uow: UnitOfWork, shipment_id: str) -> list[tuple[str, bytes]]:
    """(subject, payload) of the shipment's events in its outbox, in order."""
    rows = uow.conn.execute(
        text("SELECT subject, payload FROM outbox WHERE aggregate_id = :id ORDER BY seq"),
        {"id": shipment_id},
    ).all()
    return [(str(row.subject), bytes(row.payload)) for row in rows]


def usps_that_times_out_booking() -> StubTransport:
    """USPS quotes, then its label call times out after the request left (it may have booked);
    USPS takes no idempotency key, so carrier-adapter may never ask it again for that key."""
    stub = StubTransport()
    stub.route("POST", r"/oauth2/v3/token$", json_answer("usps", "oauth_token.json"))
    stub.route(
        "POST",
        r"/payments/v3/payment-authorization$",
        json_answer("usps", "payment_authorization.json"),
    )
    stub.route("POST", r"/shipments/v3/options/search$", json_answer("usps", "options_search.json"))
    stub.route("POST", r"/labels/v3/label$", TransportTimeout("read timed out"))
    return stub


async def test_a_label_whose_outcome_is_unknown_fails_at_once_marked_for_reconciliation(
    sqlite_url: str, tmp_path: Path, nats_server: NatsServer, nats_client: NATS
) -> None:
    usps = usps_that_times_out_booking()
    with transport_installed(usps, default_timeout=5.0):
        async with rig(sqlite_url, tmp_path, nats_server, **USPS) as r:
            shipment = await r.new_shipment("pck_unknown")
            # The timeout itself is transient for shipment: booked again later, same key.
            await book_label(r.booking, shipment)
            waiting = await r.stored(shipment.shipment_id)
            assert waiting.status is ShipmentStatus.CREATED and waiting.label_attempts == 1

            # carrier-adapter now refuses the key (the label may exist): no second attempt.
            try:
                await r.booking.carriers.shop_and_book_label(waiting, (), timeout=10.0)
            except CarrierCallFailed as refused:
                assert refused.outcome_unknown and refused.failed_precondition
                assert not (refused.no_rate or refused.transient)
            else:
                raise AssertionError("a key whose outcome is unknown was booked again")

            await book_label(r.booking, waiting)
            failed = await r.stored(shipment.shipment_id)
            events = await r.units.run(lambda uow: published(uow, shipment.shipment_id))
    # The carrier was asked to book once: the refusal was final, not retried.
    assert len(usps.sent("POST", "/labels/v3/label")) == 1
    assert failed.status is ShipmentStatus.LABEL_FAILED
    assert failed.label_attempts == 1  # failed on the refusal, not after more attempts
    assert failed.failure_reason.startswith("FAILED_PRECONDITION: the carrier may have booked")
    (announced,) = [
        shipment_events_pb2.ShipmentDeliveryException.FromString(payload)
        for subject, payload in events
        if subject == "crossdock.shipment.delivery_exception.v1"
    ]
    assert announced.failure_code == "LABEL_OUTCOME_UNKNOWN"
    assert announced.shipment.shipment_id == shipment.shipment_id
    assert announced.description.startswith("label booking failed: FAILED_PRECONDITION: ")
