"""Value types every service's domain shares: money, weights, dimensions and postal addresses.

Pure (no I/O, no generated code), so domain modules import them freely; `proto_values` converts
them to and from the contracts' common messages in one place.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

NANOS = Decimal(1_000_000_000)
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class Money:
    """An exact amount in one ISO 4217 currency; Decimal so 0.1 + 0.2 is exactly 0.3."""

    currency_code: str
    amount: Decimal

    @classmethod
    def of(cls, amount: str | int | float | Decimal, currency_code: str) -> Money:
        """From what a partner or carrier sent; str() first so 14.58 stays 14.58, not its binary
        expansion."""
        return cls(currency_code.upper(), Decimal(str(amount)))

    @classmethod
    def zero(cls, currency_code: str) -> Money:
        return cls(currency_code, Decimal(0))

    def rounded(self, places: Decimal = _CENT) -> Money:
        """Rounded half-up to `places` (cents by default), for amounts shown or posted."""
        return Money(self.currency_code, self.amount.quantize(places, rounding=ROUND_HALF_UP))

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.currency_code, self.amount + other.amount)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.currency_code, self.amount - other.amount)

    def times(self, quantity: int | Decimal) -> Money:
        return Money(self.currency_code, self.amount * quantity)

    def _same_currency(self, other: Money) -> None:
        if other.currency_code != self.currency_code:
            raise ValueError(f"cannot combine {self.currency_code} with {other.currency_code}")


class WeightUnit(enum.StrEnum):
    """The unit of a Weight."""

    GRAM = "GRAM"
    KILOGRAM = "KILOGRAM"
    OUNCE = "OUNCE"
    POUND = "POUND"


class DimensionUnit(enum.StrEnum):
    """The unit of Dimensions."""

    CENTIMETER = "CENTIMETER"
    INCH = "INCH"


_GRAMS_PER_UNIT = {
    WeightUnit.GRAM: Decimal(1),
    WeightUnit.KILOGRAM: Decimal(1000),
    WeightUnit.OUNCE: Decimal("28.349523125"),
    WeightUnit.POUND: Decimal("453.59237"),
}
_CM_PER_UNIT = {DimensionUnit.CENTIMETER: Decimal(1), DimensionUnit.INCH: Decimal("2.54")}


@dataclass(frozen=True)
class Weight:
    """A gross weight (of a unit as packed, or of a parcel)."""

    value: Decimal
    unit: WeightUnit

    def to(self, unit: WeightUnit) -> Decimal:
        """The same weight in `unit`, exact (conversion factors are exact by definition)."""
        return self.value * _GRAMS_PER_UNIT[self.unit] / _GRAMS_PER_UNIT[unit]


@dataclass(frozen=True)
class Dimensions:
    """Outside measures (of a unit as packed, or of a parcel)."""

    length: Decimal
    width: Decimal
    height: Decimal
    unit: DimensionUnit

    def to(self, unit: DimensionUnit) -> tuple[Decimal, Decimal, Decimal]:
        factor = _CM_PER_UNIT[self.unit] / _CM_PER_UNIT[unit]
        return (self.length * factor, self.width * factor, self.height * factor)


@dataclass(frozen=True)
class Address:
    """A postal address goods leave from or are delivered to."""

    name: str
    lines: tuple[str, ...]
    city: str
    postal_code: str
    country_code: str
    region: str = ""
    company: str = ""
    phone: str = ""
    email: str = ""
    residential: bool = False


def to_decimal(units: int, nanos: int) -> Decimal:
    """(units, nanos) → Decimal, exact (no float ever touches money)."""
    return Decimal(units) + Decimal(nanos) / NANOS


def to_units_nanos(amount: Decimal) -> tuple[int, int]:
    """Decimal → (units, nanos) with the same sign; sub-nano precision is refused, never cut."""
    nanos_total = amount * NANOS
    if nanos_total != nanos_total.to_integral_value():
        raise ValueError(f"{amount} has more than nine decimal places")
    total = int(nanos_total)
    sign = -1 if total < 0 else 1
    units, nanos = divmod(abs(total), 1_000_000_000)
    return sign * units, sign * nanos
