"""The sandbox carrier's own HTTP API format, for when it runs as its own process.

`tools/sandbox_carrier.py` serves the sandbox as a remote carrier, and `sandbox.remote` is
carrier-adapter's connector for it; both speak this JSON. The routes, like a small carrier API:

    POST /v1/rates                      RateRequest JSON   → {"quotes": [RateQuote JSON, …]}
    POST /v1/labels                     LabelRequest JSON  → BookedLabel JSON (idempotent by key)
    GET  /v1/labels?idempotency_key=K                      → {"labels": [found, …]}
    GET  /v1/labels?booked_after=T&booked_before=T&page_token=P&page_size=N
                                                           → {"labels": [found, …],
                                                              "next_page_token": P or ""}
    POST /v1/labels/{tracking}/void     {}                 → {}
    GET  /v1/tracking/{tracking}                           → {"scans": [scan JSON, …]}
    GET  /healthz                                          → {"status": "ok"}

A `found` label is {"label": BookedLabel JSON, "voided": bool}: the lookups a carrier's
shipment search offers, by our key (its customer reference) or by booking time, oldest first.
A refusal answers 4xx with {"error": kind, "detail": text}, kind one of `rejected`,
`unknown_service`, `unsupported`; scans use the push format of `sandbox.webhooks`. Decimals
travel as strings and instants as RFC 3339 UTC, so nothing is rounded on the way.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from services.carrier_adapter.domain.model import (
    BookedLabel,
    LabelFormat,
    LabelRequest,
    Parcel,
    RateQuote,
    RateRequest,
    ServiceLevel,
)
from services.kit.values import Address, Dimensions, DimensionUnit, Money, Weight, WeightUnit

__all__ = [
    "ERROR_REJECTED",
    "ERROR_UNKNOWN_SERVICE",
    "ERROR_UNSUPPORTED",
    "label_from_json",
    "label_request_from_json",
    "label_request_to_json",
    "label_to_json",
    "quote_from_json",
    "quote_to_json",
    "rate_request_from_json",
    "rate_request_to_json",
]

ERROR_REJECTED = "rejected"
ERROR_UNKNOWN_SERVICE = "unknown_service"
ERROR_UNSUPPORTED = "unsupported"

Json = dict[str, Any]


def rate_request_to_json(request: RateRequest) -> Json:
    return {
        "ship_from": _address_json(request.ship_from),
        "ship_to": _address_json(request.ship_to),
        "parcels": [_parcel_json(p) for p in request.parcels],
        "service_level": request.service_level.value if request.service_level else None,
    }


def rate_request_from_json(data: Mapping[str, Any]) -> RateRequest:
    level = data.get("service_level")
    return RateRequest(
        ship_from=_address(data["ship_from"]),
        ship_to=_address(data["ship_to"]),
        parcels=tuple(_parcel(p) for p in data["parcels"]),
        service_level=ServiceLevel(level) if level else None,
    )


def quote_to_json(quote: RateQuote) -> Json:
    return {
        "carrier": quote.carrier,
        "carrier_account_id": quote.carrier_account_id,
        "service_code": quote.service_code,
        "service_name": quote.service_name,
        "service_level": quote.service_level.value if quote.service_level else None,
        "total_charge": _money_json(quote.total_charge),
        "transit_days": quote.transit_days,
        "estimated_delivery": _instant_json(quote.estimated_delivery),
        "expires_at": _instant_json(quote.expires_at),
    }


def quote_from_json(data: Mapping[str, Any]) -> RateQuote:
    level = data.get("service_level")
    return RateQuote(
        carrier=str(data["carrier"]),
        carrier_account_id=str(data["carrier_account_id"]),
        service_code=str(data["service_code"]),
        service_name=str(data["service_name"]),
        service_level=ServiceLevel(level) if level else None,
        total_charge=_money(data["total_charge"]),
        transit_days=data.get("transit_days"),
        estimated_delivery=_instant(data.get("estimated_delivery")),
        expires_at=_instant(data.get("expires_at")),
    )


def label_request_to_json(request: LabelRequest) -> Json:
    return {
        "idempotency_key": request.idempotency_key,
        "service_code": request.service_code,
        "ship_from": _address_json(request.ship_from),
        "ship_to": _address_json(request.ship_to),
        "parcels": [_parcel_json(p) for p in request.parcels],
        "label_format": request.label_format.value,
        "reference": request.reference,
        "is_return": request.is_return,
    }


def label_request_from_json(data: Mapping[str, Any]) -> LabelRequest:
    return LabelRequest(
        idempotency_key=str(data["idempotency_key"]),
        service_code=str(data["service_code"]),
        ship_from=_address(data["ship_from"]),
        ship_to=_address(data["ship_to"]),
        parcels=tuple(_parcel(p) for p in data["parcels"]),
        label_format=LabelFormat(data.get("label_format") or LabelFormat.PDF.value),
        reference=str(data.get("reference") or ""),
        is_return=bool(data.get("is_return")),
    )


def label_to_json(label: BookedLabel) -> Json:
    return {
        "carrier": label.carrier,
        "carrier_account_id": label.carrier_account_id,
        "service_code": label.service_code,
        "tracking_number": label.tracking_number,
        "package_tracking_numbers": list(label.package_tracking_numbers),
        "label_format": label.label_format.value,
        "document": base64.b64encode(label.document).decode("ascii"),
        "idempotency_key": label.idempotency_key,
        "created_at": _instant_json(label.created_at),
        "quoted_charge": _money_json(label.quoted_charge) if label.quoted_charge else None,
        "carrier_shipment_id": label.carrier_shipment_id,
        "is_return": label.is_return,
    }


def label_from_json(data: Mapping[str, Any]) -> BookedLabel:
    created_at = _instant(data["created_at"])
    if created_at is None:
        raise ValueError("a label needs created_at")
    charge = data.get("quoted_charge")
    return BookedLabel(
        carrier=str(data["carrier"]),
        carrier_account_id=str(data["carrier_account_id"]),
        service_code=str(data["service_code"]),
        tracking_number=str(data["tracking_number"]),
        package_tracking_numbers=tuple(str(n) for n in data["package_tracking_numbers"]),
        label_format=LabelFormat(data["label_format"]),
        document=base64.b64decode(data["document"]),
        idempotency_key=str(data["idempotency_key"]),
        created_at=created_at,
        quoted_charge=_money(charge) if charge else None,
        carrier_shipment_id=str(data.get("carrier_shipment_id") or ""),
        is_return=bool(data.get("is_return")),
    )


# ---- values ----------------------------------------------------------------------------------


def _address_json(address: Address) -> Json:
    return {
        "name": address.name,
        "lines": list(address.lines),
        "city": address.city,
        "postal_code": address.postal_code,
        "country_code": address.country_code,
        "region": address.region,
        "company": address.company,
        "phone": address.phone,
        "email": address.email,
        "residential": address.residential,
    }


def _address(data: Mapping[str, Any]) -> Address:
    return Address(
        name=str(data["name"]),
        lines=tuple(str(line) for line in data["lines"]),
        city=str(data["city"]),
        postal_code=str(data["postal_code"]),
        country_code=str(data["country_code"]),
        region=str(data.get("region") or ""),
        company=str(data.get("company") or ""),
        phone=str(data.get("phone") or ""),
        email=str(data.get("email") or ""),
        residential=bool(data.get("residential")),
    )


def _parcel_json(parcel: Parcel) -> Json:
    dimensions = parcel.dimensions
    return {
        "weight": {"value": str(parcel.weight.value), "unit": parcel.weight.unit.value},
        "dimensions": None
        if dimensions is None
        else {
            "length": str(dimensions.length),
            "width": str(dimensions.width),
            "height": str(dimensions.height),
            "unit": dimensions.unit.value,
        },
        "reference": parcel.reference,
    }


def _parcel(data: Mapping[str, Any]) -> Parcel:
    weight, dimensions = data["weight"], data.get("dimensions")
    return Parcel(
        weight=Weight(Decimal(weight["value"]), WeightUnit(weight["unit"])),
        dimensions=None
        if not dimensions
        else Dimensions(
            Decimal(dimensions["length"]),
            Decimal(dimensions["width"]),
            Decimal(dimensions["height"]),
            DimensionUnit(dimensions["unit"]),
        ),
        reference=str(data.get("reference") or ""),
    )


def _money_json(money: Money) -> Json:
    return {"amount": str(money.amount), "currency": money.currency_code}


def _money(data: Mapping[str, Any]) -> Money:
    return Money.of(data["amount"], data["currency"])


def _instant_json(instant: datetime | None) -> str | None:
    return None if instant is None else instant.astimezone(UTC).isoformat()


def _instant(text: str | None) -> datetime | None:
    if not text:
        return None
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError("instants must carry an offset")
    return parsed.astimezone(UTC)
