"""Value types every service's domain shares: money and postal addresses.

Pure (no I/O, no generated code), so domain modules import them freely; `proto_values` converts
them to and from the contracts' common messages in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

NANOS = Decimal(1_000_000_000)


@dataclass(frozen=True)
class Money:
    """An amount in one currency; Decimal so 0.1 + 0.2 is exactly 0.3."""

    currency_code: str
    amount: Decimal


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
    """Decimal → (units, nanos) with the same sign; sub-nano precision is refused."""
    nanos_total = amount * NANOS
    if nanos_total != nanos_total.to_integral_value():
        raise ValueError(f"{amount} has more than nine decimal places")
    total = int(nanos_total)
    sign = -1 if total < 0 else 1
    units, nanos = divmod(abs(total), 1_000_000_000)
    return sign * units, sign * nanos
