"""Row ↔ domain conversions for the inventory store (JSON for nested values, epoch floats).

Items and locations are decoded once per distinct stored row (`DecodedByRow`). The JSON is
orjson's (see `dump`).

Dimensions and weights keep their stored form: measures as JSON numbers (floats) and units as
the contracts' enum numbers (CENTIMETER = 1, GRAM = 1, …), not the kit's unit names.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

import orjson

from services.inventory.domain.model import (
    Address,
    Dimensions,
    DimensionUnit,
    Item,
    Location,
    Money,
    PickConfirmationLine,
    ReceiptLine,
    ReservationLine,
    Shortfall,
    StockCondition,
    UnitOfMeasure,
    Weight,
    WeightUnit,
)

T = TypeVar("T")


def to_epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def from_epoch(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def required_time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def dump(value: Any) -> str:
    # orjson: the same compact text as json.dumps(separators=(",", ":")) at a twentieth of the
    # cost (every reservation and pick task write dumps its lines), except that non-ASCII is
    # written as UTF-8 rather than backslash-u escapes; rows of either form read back the same.
    return orjson.dumps(value).decode()


# orjson's parser: ~5x the stdlib's on the small documents of these columns.
_loads = orjson.loads


_DIMENSION_UNIT_CODES = {DimensionUnit.CENTIMETER: 1, DimensionUnit.INCH: 2}
_WEIGHT_UNIT_CODES = {
    WeightUnit.GRAM: 1,
    WeightUnit.KILOGRAM: 2,
    WeightUnit.OUNCE: 3,
    WeightUnit.POUND: 4,
}
_DIMENSION_UNITS = {code: unit for unit, code in _DIMENSION_UNIT_CODES.items()}
_WEIGHT_UNITS = {code: unit for unit, code in _WEIGHT_UNIT_CODES.items()}


def _measure(stored: float) -> Decimal:
    """A stored JSON number as the exact Decimal of its shortest repr (0.1 stays 0.1)."""
    return Decimal(str(stored))


def dimensions_row(dims: Dimensions) -> list[Any]:
    return [
        float(dims.length),
        float(dims.width),
        float(dims.height),
        _DIMENSION_UNIT_CODES[dims.unit],
    ]


def dimensions_from(stored: list[Any]) -> Dimensions:
    length, width, height, unit = stored
    return Dimensions(_measure(length), _measure(width), _measure(height), _DIMENSION_UNITS[unit])


def weight_row(weight: Weight) -> list[Any]:
    return [float(weight.value), _WEIGHT_UNIT_CODES[weight.unit]]


def weight_from(stored: list[Any]) -> Weight:
    value, unit = stored
    return Weight(_measure(value), _WEIGHT_UNITS[unit])


def item_row(item: Item) -> dict[str, Any]:
    dims = item.dimensions
    return {
        "sku": item.sku,
        "description": item.description,
        "unit_of_measure": item.unit_of_measure.value,
        "dimensions": dump(dimensions_row(dims)) if dims else None,
        "weight": dump(weight_row(item.weight)) if item.weight else None,
        "hazmat": item.hazmat,
        "lot_controlled": item.lot_controlled,
        "active": item.active,
        "unit_price": dump([item.unit_price.currency_code, str(item.unit_price.amount)])
        if item.unit_price
        else None,
    }


class DecodedByRow(Generic[T]):
    """The values decoded from stored rows, kept by the row's contents (bounded).

    Why: every order reads the same few item and location rows, and decoding one (JSON, Decimal,
    enums) cost more than reading it. The row is still read every time; only an unchanged row's
    decode is reused, and the values are frozen dataclasses, so sharing one is safe. Rows of one
    table's full SELECT only (the same scalar, hashable columns in the same order), so equal
    rows mean equal values.
    """

    def __init__(self, decode: Callable[[Any], T], limit: int = 4096) -> None:
        self._decode = decode
        self._limit = limit
        self._values: dict[tuple[Any, ...], T] = {}

    def __call__(self, row: Any) -> T:
        key = tuple(row)
        value = self._values.get(key)
        if value is None:
            value = self._decode(row)
            if len(self._values) >= self._limit:
                self._values.clear()  # rows of outdated versions go; the live ones come back
            self._values[key] = value
        return value


def _decode_item(row: Any) -> Item:
    dims = _loads(row.dimensions) if row.dimensions else None
    weight = _loads(row.weight) if row.weight else None
    price = _loads(row.unit_price) if row.unit_price else None
    return Item(
        sku=row.sku,
        description=row.description,
        unit_of_measure=UnitOfMeasure(row.unit_of_measure),
        dimensions=dimensions_from(dims) if dims else None,
        weight=weight_from(weight) if weight else None,
        hazmat=bool(row.hazmat),
        lot_controlled=bool(row.lot_controlled),
        active=bool(row.active),
        unit_price=Money(price[0], Decimal(price[1])) if price else None,
    )


def location_row(location: Location) -> dict[str, Any]:
    address = location.address
    return {
        "location_id": location.location_id,
        "name": location.name,
        "address": dump({**address.__dict__, "lines": list(address.lines)}) if address else None,
        "active": location.active,
    }


def _decode_location(row: Any) -> Location:
    address = None
    if row.address:
        fields = _loads(row.address)
        fields["lines"] = tuple(fields["lines"])
        address = Address(**fields)
    return Location(row.location_id, row.name, address, bool(row.active))


# An items or locations row (the full SELECT of its table) → its Item or Location.
item_from = DecodedByRow(_decode_item)
location_from = DecodedByRow(_decode_location)


def dump_reservation_lines(lines: tuple[ReservationLine, ...]) -> str:
    return dump([[line.order_line_number, line.sku, line.quantity] for line in lines])


def load_reservation_lines(text: str) -> tuple[ReservationLine, ...]:
    return tuple(ReservationLine(n, sku, qty) for n, sku, qty in _loads(text))


def dump_shortfalls(shortfalls: tuple[Shortfall, ...]) -> str:
    return dump([[s.order_line_number, s.sku, s.quantity] for s in shortfalls])


def load_shortfalls(text: str) -> tuple[Shortfall, ...]:
    return tuple(Shortfall(n, sku, qty) for n, sku, qty in _loads(text))


def dump_confirmations(lines: tuple[PickConfirmationLine, ...]) -> str:
    return dump(
        [[x.order_line_number, x.sku, x.quantity_picked, x.quantity_short, x.lot] for x in lines]
    )


def load_confirmations(text: str) -> tuple[PickConfirmationLine, ...]:
    return tuple(PickConfirmationLine(*fields) for fields in _loads(text))


def dump_receipt_lines(lines: tuple[ReceiptLine, ...]) -> str:
    return dump([[x.sku, x.quantity, x.lot, x.condition.value, x.reason] for x in lines])


def load_receipt_lines(text: str) -> tuple[ReceiptLine, ...]:
    """Receipt lines; rows written before conditions existed have three fields (sellable)."""
    lines = []
    for sku, quantity, lot, *rest in _loads(text):
        condition, reason = rest or (StockCondition.SELLABLE.value, "")
        lines.append(ReceiptLine(sku, quantity, lot, StockCondition(condition), reason))
    return tuple(lines)
