"""FedEx connector: karrio-fedex builds and parses; only HTTP is stubbed (recorded payloads)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import parse_qs

import pytest

from services.carrier_adapter.adapters.carriers.fedex.connector import FedexConnector
from services.carrier_adapter.adapters.carriers.karrio_http import HttpResponse
from services.carrier_adapter.adapters.metrics import CarrierMetrics
from services.carrier_adapter.domain.errors import CarrierRejected, CarrierUnavailable
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
    guarded,
    json_answer,
)
from tests.carrier_adapter.stub_transport import StubTransport

BASE = "https://apis-sandbox.fedex.com"
TRACKING_NUMBER = "794698570123"
RETURN_TRACKING_NUMBER = "794612349650"


@pytest.fixture
def fedex(metrics: CarrierMetrics) -> Harness:
    return build(
        FedexConnector,
        account(
            "fedex",
            "fedex_main",
            api_key="l7xx-ship-key",
            secret_key="ship-secret-value",
            account_number="740561073",
            track_api_key="l7xx-track-key",
            track_secret_key="track-secret-value",
        ),
        metrics,
    )


@pytest.fixture
def fedex_stub(stub: StubTransport) -> StubTransport:
    return stub.route("POST", r"/oauth/token$", json_answer("fedex", "oauth_token.json"))


async def test_rate_request_and_quotes(
    fedex_stub: StubTransport,
    fedex: Harness,
    us_origin: Address,
    us_destination: Address,
    box: Parcel,
) -> None:
    fedex_stub.route("POST", r"/rate/v1/rates/quotes$", json_answer("fedex", "rate_quotes.json"))

    quotes = await fedex.connector.rate(RateRequest(us_origin, us_destination, (box,)))

    [token_call] = fedex_stub.sent("POST", "/oauth/token")
    form = parse_qs(token_call.body.decode())
    assert form == {
        "grant_type": ["client_credentials"],
        "client_id": ["l7xx-ship-key"],
        "client_secret": ["ship-secret-value"],
    }
    [rate_call] = fedex_stub.sent("POST", "/rate/v1/rates/quotes")
    assert rate_call.url == f"{BASE}/rate/v1/rates/quotes"
    assert (
        rate_call.header("authorization")
        == "Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.fedex-sandbox.stub"
    )
    sent = body_json(rate_call)
    assert sent["accountNumber"] == {"value": "740561073"}
    recipient = sent["requestedShipment"]["recipient"]["address"]
    assert (recipient["postalCode"], recipient["countryCode"]) == ("90210", "US")
    assert sent["requestedShipment"]["requestedPackageLineItems"][0]["weight"] == {
        "units": "LB",
        "value": 5.52,
    }
    assert [(q.service_code, q.service_level, q.total_charge.amount) for q in quotes] == [
        ("fedex_ground", ServiceLevel.STANDARD, Decimal("18.91")),
        ("fedex_2_day", ServiceLevel.EXPEDITED, Decimal("52.91")),
        ("fedex_priority_overnight", ServiceLevel.OVERNIGHT, Decimal("107.28")),
    ]


async def test_rate_error_is_rejected_with_fedex_code(
    fedex_stub: StubTransport,
    fedex: Harness,
    us_origin: Address,
    us_destination: Address,
    box: Parcel,
) -> None:
    fedex_stub.route("POST", r"/rate/v1/", json_answer("fedex", "error_rate.json", 400))

    with pytest.raises(CarrierRejected, match=r"SERVICE\.PACKAGECOMBINATION\.INVALID"):
        await fedex.connector.rate(RateRequest(us_origin, us_destination, (box,)))


async def test_book_label(
    fedex_stub: StubTransport,
    fedex: Harness,
    us_origin: Address,
    us_destination: Address,
    box: Parcel,
) -> None:
    fedex_stub.route("POST", r"/ship/v1/shipments$", json_answer("fedex", "ship.json"))

    label = await fedex.connector.book_label(
        LabelRequest("shp_fedex_0001", "fedex_ground", us_origin, us_destination, (box,),
                     reference="ord-77")
    )  # fmt: skip

    [ship_call] = fedex_stub.sent("POST", "/ship/v1/shipments")
    shipment = body_json(ship_call)["requestedShipment"]
    assert shipment["serviceType"] == "FEDEX_GROUND"
    assert shipment["shippingChargesPayment"]["paymentType"] == "SENDER"
    assert shipment["labelSpecification"]["imageType"] == "PDF"
    assert shipment["recipients"][0]["contact"]["personName"] == "Jane Doe"
    assert "returnShipmentDetail" not in shipment.get("shipmentSpecialServices", {})
    assert label.tracking_number == TRACKING_NUMBER
    assert label.is_return is False
    assert label.service_code == "fedex_ground"
    reader = assert_pdf(label.document)
    assert "794698570123" in reader.pages[0].extract_text()


async def test_return_label_is_a_fedex_print_return_label_from_the_customer(
    fedex_stub: StubTransport,
    fedex: Harness,
    us_origin: Address,
    us_destination: Address,
    box: Parcel,
) -> None:
    fedex_stub.route("POST", r"/ship/v1/shipments$", json_answer("fedex", "ship_return.json"))
    customer, warehouse = us_destination, us_origin

    label = await fedex.connector.book_label(
        LabelRequest("rma_fedex_0001", "fedex_ground", customer, warehouse, (box,),
                     reference="RMA-1042", is_return=True)
    )  # fmt: skip

    [ship_call] = fedex_stub.sent("POST", "/ship/v1/shipments")
    shipment = body_json(ship_call)["requestedShipment"]
    special = shipment["shipmentSpecialServices"]
    assert special["specialServiceTypes"] == ["RETURN_SHIPMENT"]
    assert special["returnShipmentDetail"] == {"returnType": "PRINT_RETURN_LABEL"}
    assert shipment["shipper"]["contact"]["personName"] == "Jane Doe"
    assert shipment["shipper"]["address"]["postalCode"] == "90210"
    assert shipment["recipients"][0]["contact"]["companyName"] == "Crossdock Inc"
    assert shipment["recipients"][0]["address"]["postalCode"] == "30301"
    # Our account pays, not the customer.
    payment = shipment["shippingChargesPayment"]
    assert payment["paymentType"] == "SENDER"
    assert payment["payor"]["responsibleParty"]["accountNumber"] == {"value": "740561073"}
    assert label.is_return is True
    assert label.tracking_number == RETURN_TRACKING_NUMBER
    assert label.carrier_shipment_id == RETURN_TRACKING_NUMBER
    reader = assert_pdf(label.document)
    assert RETURN_TRACKING_NUMBER in reader.pages[0].extract_text()


async def test_cancel(fedex_stub: StubTransport, fedex: Harness) -> None:
    fedex_stub.route("PUT", r"/ship/v1/shipments/cancel$", json_answer("fedex", "cancel.json"))

    await fedex.connector.cancel_label(CancelRequest(TRACKING_NUMBER))

    [cancel_call] = fedex_stub.sent("PUT", "/ship/v1/shipments/cancel")
    assert body_json(cancel_call)["trackingNumber"] == TRACKING_NUMBER
    assert body_json(cancel_call)["deletionControl"] == "DELETE_ALL_PACKAGES"


async def test_a_cancel_fedex_refuses_is_final_and_not_retried(
    fedex_stub: StubTransport, fedex: Harness
) -> None:
    fedex_stub.route(
        "PUT", r"/ship/v1/shipments/cancel$", json_answer("fedex", "cancel_refused.json", 400)
    )

    with pytest.raises(CarrierRejected, match=r"SHIPMENT\.CANCELLATION\.NOTALLOWED") as caught:
        await guarded(fedex).cancel_label(CancelRequest(TRACKING_NUMBER))

    assert not caught.value.retryable and not caught.value.maybe_committed
    assert len(fedex_stub.sent("PUT", "/ship/v1/shipments/cancel")) == 1


async def test_a_cancel_during_a_fedex_outage_is_retryable(
    fedex_stub: StubTransport, fedex: Harness
) -> None:
    outage = HttpResponse(503, b'{"errors": [{"code": "SERVICE.UNAVAILABLE.ERROR"}]}')
    fedex_stub.route(
        "PUT", r"/ship/v1/shipments/cancel$", outage, outage, json_answer("fedex", "cancel.json")
    )

    with pytest.raises(CarrierUnavailable) as caught:
        await fedex.connector.cancel_label(CancelRequest(TRACKING_NUMBER))
    assert caught.value.retryable and not caught.value.maybe_committed

    # Behind the guard the next outage is retried, and the cancel goes through.
    await guarded(fedex).cancel_label(CancelRequest(TRACKING_NUMBER))
    assert len(fedex_stub.sent("PUT", "/ship/v1/shipments/cancel")) == 3


async def test_track_uses_track_credentials_and_maps_exception_codes(
    fedex_stub: StubTransport, fedex: Harness, metrics: CarrierMetrics
) -> None:
    fedex_stub.route(
        "POST", r"/track/v1/trackingnumbers$", json_answer("fedex", "track_delivered.json")
    )
    # Delivered FedEx parcels make karrio ask for the signature image; FedEx may not have one.
    fedex_stub.route(
        "POST", r"/track/v1/trackingdocuments$", json_answer("fedex", "pod_unavailable.json", 404)
    )

    result = await fedex.connector.track(TRACKING_NUMBER)

    [token_call] = fedex_stub.sent("POST", "/oauth/token")
    assert parse_qs(token_call.body.decode())["client_id"] == ["l7xx-track-key"]
    [track_call] = fedex_stub.sent("POST", "/track/v1/trackingnumbers")
    assert body_json(track_call)["trackingInfo"][0]["trackingNumberInfo"] == {
        "trackingNumber": TRACKING_NUMBER
    }
    assert [(s.carrier_status_code, s.status, s.incident_reason) for s in result.scans] == [
        ("OC", TrackingStatus.PENDING, None),
        ("PU", TrackingStatus.PICKED_UP, None),
        ("IT", TrackingStatus.IN_TRANSIT, None),
        ("AR", TrackingStatus.IN_TRANSIT, None),
        ("DE", TrackingStatus.DELIVERY_FAILED, IncidentReason.RECIPIENT_ABSENT),
        ("OD", TrackingStatus.OUT_FOR_DELIVERY, None),
        ("DL", TrackingStatus.DELIVERED, None),
    ]
    exception = result.scans[4]
    assert exception.carrier_incident_code == "08"
    assert exception.description == "Customer not available or business closed"
    assert exception.occurred_at == datetime(2026, 1, 8, 0, 55, tzinfo=UTC)  # 16:55-08:00
    assert result.scans[-1].signed_by == "J.DOE"
    assert result.scans[-1].location == ScanLocation("Beverly Hills", "CA", "90210", "US")
    assert result.unmapped == ()
    assert unmapped_count(metrics, "fedex", "status") == 0


async def test_track_reports_unmapped_event_type_and_exception_code(
    fedex_stub: StubTransport, fedex: Harness, metrics: CarrierMetrics
) -> None:
    fedex_stub.route(
        "POST", r"/track/v1/trackingnumbers$", json_answer("fedex", "track_unmapped_incident.json")
    )

    result = await fedex.connector.track(TRACKING_NUMBER)

    assert [(s.carrier_status_code, s.status, s.incident_reason) for s in result.scans] == [
        ("XQ", TrackingStatus.UNKNOWN, None),
        ("DE", TrackingStatus.DELIVERY_FAILED, IncidentReason.OTHER),
    ]
    assert sorted(
        (u.kind, u.carrier_status_code, u.carrier_incident_code) for u in result.unmapped
    ) == [
        ("incident", "DE", "099"),
        ("status", "XQ", ""),
    ]
    assert unmapped_count(metrics, "fedex", "status") == 1
    assert unmapped_count(metrics, "fedex", "incident") == 1


async def test_payload_log_blanks_the_form_encoded_secrets(
    fedex_stub: StubTransport,
    fedex: Harness,
    us_origin: Address,
    us_destination: Address,
    box: Parcel,
) -> None:
    fedex_stub.route("POST", r"/rate/v1/rates/quotes$", json_answer("fedex", "rate_quotes.json"))

    await fedex.connector.rate(RateRequest(us_origin, us_destination, (box,)))

    bodies = " ".join(p.body for p in fedex.payloads.payloads())
    assert "grant_type=client_credentials" in bodies
    assert "ship-secret-value" not in bodies and "l7xx-ship-key" not in bodies


async def test_tracking_falls_back_to_shipping_credentials(stub: StubTransport) -> None:
    harness = build(
        FedexConnector,
        account("fedex", "fedex_min", api_key="l7xx-only-key", secret_key="only-secret",
                account_number="740561073"),
    )  # fmt: skip
    stub.route("POST", r"/oauth/token$", json_answer("fedex", "oauth_token.json"))
    stub.route(
        "POST", r"/track/v1/trackingnumbers$", json_answer("fedex", "track_unmapped_incident.json")
    )

    result = await harness.connector.track(TRACKING_NUMBER)

    [token_call] = stub.sent("POST", "/oauth/token")
    assert parse_qs(token_call.body.decode())["client_id"] == ["l7xx-only-key"]
    assert len(result.scans) == 2
