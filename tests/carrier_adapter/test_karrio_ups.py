"""UPS connector: karrio-ups builds and parses; only HTTP is stubbed (recorded UPS payloads)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.carrier_adapter.adapters.carriers.karrio_http import HttpResponse, TransportTimeout
from services.carrier_adapter.adapters.carriers.ups.connector import UpsConnector
from services.carrier_adapter.adapters.metrics import CarrierMetrics
from services.carrier_adapter.domain.errors import (
    CarrierRejected,
    CarrierTimeout,
    CarrierUnavailable,
)
from services.carrier_adapter.domain.model import (
    CancelRequest,
    IncidentReason,
    LabelRequest,
    Parcel,
    RateRequest,
    ScanLocation,
    ServiceLevel,
    TrackingStatus,
)
from services.kit.values import Address
from tests.carrier_adapter.conftest import unmapped_count
from tests.carrier_adapter.karrio_support import (
    Harness,
    account,
    assert_pdf,
    body_json,
    build,
    fresh_ups_token,
    guarded,
    json_answer,
)
from tests.carrier_adapter.stub_transport import StubTransport

BASE = "https://wwwcie.ups.com"
TOKEN = r"/security/v1/oauth/token$"
TRACKING_NUMBER = "1Z5R89390357567127"
RETURN_TRACKING_NUMBER = "1Z5R89390384201372"
SECRET = "s3cr3t-ups-client-secret"


@pytest.fixture
def ups(metrics: CarrierMetrics) -> Harness:
    return build(
        UpsConnector,
        account(
            "ups",
            "ups_east",
            client_id="UPS-CLIENT-ID-TEST",
            client_secret=SECRET,
            account_number="5R8939",
        ),
        metrics,
    )


async def test_rate_shops_every_service_and_parses_ups_quotes(
    stub: StubTransport, ups: Harness, us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    stub.route("POST", TOKEN, fresh_ups_token())
    stub.route("POST", r"/api/rating/v2409/Shop", json_answer("ups", "rate_shop.json"))

    quotes = await ups.connector.rate(RateRequest(us_origin, us_destination, (box,)))

    token_call, rate_call = stub.requests
    expected_basic = base64.b64encode(f"UPS-CLIENT-ID-TEST:{SECRET}".encode()).decode()
    assert token_call.header("authorization") == f"Basic {expected_basic}"
    assert token_call.body == b"grant_type=client_credentials"
    assert rate_call.method == "POST"
    assert rate_call.url == f"{BASE}/api/rating/v2409/Shop?additionalinfo=timeintransit"
    assert (rate_call.header("authorization") or "").startswith("Bearer eyJraWQ")
    shipment = body_json(rate_call)["RateRequest"]["Shipment"]
    assert shipment["Shipper"]["ShipperNumber"] == "5R8939"
    assert shipment["ShipTo"]["Address"]["PostalCode"] == "90210"
    assert shipment["ShipTo"]["Address"]["StateProvinceCode"] == "CA"
    package = shipment["Package"][0]
    assert package["PackageWeight"]["UnitOfMeasurement"]["Code"] == "LBS"
    assert package["PackageWeight"]["Weight"] == "5.52"  # 2.5 kg, rounded up to 0.01 lb
    assert package["Dimensions"]["UnitOfMeasurement"]["Code"] == "IN"

    assert [(q.service_code, q.service_level, q.total_charge.amount) for q in quotes] == [
        ("ups_ground", ServiceLevel.STANDARD, Decimal("17.42")),
        ("ups_2nd_day_air", ServiceLevel.EXPEDITED, Decimal("48.73")),
        ("ups_next_day_air", ServiceLevel.OVERNIGHT, Decimal("96.15")),
    ]
    assert {q.total_charge.currency_code for q in quotes} == {"USD"}
    assert [q.transit_days for q in quotes] == [4, 2, 1]
    assert {(q.carrier, q.carrier_account_id) for q in quotes} == {("ups", "ups_east")}


async def test_rate_keeps_only_the_requested_level(
    stub: StubTransport, ups: Harness, us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    stub.route("POST", TOKEN, fresh_ups_token())
    stub.route("POST", r"/api/rating/", json_answer("ups", "rate_shop.json"))

    quotes = await ups.connector.rate(
        RateRequest(us_origin, us_destination, (box,), ServiceLevel.EXPEDITED)
    )

    assert [q.service_code for q in quotes] == ["ups_2nd_day_air"]


async def test_book_label_sends_the_service_and_returns_a_pdf(
    stub: StubTransport, ups: Harness, us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    stub.route("POST", TOKEN, fresh_ups_token())
    stub.route("POST", r"/api/shipments/v2409/ship$", json_answer("ups", "ship.json"))
    request = LabelRequest(
        "shp_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P", "ups_ground", us_origin, us_destination, (box,),
        reference="ord-77",
    )  # fmt: skip

    label = await ups.connector.book_label(request)

    [ship_call] = stub.sent("POST", "/api/shipments/v2409/ship")
    shipment = body_json(ship_call)["ShipmentRequest"]["Shipment"]
    assert shipment["Service"]["Code"] == "03"
    assert shipment["Shipper"]["ShipperNumber"] == "5R8939"
    assert shipment["ShipTo"]["Name"] == "Jane Doe"
    assert shipment["ShipTo"]["Address"]["AddressLine"][0] == "2 Elm St"
    assert "ReturnService" not in shipment
    assert label.is_return is False
    assert label.tracking_number == TRACKING_NUMBER
    assert label.package_tracking_numbers == (TRACKING_NUMBER,)
    assert label.carrier_shipment_id == TRACKING_NUMBER
    assert label.idempotency_key == request.idempotency_key
    assert label.created_at == ups.clock.now()
    assert_pdf(label.document)  # UPS sends a GIF; karrio turns it into a PDF page


async def test_return_label_is_a_print_return_label_from_the_customer_to_the_warehouse(
    stub: StubTransport, ups: Harness, us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    stub.route("POST", TOKEN, fresh_ups_token())
    stub.route("POST", r"/api/shipments/v2409/ship$", json_answer("ups", "ship_return.json"))
    customer, warehouse = us_destination, us_origin
    request = LabelRequest(
        "rma_01JD9B7K2M4P6R8T0V2X4Z6A8C", "ups_ground", customer, warehouse, (box,),
        reference="RMA-1042", is_return=True,
    )  # fmt: skip

    label = await ups.connector.book_label(request)

    [ship_call] = stub.sent("POST", "/api/shipments/v2409/ship")
    shipment = body_json(ship_call)["ShipmentRequest"]["Shipment"]
    assert shipment["ReturnService"]["Code"] == "9"  # UPS Print Return Label
    assert shipment["ShipFrom"]["Name"] == "Jane Doe"
    assert shipment["ShipFrom"]["Address"]["PostalCode"] == "90210"
    assert shipment["ShipTo"]["Name"] == "Crossdock Inc"
    assert shipment["ShipTo"]["Address"]["PostalCode"] == "30301"
    # Our account pays, not the customer.
    assert shipment["Shipper"]["ShipperNumber"] == "5R8939"
    charges = shipment["PaymentInformation"]["ShipmentCharge"]
    assert {charge["BillShipper"]["AccountNumber"] for charge in charges} == {"5R8939"}
    assert shipment["Package"][0]["Description"] == "Returned merchandise"
    assert label.is_return is True
    assert label.tracking_number == RETURN_TRACKING_NUMBER
    assert label.package_tracking_numbers == (RETURN_TRACKING_NUMBER,)
    assert label.carrier_shipment_id == RETURN_TRACKING_NUMBER
    assert label.idempotency_key == request.idempotency_key
    assert_pdf(label.document)


async def test_cancel_voids_by_shipment_id(stub: StubTransport, ups: Harness) -> None:
    stub.route("POST", TOKEN, fresh_ups_token())
    stub.route("DELETE", r"/void/cancel/", json_answer("ups", "void.json"))

    await ups.connector.cancel_label(CancelRequest(TRACKING_NUMBER))

    [void_call] = stub.sent("DELETE", "/void/cancel/")
    assert void_call.url == f"{BASE}/api/shipments/v2409/void/cancel/{TRACKING_NUMBER}"


async def test_a_void_ups_refuses_is_final_and_not_retried(
    stub: StubTransport, ups: Harness
) -> None:
    stub.route("POST", TOKEN, fresh_ups_token())
    stub.route("DELETE", r"/void/cancel/", json_answer("ups", "void_refused.json", 400))

    with pytest.raises(CarrierRejected, match="190102: No shipment found") as caught:
        await guarded(ups).cancel_label(CancelRequest(TRACKING_NUMBER))

    assert not caught.value.retryable and not caught.value.maybe_committed
    assert len(stub.sent("DELETE", "/void/cancel/")) == 1


async def test_a_void_during_a_ups_outage_is_retryable(stub: StubTransport, ups: Harness) -> None:
    stub.route("POST", TOKEN, fresh_ups_token())
    outage = HttpResponse(503, b"<html>Service Unavailable</html>")
    stub.route("DELETE", r"/void/cancel/", outage, outage, json_answer("ups", "void.json"))

    with pytest.raises(CarrierUnavailable) as caught:
        await ups.connector.cancel_label(CancelRequest(TRACKING_NUMBER))
    assert caught.value.retryable and not caught.value.maybe_committed

    # Behind the guard the next outage is retried, and the void goes through.
    await guarded(ups).cancel_label(CancelRequest(TRACKING_NUMBER))
    assert len(stub.sent("DELETE", "/void/cancel/")) == 3


async def test_track_maps_every_ups_activity(
    stub: StubTransport, ups: Harness, metrics: CarrierMetrics
) -> None:
    stub.route("POST", TOKEN, fresh_ups_token())
    stub.route("GET", r"/api/track/v1/details/", json_answer("ups", "track_delivered.json"))

    result = await ups.connector.track(TRACKING_NUMBER)

    [track_call] = stub.sent("GET", "/api/track/v1/details/")
    assert track_call.url.startswith(f"{BASE}/api/track/v1/details/{TRACKING_NUMBER}?")
    assert [(s.carrier_status_code, s.status, s.incident_reason) for s in result.scans] == [
        ("MP", TrackingStatus.PENDING, None),
        ("OR", TrackingStatus.PICKED_UP, None),
        ("DP", TrackingStatus.IN_TRANSIT, None),
        ("AR", TrackingStatus.IN_TRANSIT, None),
        ("OT", TrackingStatus.OUT_FOR_DELIVERY, None),
        ("NA", TrackingStatus.DELIVERY_FAILED, IncidentReason.RECIPIENT_ABSENT),
        ("OT", TrackingStatus.OUT_FOR_DELIVERY, None),
        ("KB", TrackingStatus.DELIVERED, None),
    ]
    delivered = result.scans[-1]
    assert delivered.occurred_at == datetime(2026, 1, 8, 22, 23, tzinfo=UTC)  # from gmtTime
    assert delivered.signed_by == "MRODRIGUEZ"
    assert delivered.location == ScanLocation("Beverly Hills", "CA", "90210", "US")
    assert result.unmapped == ()
    assert len({s.dedupe_key for s in result.scans}) == len(result.scans)
    assert unmapped_count(metrics, "ups", "status") == 0


async def test_track_reports_an_unmapped_ups_code(
    stub: StubTransport, ups: Harness, metrics: CarrierMetrics
) -> None:
    stub.route("POST", TOKEN, fresh_ups_token())
    stub.route("GET", r"/api/track/v1/details/", json_answer("ups", "track_unmapped.json"))

    result = await ups.connector.track(TRACKING_NUMBER)

    assert [(s.carrier_status_code, s.status) for s in result.scans] == [
        ("OR", TrackingStatus.PICKED_UP),
        ("UJ", TrackingStatus.UNKNOWN),
    ]
    [unmapped] = result.unmapped
    assert (unmapped.carrier, unmapped.carrier_status_code) == ("ups", "UJ")
    assert unmapped.description.startswith("A mechanical failure")
    assert unmapped_count(metrics, "ups", "status") == 1


async def test_ups_error_answer_is_a_rejection(
    stub: StubTransport, ups: Harness, us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    stub.route("POST", TOKEN, fresh_ups_token())
    stub.route("POST", r"/api/rating/", json_answer("ups", "error_invalid_address.json", 400))

    with pytest.raises(CarrierRejected, match="120202") as caught:
        await ups.connector.rate(RateRequest(us_origin, us_destination, (box,)))
    assert not caught.value.retryable


@pytest.mark.parametrize(("status", "committed"), [(503, False), (429, False), (502, True)])
async def test_server_errors_are_retryable_with_commit_risk(
    stub: StubTransport,
    ups: Harness,
    us_origin: Address,
    us_destination: Address,
    box: Parcel,
    status: int,
    committed: bool,
) -> None:
    stub.route("POST", TOKEN, fresh_ups_token())
    stub.route(
        "POST", r"/api/shipments/", HttpResponse(status, b"<html>down</html>", {"Retry-After": "7"})
    )
    request = LabelRequest("shp_x1234567", "ups_ground", us_origin, us_destination, (box,))

    with pytest.raises(CarrierUnavailable) as caught:
        await ups.connector.book_label(request)

    assert caught.value.retryable
    assert caught.value.maybe_committed is committed
    assert caught.value.retry_after_seconds == 7.0
    assert any(p.is_error for p in ups.payloads.payloads())


async def test_socket_timeout_is_a_maybe_committed_timeout(
    stub: StubTransport, ups: Harness, us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    stub.route("POST", TOKEN, fresh_ups_token())
    stub.route("POST", r"/api/shipments/", TransportTimeout("read timed out"))

    with pytest.raises(CarrierTimeout) as caught:
        await ups.connector.book_label(
            LabelRequest("shp_x1234567", "ups_ground", us_origin, us_destination, (box,))
        )
    assert caught.value.retryable and caught.value.maybe_committed


async def test_token_is_fetched_once_per_account(
    stub: StubTransport, ups: Harness, us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    stub.route("POST", TOKEN, fresh_ups_token())
    stub.route("POST", r"/api/rating/", json_answer("ups", "rate_shop.json"))
    stub.route("GET", r"/api/track/v1/details/", json_answer("ups", "track_delivered.json"))

    await ups.connector.rate(RateRequest(us_origin, us_destination, (box,)))
    await ups.connector.track(TRACKING_NUMBER)

    assert len(stub.sent("POST", "/oauth/token")) == 1


async def test_payload_log_keeps_exchanges_without_credentials(
    stub: StubTransport, ups: Harness, us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    stub.route("POST", TOKEN, fresh_ups_token())
    stub.route("POST", r"/api/rating/", json_answer("ups", "rate_shop.json"))

    await ups.connector.rate(RateRequest(us_origin, us_destination, (box,)))

    records = ups.payloads.payloads()
    assert {(r.operation, r.direction.value) for r in records} >= {
        ("rate", "request"),
        ("rate", "response"),
    }
    assert all(r.carrier_account_id == "ups_east" for r in records)
    assert any("RatedShipment" in r.body for r in records)
    assert not any(SECRET in r.body or "eyJraWQ" in r.body for r in records)
