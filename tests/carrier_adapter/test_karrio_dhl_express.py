"""DHL Express connector: karrio-dhl-express XML-PI builds and parses; only HTTP is stubbed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from xml.etree import ElementTree

import pytest

from services.carrier_adapter.adapters.carriers.dhl_express.connector import DhlExpressConnector
from services.carrier_adapter.adapters.carriers.karrio_http import HttpRequest, HttpResponse
from services.carrier_adapter.adapters.metrics import CarrierMetrics
from services.carrier_adapter.domain.errors import (
    CarrierRejected,
    CarrierRequestInvalid,
    UnsupportedOperation,
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
from services.kit.errors import ErrorCode
from services.kit.values import Address, Weight, WeightUnit
from tests.carrier_adapter.karrio_support import Harness, account, assert_pdf, build
from tests.carrier_adapter.stub_transport import StubTransport, payload

SERVLET = "https://xmlpitest-ea.dhl.com/XMLShippingServlet"
AWB = "4018309734"
PASSWORD = "dhl-xmlpi-password"


def xml_answer(name: str) -> HttpResponse:
    return HttpResponse(200, payload("dhl_express", name), {"Content-Type": "application/xml"})


def sent_xml(request: HttpRequest) -> ElementTree.Element:
    return ElementTree.fromstring(request.body)


@pytest.fixture
def dhl(metrics: CarrierMetrics) -> Harness:
    return build(
        DhlExpressConnector,
        account("dhl_express", "dhl_de", site_id="CrossdockTest", password=PASSWORD,
                account_number="950000002"),
        metrics,
    )  # fmt: skip


@pytest.fixture
def bonn() -> Address:
    return Address(
        "West DC",
        ("Platz der Vereinten Nationen 1",),
        "Bonn",
        "53113",
        "DE",
        company="Crossdock GmbH",
        phone="+492281234567",
    )


@pytest.fixture
def berlin() -> Address:
    return Address(
        "Erika Mustermann", ("Invalidenstr. 10",), "Berlin", "10115", "DE",
        phone="+493012345678", residential=True,
    )  # fmt: skip


async def test_quote_request_and_rates(
    stub: StubTransport, dhl: Harness, bonn: Address, berlin: Address, box: Parcel
) -> None:
    stub.route("POST", r"/XMLShippingServlet$", xml_answer("quote.xml"))

    quotes = await dhl.connector.rate(RateRequest(bonn, berlin, (box,)))

    [call] = stub.requests
    assert (call.method, call.url, call.header("content-type")) == (
        "POST",
        SERVLET,
        "application/xml",
    )
    quote = sent_xml(call)
    assert quote.findtext(".//ServiceHeader/SiteID") == "CrossdockTest"
    assert quote.findtext(".//From/Postalcode") == "53113"
    assert quote.findtext(".//To/Postalcode") == "10115"
    assert quote.findtext(".//BkgDetails/WeightUnit") == "KG"
    assert quote.findtext(".//BkgDetails/Pieces/Piece/Weight") == "2.5"
    assert [(q.service_code, q.service_level) for q in quotes] == [
        ("dhl_express_domestic", ServiceLevel.OVERNIGHT),
        ("dhl_express_domestic_9_00", ServiceLevel.OVERNIGHT),
    ]
    assert [
        (q.total_charge.amount, q.total_charge.currency_code, q.transit_days) for q in quotes
    ] == [
        (Decimal("33.35"), "EUR", 1),
        (Decimal("52.70"), "EUR", 1),
    ]


async def test_book_label(
    stub: StubTransport, dhl: Harness, bonn: Address, berlin: Address, box: Parcel
) -> None:
    stub.route("POST", r"/XMLShippingServlet$", xml_answer("shipment.xml"))

    label = await dhl.connector.book_label(
        LabelRequest("shp_dhl_00001", "dhl_express_domestic", bonn, berlin, (box,),
                     reference="ord-77")
    )  # fmt: skip

    shipment = sent_xml(stub.requests[0])
    assert shipment.tag.endswith("ShipmentRequest")
    assert shipment.findtext(".//Billing/ShipperAccountNumber") == "950000002"
    assert shipment.findtext(".//Consignee/City") == "Berlin"
    assert shipment.findtext(".//Consignee/Contact/PersonName") == "Erika Mustermann"
    assert shipment.findtext(".//ShipmentDetails/GlobalProductCode") == "N"
    assert label.tracking_number == AWB
    assert label.quoted_charge is not None
    assert label.quoted_charge.amount == Decimal("33.35")
    assert_pdf(label.document)


async def test_error_condition_is_rejected(
    stub: StubTransport, dhl: Harness, bonn: Address, berlin: Address, box: Parcel
) -> None:
    stub.route("POST", r"/XMLShippingServlet$", xml_answer("error_condition.xml"))

    with pytest.raises(CarrierRejected, match="PROD01"):
        await dhl.connector.book_label(
            LabelRequest("shp_dhl_00002", "dhl_express_domestic", bonn, berlin, (box,))
        )


async def test_cancel_is_unsupported_and_sends_nothing(stub: StubTransport, dhl: Harness) -> None:
    assert dhl.connector.capabilities.cancel_label is False
    with pytest.raises(UnsupportedOperation):
        await dhl.connector.cancel_label(CancelRequest(AWB))
    assert stub.requests == []


async def test_return_labels_are_refused_and_nothing_is_sent(
    stub: StubTransport, dhl: Harness, bonn: Address, berlin: Address, box: Parcel
) -> None:
    assert dhl.connector.capabilities.return_label is False
    customer, warehouse = berlin, bonn

    with pytest.raises(UnsupportedOperation, match="does not support return labels") as caught:
        await dhl.connector.book_label(
            LabelRequest("rma_dhl_00001", "dhl_express_domestic", customer, warehouse, (box,),
                         is_return=True)
        )  # fmt: skip

    assert caught.value.code is ErrorCode.FAILED_PRECONDITION
    assert caught.value.reason == "CARRIER_OPERATION_UNSUPPORTED"
    assert stub.requests == []


async def test_track_maps_every_checkpoint(stub: StubTransport, dhl: Harness) -> None:
    stub.route("POST", r"/XMLShippingServlet$", xml_answer("tracking_delivered.xml"))

    result = await dhl.connector.track(AWB)

    request = sent_xml(stub.requests[0])
    assert request.tag.endswith("KnownTrackingRequest")
    assert request.findtext("AWBNumber") == AWB
    assert request.findtext("LevelOfDetails") == "ALL_CHECK_POINTS"
    assert [(s.carrier_status_code, s.status, s.incident_reason) for s in result.scans] == [
        ("PU", TrackingStatus.PICKED_UP, None),
        ("DF", TrackingStatus.IN_TRANSIT, None),
        ("AF", TrackingStatus.IN_TRANSIT, None),
        ("WC", TrackingStatus.OUT_FOR_DELIVERY, None),
        ("NH", TrackingStatus.DELIVERY_FAILED, IncidentReason.RECIPIENT_ABSENT),
        ("WC", TrackingStatus.OUT_FOR_DELIVERY, None),
        ("OK", TrackingStatus.DELIVERED, None),
    ]
    delivered = result.scans[-1]
    assert delivered.signed_by == "MUSTERMANN"
    assert delivered.location == ScanLocation(city="Berlin")
    assert delivered.occurred_at == datetime(2026, 1, 7, 9, 27, tzinfo=UTC)
    assert result.unmapped == ()


async def test_payload_log_blanks_the_xmlpi_password(
    stub: StubTransport, dhl: Harness, bonn: Address, berlin: Address, box: Parcel
) -> None:
    stub.route("POST", r"/XMLShippingServlet$", xml_answer("quote.xml"))

    await dhl.connector.rate(RateRequest(bonn, berlin, (box,)))

    [request_record] = [p for p in dhl.payloads.payloads() if p.direction.value == "request"]
    assert "<Password>***</Password>" in request_record.body
    assert PASSWORD not in request_record.body


async def test_input_karrio_cannot_express_is_invalid_and_never_sent(
    stub: StubTransport, dhl: Harness, bonn: Address, berlin: Address
) -> None:
    too_heavy = Parcel(Weight(Decimal(400), WeightUnit.KILOGRAM))  # DHL Express caps at 300 kg

    with pytest.raises(CarrierRequestInvalid) as caught:
        await dhl.connector.book_label(
            LabelRequest("shp_dhl_00003", "dhl_express_domestic", bonn, berlin, (too_heavy,))
        )

    assert not caught.value.retryable and not caught.value.maybe_committed
    assert stub.requests == []
