"""Domain ↔ protobuf: enums stay in sync by name, money and instants survive the trip."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from crossdock.carrier.v1 import carrier_pb2, carrier_service_pb2, tracking_pb2
from crossdock.common.v1 import common_pb2
from google.api import httpbody_pb2

from services.carrier_adapter.adapters import contracts as pm
from services.carrier_adapter.domain.model import (
    BookedLabel,
    IncidentReason,
    LabelFormat,
    RateQuote,
    ScanLocation,
    ServiceLevel,
    TrackingScan,
    TrackingStatus,
    UnmappedCode,
)
from services.kit.values import DimensionUnit, Money, WeightUnit

WHEN = datetime(2026, 1, 8, 22, 23, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("domain", "proto_enum", "prefix", "extra_proto"),
    [
        (TrackingStatus, tracking_pb2.TrackingStatus, "TRACKING_STATUS", {"UNSPECIFIED"}),
        (IncidentReason, tracking_pb2.IncidentReason, "INCIDENT_REASON", {"UNSPECIFIED"}),
        (ServiceLevel, carrier_pb2.ServiceLevel, "SERVICE_LEVEL", {"UNSPECIFIED"}),
        (LabelFormat, carrier_pb2.LabelFormat, "LABEL_FORMAT", {"UNSPECIFIED"}),
        (WeightUnit, common_pb2.WeightUnit, "WEIGHT_UNIT", {"UNSPECIFIED"}),
        (DimensionUnit, common_pb2.DimensionUnit, "DIMENSION_UNIT", {"UNSPECIFIED"}),
    ],
)
def test_domain_enums_match_the_contract(
    domain: type, proto_enum: object, prefix: str, extra_proto: set[str]
) -> None:
    values = proto_enum.DESCRIPTOR.values  # type: ignore[attr-defined]
    proto_names = {value.name.removeprefix(f"{prefix}_") for value in values}
    assert proto_names - extra_proto == {member.value for member in domain}  # type: ignore[attr-defined]


@pytest.mark.parametrize("amount", ["17.42", "0.01", "-3.50", "1000000", "0"])
def test_money_round_trips_exactly(amount: str) -> None:
    money = Money("USD", Decimal(amount))
    proto = pm.money_to_proto(money)
    assert (proto.units >= 0 and proto.nanos >= 0) or (proto.units <= 0 and proto.nanos <= 0)
    assert pm.money_from_proto(proto).amount == Decimal(amount)


def test_rate_to_proto() -> None:
    quote = RateQuote(
        "ups", "ups_east", "ups_ground", "UPS Ground", ServiceLevel.STANDARD,
        Money("USD", Decimal("17.42")), 4, WHEN, None,
    )  # fmt: skip
    rate = pm.rate_to_proto(quote, "rte_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P")
    assert rate.service_level == carrier_pb2.SERVICE_LEVEL_STANDARD
    assert (rate.total_charge.units, rate.total_charge.nanos) == (17, 420_000_000)
    assert rate.estimated_delivery_time.ToDatetime(UTC) == WHEN
    assert not rate.HasField("expire_time")
    unleveled = pm.rate_to_proto(
        RateQuote("ups", "a", "x", "X", None, Money("USD", Decimal(1))), "rte_1"
    )
    assert unleveled.service_level == carrier_pb2.SERVICE_LEVEL_UNSPECIFIED


def test_scan_and_unmapped_event_to_proto() -> None:
    scan = TrackingScan(
        "1Z", "ups", TrackingStatus.DELIVERY_FAILED, IncidentReason.RECIPIENT_ABSENT, "NA", "",
        "not home", WHEN, ScanLocation("Beverly Hills", "CA", "90210", "US"), "", "k" * 32,
    )  # fmt: skip
    event = pm.scan_to_proto(scan)
    assert event.status == tracking_pb2.TRACKING_STATUS_DELIVERY_FAILED
    assert event.incident_reason == tracking_pb2.INCIDENT_REASON_RECIPIENT_ABSENT
    assert event.location.postal_code == "90210"
    assert event.occur_time.ToDatetime(UTC) == WHEN
    unknown = pm.scan_to_proto(
        TrackingScan("1Z", "ups", TrackingStatus.UNKNOWN, None, "UJ", "", "", WHEN, None, "", "k")
    )
    assert unknown.status == tracking_pb2.TRACKING_STATUS_UNKNOWN
    assert unknown.incident_reason == tracking_pb2.INCIDENT_REASON_UNSPECIFIED

    unmapped = pm.unmapped_event(UnmappedCode("ups", "1Z", "status", "UJ", "", "odd", WHEN))
    assert (unmapped.carrier, unmapped.carrier_status_code) == ("ups", "UJ")

    update = pm.tracking_updated_event("ups", "1Z", (scan,), WHEN, Money("USD", Decimal("9.5")))
    assert len(update.events) == 1 and update.final_charge.units == 9


def test_requests_from_proto() -> None:
    address = common_pb2.Address(
        name="Jane", lines=["2 Elm St"], city="Beverly Hills", postal_code="90210",
        country_code="US", region="CA", residential=True,
    )  # fmt: skip
    parcel = carrier_pb2.Parcel(
        weight=common_pb2.Weight(value=2.5, unit=common_pb2.WEIGHT_UNIT_KILOGRAM),
        dimensions=common_pb2.Dimensions(
            length=30, width=20, height=15, unit=common_pb2.DIMENSION_UNIT_CENTIMETER
        ),
        reference="pkg_1",
    )
    rates = pm.rate_request_from_proto(
        carrier_service_pb2.GetRatesRequest(ship_from=address, ship_to=address, parcels=[parcel])
    )
    assert rates.service_level is None
    assert rates.parcels[0].weight.value == Decimal("2.5")
    assert rates.parcels[0].weight.unit is WeightUnit.KILOGRAM
    assert rates.ship_to.residential

    label = pm.label_request_from_proto(
        carrier_service_pb2.BookLabelRequest(
            idempotency_key="shp_123456", ship_from=address, ship_to=address, parcels=[parcel],
            label_format=carrier_pb2.LABEL_FORMAT_ZPL,
        ),
        "ups_ground",
    )  # fmt: skip
    assert (label.label_format, label.service_code) == (LabelFormat.ZPL, "ups_ground")
    assert label.is_return is False
    return_label = pm.label_request_from_proto(
        carrier_service_pb2.BookLabelRequest(
            idempotency_key="rma_123456", ship_from=address, ship_to=address, parcels=[parcel],
            is_return=True,
        ),
        "ups_ground",
    )  # fmt: skip
    assert return_label.is_return is True

    booked = BookedLabel(
        "sandbox", "sandbox", "sandbox_standard", "SBX1", ("SBX1",), LabelFormat.ZPL, b"^XA^XZ",
        "shp_123456", WHEN, Money("USD", Decimal("12.04")), "SBX1",
    )  # fmt: skip
    proto_label = pm.label_to_proto(booked, "lbl_1")
    assert proto_label.format == carrier_pb2.LABEL_FORMAT_ZPL
    assert proto_label.document == b"^XA^XZ"
    assert proto_label.is_return is False
    assert pm.label_to_proto(replace(booked, is_return=True), "lbl_2").is_return is True


def test_webhook_from_proto_keeps_the_body_byte_exact() -> None:
    request = carrier_service_pb2.IngestWebhookRequest(
        carrier="sandbox",
        body=httpbody_pb2.HttpBody(content_type="application/json", data=b'{"a": 1}\n'),
        signature_headers={"X-Sandbox-Timestamp": "1"},
    )
    webhook = pm.webhook_from_proto(request)
    assert webhook.body == b'{"a": 1}\n'
    assert webhook.headers == {"x-sandbox-timestamp": "1"}
