"""Money as Decimal, and the exact conversion to and from the contracts' (units, nanos)."""

from __future__ import annotations

from decimal import Decimal

NANOS = Decimal(1_000_000_000)


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
