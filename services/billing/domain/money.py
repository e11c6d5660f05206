"""Money as Decimal and its exact (units, nanos) conversion: the kit's, re-exported here."""

from services.kit.values import NANOS, to_decimal, to_units_nanos

__all__ = ["NANOS", "to_decimal", "to_units_nanos"]
