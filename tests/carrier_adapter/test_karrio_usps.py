"""USPS connector: karrio-usps builds and parses; only HTTP is stubbed (recorded payloads)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.carrier_adapter.adapters.carriers.karrio_http import HttpResponse
from services.carrier_adapter.adapters.carriers.usps.connector import UspsConnector
from services.carrier_adapter.adapters.metrics import CarrierMetrics
from services.carrier_adapter.domain.errors import (
    CarrierRejected,
    CarrierUnavailable,
    UnsupportedOperation,
)
from services.carrier_adapter.domain.model import (
    CancelRequest,
    LabelRequest,
    Parcel,
    RateRequest,
    ScanLocation,
    ServiceLevel,
    TrackingStatus,
)
from services.kit.errors import ErrorCode
from services.kit.values import Address
from tests.carrier_adapter.karrio_support import (
    Harness,
    account,
    assert_pdf,
    body_json,
    build,
    guarded,
    json_answer,
)
from tests.carrier_adapter.stub_transport import StubTransport, payload

BASE = "https://apis-tem.usps.com"
TRACKING_NUMBER = "9205590164917312751089"
PAYMENT_TOKEN = "usps-payment-authorization-token-stub"


@pytest.fixture
def usps(metrics: CarrierMetrics) -> Harness:
    return build(
        UspsConnector,
        account(
            "usps",
            "usps",
            client_id="usps-client-id-test",
            client_secret="usps-client-secret",
            account_number="1000405525",
            crid="56982563",
            mid="904128936",
            manifest_mid="904128937",
        ),
        metrics,
    )


@pytest.fixture
def usps_stub(stub: StubTransport) -> StubTransport:
    stub.route("POST", r"/oauth2/v3/token$", json_answer("usps", "oauth_token.json"))
    stub.route(
        "POST",
        r"/payments/v3/payment-authorization$",
        json_answer("usps", "payment_authorization.json"),
    )
    return stub


async def test_rate_searches_options_and_parses_prices(
    usps_stub: StubTransport,
    usps: Harness,
    us_origin: Address,
    us_destination: Address,
    box: Parcel,
) -> None:
    usps_stub.route(
        "POST", r"/shipments/v3/options/search$", json_answer("usps", "options_search.json")
    )

    quotes = await usps.connector.rate(RateRequest(us_origin, us_destination, (box,)))

    [search] = usps_stub.sent("POST", "/shipments/v3/options/search")
    assert search.url == f"{BASE}/shipments/v3/options/search"
    assert search.header("authorization") == "Bearer usps-sandbox-access-token-stub"
    sent = body_json(search)
    assert (sent["originZIPCode"], sent["destinationZIPCode"]) == ("30301", "90210")
    assert sent["packageDescription"]["weight"] == 5.52
    assert sent["pricingOptions"][0]["paymentAccount"]["accountNumber"] == "1000405525"
    assert [
        (q.service_code, q.service_level, q.total_charge.amount, q.transit_days) for q in quotes
    ] == [
        ("usps_ground_advantage", ServiceLevel.STANDARD, Decimal("11.38"), 5),
        ("usps_priority_mail", ServiceLevel.EXPEDITED, Decimal("19.77"), 2),
        ("usps_priority_mail_express", ServiceLevel.OVERNIGHT, Decimal("78.05"), 1),
    ]


async def test_book_label_pays_with_the_payment_token_and_reads_the_multipart_answer(
    usps_stub: StubTransport,
    usps: Harness,
    us_origin: Address,
    us_destination: Address,
    box: Parcel,
) -> None:
    usps_stub.route(
        "POST",
        r"/labels/v3/label$",
        HttpResponse(
            200,
            payload("usps", "label_multipart.txt"),
            {"Content-Type": "multipart/form-data; boundary=usps-label-boundary-7f3a"},
        ),
    )

    label = await usps.connector.book_label(
        LabelRequest("shp_usps_0001", "usps_ground_advantage", us_origin, us_destination, (box,),
                     reference="ord-77")
    )  # fmt: skip

    [payment] = usps_stub.sent("POST", "/payments/v3/payment-authorization")
    roles = {role["roleName"]: role for role in body_json(payment)["roles"]}
    assert roles["PAYER"]["CRID"] == "56982563" and roles["LABEL_OWNER"]["MID"] == "904128936"
    [label_call] = usps_stub.sent("POST", "/labels/v3/label")
    assert label_call.header("x-payment-authorization-token") == PAYMENT_TOKEN
    sent = body_json(label_call)
    assert sent["packageDescription"]["mailClass"] == "USPS_GROUND_ADVANTAGE"
    assert sent["toAddress"]["ZIPCode"] == "90210"
    assert sent["imageInfo"]["imageType"] == "PDF"
    assert sent["imageInfo"].get("returnLabel") is None
    assert label.tracking_number == TRACKING_NUMBER
    assert label.quoted_charge is not None and label.quoted_charge.amount == Decimal("11.38")
    assert_pdf(label.document)


async def test_return_labels_are_refused_and_nothing_is_sent(
    stub: StubTransport, usps: Harness, us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    assert usps.connector.capabilities.return_label is False
    customer, warehouse = us_destination, us_origin

    with pytest.raises(UnsupportedOperation, match="usps does not support return labels") as caught:
        await usps.connector.book_label(
            LabelRequest("rma_usps_0001", "usps_ground_advantage", customer, warehouse, (box,),
                         is_return=True)
        )  # fmt: skip

    assert caught.value.code is ErrorCode.FAILED_PRECONDITION
    assert caught.value.reason == "CARRIER_OPERATION_UNSUPPORTED"
    assert not caught.value.retryable
    assert stub.requests == []


async def test_cancel_deletes_the_label(usps_stub: StubTransport, usps: Harness) -> None:
    usps_stub.route("DELETE", r"/labels/v3/label/", json_answer("usps", "label_cancel.json"))

    await usps.connector.cancel_label(CancelRequest(TRACKING_NUMBER))

    [delete] = usps_stub.sent("DELETE", "/labels/v3/label/")
    assert delete.url == f"{BASE}/labels/v3/label/{TRACKING_NUMBER}"
    assert delete.header("x-payment-authorization-token") == PAYMENT_TOKEN


async def test_a_cancel_usps_refuses_is_final_and_not_retried(
    usps_stub: StubTransport, usps: Harness
) -> None:
    usps_stub.route(
        "DELETE", r"/labels/v3/label/", json_answer("usps", "label_cancel_refused.json", 400)
    )

    with pytest.raises(CarrierRejected, match="020007: The package has been scanned") as caught:
        await guarded(usps).cancel_label(CancelRequest(TRACKING_NUMBER))

    assert not caught.value.retryable and not caught.value.maybe_committed
    assert len(usps_stub.sent("DELETE", "/labels/v3/label/")) == 1


async def test_a_cancel_during_a_usps_outage_is_retryable(
    usps_stub: StubTransport, usps: Harness
) -> None:
    outage = HttpResponse(503, b"<html>Service Unavailable</html>")
    usps_stub.route(
        "DELETE", r"/labels/v3/label/", outage, outage, json_answer("usps", "label_cancel.json")
    )

    with pytest.raises(CarrierUnavailable) as caught:
        await usps.connector.cancel_label(CancelRequest(TRACKING_NUMBER))
    assert caught.value.retryable and not caught.value.maybe_committed

    # Behind the guard the next outage is retried, and the cancel goes through.
    await guarded(usps).cancel_label(CancelRequest(TRACKING_NUMBER))
    assert len(usps_stub.sent("DELETE", "/labels/v3/label/")) == 3


async def test_track_maps_usps_event_codes(usps_stub: StubTransport, usps: Harness) -> None:
    usps_stub.route("GET", r"/tracking/v3/tracking/", json_answer("usps", "tracking.json"))

    result = await usps.connector.track(TRACKING_NUMBER)

    [call] = usps_stub.sent("GET", "/tracking/v3/tracking/")
    assert call.url == f"{BASE}/tracking/v3/tracking/{TRACKING_NUMBER}?expand=DETAIL"
    assert [(s.carrier_status_code, s.status) for s in result.scans] == [
        ("GX", TrackingStatus.PENDING),
        ("03", TrackingStatus.PICKED_UP),
        ("L1", TrackingStatus.IN_TRANSIT),
        ("07", TrackingStatus.IN_TRANSIT),
        ("OF", TrackingStatus.OUT_FOR_DELIVERY),
        ("01", TrackingStatus.DELIVERED),
    ]
    assert result.scans[-1].occurred_at == datetime(2026, 1, 9, 22, 2, tzinfo=UTC)
    assert result.scans[-1].location == ScanLocation("Beverly Hills", "CA", "90210", "US")
    assert result.unmapped == ()


async def test_unknown_tracking_number_is_rejected(usps_stub: StubTransport, usps: Harness) -> None:
    usps_stub.route(
        "GET", r"/tracking/v3/tracking/", json_answer("usps", "tracking_not_found.json", 404)
    )

    with pytest.raises(CarrierRejected, match="008000"):
        await usps.connector.track(TRACKING_NUMBER)
