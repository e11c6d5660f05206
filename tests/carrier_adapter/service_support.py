"""carrier-adapter's test data: addresses, a parcel, and the rate and label requests the service
tests send. The in-process service itself is `tests.fixtures.running.running_carrier_adapter`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from crossdock.carrier.v1 import carrier_pb2, carrier_service_pb2
from crossdock.common.v1 import common_pb2

from services.carrier_adapter.domain.normalize import RawScan

TRACKING_UPDATED = "crossdock.carrier.tracking_updated.v1"
CODE_UNMAPPED = "crossdock.carrier.code_unmapped.v1"


def address(city: str, postal_code: str, region: str) -> common_pb2.Address:
    return common_pb2.Address(
        name="Dock 1",
        lines=["1 Dock Rd"],
        city=city,
        postal_code=postal_code,
        region=region,
        country_code="US",
    )


ORIGIN = address("Atlanta", "30301", "GA")
DESTINATION = address("Beverly Hills", "90210", "CA")
BOX = carrier_pb2.Parcel(
    weight=common_pb2.Weight(value=2.5, unit=common_pb2.WEIGHT_UNIT_KILOGRAM),
    dimensions=common_pb2.Dimensions(
        length=30, width=20, height=15, unit=common_pb2.DIMENSION_UNIT_CENTIMETER
    ),
    reference="pkg_1",
)


def rates_request(**fields: Any) -> carrier_service_pb2.GetRatesRequest:
    return carrier_service_pb2.GetRatesRequest(
        ship_from=ORIGIN, ship_to=DESTINATION, parcels=[BOX], **fields
    )


def book_request(key: str, rate_id: str) -> carrier_service_pb2.BookLabelRequest:
    return carrier_service_pb2.BookLabelRequest(
        idempotency_key=key,
        rate_id=rate_id,
        ship_from=ORIGIN,
        ship_to=DESTINATION,
        parcels=[BOX],
        label_format=carrier_pb2.LABEL_FORMAT_PDF,
        reference="ORD-1",
    )


def shop_request(
    key: str, level: int = carrier_pb2.SERVICE_LEVEL_STANDARD, *, is_return: bool = False
) -> carrier_service_pb2.BookLabelRequest:
    """A BookLabel that shops ("shop and book") instead of naming a rate; a return goes from
    DESTINATION back to ORIGIN."""
    return carrier_service_pb2.BookLabelRequest(
        idempotency_key=key,
        shop=carrier_service_pb2.RateShopping(service_level=level),  # type: ignore[arg-type]
        ship_from=DESTINATION if is_return else ORIGIN,
        ship_to=ORIGIN if is_return else DESTINATION,
        parcels=[BOX],
        label_format=carrier_pb2.LABEL_FORMAT_PDF,
        reference="ORD-1",
        is_return=is_return,
    )


def return_rates_request(**fields: Any) -> carrier_service_pb2.GetRatesRequest:
    """Quotes for a return: the customer (DESTINATION) sends the box back to the warehouse."""
    return carrier_service_pb2.GetRatesRequest(
        ship_from=DESTINATION, ship_to=ORIGIN, parcels=[BOX], is_return=True, **fields
    )


def return_request(key: str, rate_id: str) -> carrier_service_pb2.BookLabelRequest:
    return carrier_service_pb2.BookLabelRequest(
        idempotency_key=key,
        rate_id=rate_id,
        ship_from=DESTINATION,
        ship_to=ORIGIN,
        parcels=[BOX],
        label_format=carrier_pb2.LABEL_FORMAT_PDF,
        reference="RMA-1",
        is_return=True,
    )


def scan(code: str, minutes: int, reason: str = "") -> RawScan:
    at = datetime(2026, 1, 5, 15, 0, tzinfo=UTC) + timedelta(minutes=minutes)
    return RawScan(code, f"scan {code}", at, incident_code=reason)
