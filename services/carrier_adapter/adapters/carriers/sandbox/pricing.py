"""Sandbox pricing: deterministic rates from billable weight, zone and service level.

Billable weight is the larger of actual and dimensional weight (L*W*H cm / 5000, the common
express divisor), rounded up to the next half kilogram per parcel, as real carriers bill. Zones
come from the distance between 3-digit postal prefixes (1 to 8), 9 for cross-border.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from services.carrier_adapter.domain.model import (
    Parcel,
    ServiceLevel,
)
from services.kit.values import Address, DimensionUnit, WeightUnit

__all__ = ["SERVICES", "SandboxService", "billable_kg", "price", "transit_days", "zone"]

_CENT = Decimal("0.01")
_HALF = Decimal("0.5")
RESIDENTIAL_SURCHARGE = Decimal("1.25")


@dataclass(frozen=True)
class SandboxService:
    code: str
    level: ServiceLevel
    base: Decimal  # per parcel
    per_kg: Decimal
    zone_step: Decimal  # price grows by this fraction per zone above 1
    transit_days: int  # in zone 1
    zones_per_extra_day: int  # one extra day every N zones (0: never)


SERVICES: dict[str, SandboxService] = {
    s.code: s
    for s in (
        SandboxService("sandbox_economy", ServiceLevel.ECONOMY, Decimal("4.50"),
                       Decimal("0.55"), Decimal("0.06"), 5, 3),
        SandboxService("sandbox_standard", ServiceLevel.STANDARD, Decimal("6.90"),
                       Decimal("0.80"), Decimal("0.08"), 2, 3),
        SandboxService("sandbox_expedited", ServiceLevel.EXPEDITED, Decimal("12.50"),
                       Decimal("1.40"), Decimal("0.10"), 2, 0),
        SandboxService("sandbox_overnight", ServiceLevel.OVERNIGHT, Decimal("29.00"),
                       Decimal("2.60"), Decimal("0.12"), 1, 0),
    )
}  # fmt: skip


def zone(ship_from: Address, ship_to: Address) -> int:
    if ship_from.country_code != ship_to.country_code:
        return 9
    a, b = _prefix(ship_from.postal_code), _prefix(ship_to.postal_code)
    return 1 + min(7, abs(a - b) // 100)


def billable_kg(parcel: Parcel) -> Decimal:
    actual = parcel.weight.to(WeightUnit.KILOGRAM)
    dimensional = Decimal(0)
    if parcel.dimensions is not None:
        length, width, height = parcel.dimensions.to(DimensionUnit.CENTIMETER)
        dimensional = length * width * height / Decimal(5000)
    heavier = max(actual, dimensional, _HALF)
    return (heavier / _HALF).to_integral_value(rounding=ROUND_CEILING) * _HALF


def price(
    service: SandboxService, ship_from: Address, ship_to: Address, parcels: tuple[Parcel, ...]
) -> Decimal:
    factor = Decimal(1) + service.zone_step * (zone(ship_from, ship_to) - 1)
    total = sum(((service.base + service.per_kg * billable_kg(p)) * factor for p in parcels),
                Decimal(0))  # fmt: skip
    if ship_to.residential:
        total += RESIDENTIAL_SURCHARGE
    return total.quantize(_CENT, rounding=ROUND_HALF_UP)


def transit_days(service: SandboxService, ship_from: Address, ship_to: Address) -> int:
    hops = zone(ship_from, ship_to) - 1
    extra = math.ceil(hops / service.zones_per_extra_day) if service.zones_per_extra_day else 0
    return service.transit_days + extra


def _prefix(postal_code: str) -> int:
    digits = "".join(c for c in postal_code if c.isdigit())[:3]
    if len(digits) == 3:
        return int(digits)
    # Alphanumeric codes (UK, CA): a stable pseudo-prefix so the zone is still deterministic.
    return int(hashlib.sha256(postal_code.upper().encode()).hexdigest()[:6], 16) % 1000
