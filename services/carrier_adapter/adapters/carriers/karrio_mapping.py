"""Canonical domain shapes ↔ karrio's unified models (karrio.core.models).

karrio speaks floats and strings; we speak Decimal, enums and aware datetimes. This module is
the only place that crosses between the two, for every karrio-backed carrier.
"""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import ROUND_UP, Decimal
from typing import Literal

import karrio.core.models as karrio_models

from services.carrier_adapter.domain.model import (
    Parcel,
    RateQuote,
)
from services.carrier_adapter.domain.service_table import ServiceTable
from services.kit.values import Address, DimensionUnit, Money, WeightUnit

__all__ = [
    "UnitSystem",
    "decode_document",
    "parse_carrier_datetime",
    "to_karrio_address",
    "to_karrio_parcel",
    "to_rate_quote",
    "utc_offset",
]

UnitSystem = Literal["imperial", "metric"]
_PLACES = Decimal("0.01")


def to_karrio_address(address: Address) -> karrio_models.Address:
    lines = list(address.lines)
    return karrio_models.Address(
        person_name=address.name,
        company_name=address.company or None,
        address_line1=lines[0] if lines else None,
        address_line2=" ".join(lines[1:]) or None,
        city=address.city,
        state_code=address.region or None,
        postal_code=address.postal_code,
        country_code=address.country_code,
        phone_number=address.phone or None,
        email=address.email or None,
        residential=address.residential,
    )


def to_karrio_parcel(
    parcel: Parcel, units: UnitSystem, description: str | None = None
) -> karrio_models.Parcel:
    weight_unit, dim_unit = (
        (WeightUnit.POUND, DimensionUnit.INCH)
        if units == "imperial"
        else (WeightUnit.KILOGRAM, DimensionUnit.CENTIMETER)
    )
    dims = parcel.dimensions.to(dim_unit) if parcel.dimensions else None
    return karrio_models.Parcel(
        weight=_number(parcel.weight.to(weight_unit)),
        weight_unit="LB" if units == "imperial" else "KG",
        length=_number(dims[0]) if dims else None,
        width=_number(dims[1]) if dims else None,
        height=_number(dims[2]) if dims else None,
        dimension_unit=("IN" if units == "imperial" else "CM") if dims else None,
        reference_number=parcel.reference or None,
        description=description,
    )


def to_rate_quote(
    rate: karrio_models.RateDetails, services: ServiceTable, account_id: str
) -> RateQuote:
    estimated = parse_carrier_datetime(rate.estimated_delivery) if rate.estimated_delivery else None
    return RateQuote(
        carrier=services.carrier,
        carrier_account_id=account_id,
        service_code=rate.service,
        service_name=services.name_of(rate.service, (rate.meta or {}).get("service_name", "")),
        service_level=services.level_of(rate.service),
        total_charge=Money.of(rate.total_charge, rate.currency or "USD").rounded(),
        transit_days=int(rate.transit_days) if rate.transit_days is not None else None,
        estimated_delivery=estimated,
    )


def decode_document(encoded: str) -> bytes:
    """karrio hands label documents over as base64 text."""
    return base64.b64decode(encoded, validate=False)


def parse_carrier_datetime(value: str) -> datetime:
    """karrio's date / ISO timestamp strings → aware UTC datetime.

    A carrier time without an offset is taken as UTC; the carrier-specific scan extractors use
    the carrier's own offset fields first, so this is only the fallback.
    """
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = datetime.combine(date.fromisoformat(text[:10]), time())
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def utc_offset(text: str | None) -> timezone | None:
    """A carrier's "-08:00" style offset as a tzinfo, or None when absent or malformed."""
    value = (text or "").strip()
    if len(value) != 6 or value[0] not in "+-" or value[3] != ":":
        return None
    try:
        delta = timedelta(hours=int(value[1:3]), minutes=int(value[4:6]))
    except ValueError:
        return None
    return timezone(delta if value[0] == "+" else -delta)


def _number(value: Decimal) -> float:
    # karrio takes floats. Round up: a 4 g parcel must not become 0.00 kg, and carriers bill
    # on rounded-up weight anyway.
    return float(value.quantize(_PLACES, rounding=ROUND_UP))
