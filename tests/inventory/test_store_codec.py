"""The store's JSON columns: rows written by the stdlib encoder (before orjson) and rows written
now read back as the same values, non-ASCII text and float measures included."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from services.inventory import domain
from services.inventory.adapters.store import codec


def _stdlib_dump(value: Any) -> str:
    """What `codec.dump` wrote before it used orjson (ASCII only, backslash-u escapes)."""
    return json.dumps(value, separators=(",", ":"))


@dataclass(frozen=True)
class _Row:
    """An items or locations row as the store reads it (attributes by column)."""

    values: dict[str, Any]

    def __getattr__(self, column: str) -> Any:
        return self.values[column]

    def __iter__(self) -> Any:
        return iter(self.values.values())


RESERVATION_LINES = (domain.ReservationLine(1, "MUG-001", 2), domain.ReservationLine(2, "LAMP", 1))
CONFIRMATIONS = (domain.PickConfirmationLine(1, "SERUM", 3, 1, "Lot-Ørsted-7"),)
RECEIPT_LINES = (
    domain.ReceiptLine("SERUM", 4, "Lot-Ørsted-7", domain.StockCondition.QUARANTINE, "Bruch"),
    domain.ReceiptLine("MUG-001", 9),
)
SHORTFALLS = (domain.Shortfall(2, "LAMP", 5),)


@pytest.mark.parametrize(
    ("lines", "to_plain", "load"),
    [
        (
            RESERVATION_LINES,
            lambda xs: [[x.order_line_number, x.sku, x.quantity] for x in xs],
            codec.load_reservation_lines,
        ),
        (
            CONFIRMATIONS,
            lambda xs: [
                [x.order_line_number, x.sku, x.quantity_picked, x.quantity_short, x.lot] for x in xs
            ],
            codec.load_confirmations,
        ),
        (
            RECEIPT_LINES,
            lambda xs: [[x.sku, x.quantity, x.lot, x.condition.value, x.reason] for x in xs],
            codec.load_receipt_lines,
        ),
        (
            SHORTFALLS,
            lambda xs: [[x.order_line_number, x.sku, x.quantity] for x in xs],
            codec.load_shortfalls,
        ),
    ],
)
def test_lines_read_back_the_same_whichever_encoder_wrote_them(
    lines: tuple[Any, ...], to_plain: Any, load: Any
) -> None:
    written_now = codec.dump(to_plain(lines))
    assert written_now == _stdlib_dump(to_plain(lines)) or not written_now.isascii()
    assert load(written_now) == lines
    assert load(_stdlib_dump(to_plain(lines))) == lines


def test_the_dumps_are_the_stored_forms_the_loads_read() -> None:
    assert codec.load_reservation_lines(codec.dump_reservation_lines(RESERVATION_LINES)) == (
        RESERVATION_LINES
    )
    assert codec.load_confirmations(codec.dump_confirmations(CONFIRMATIONS)) == CONFIRMATIONS
    assert codec.load_receipt_lines(codec.dump_receipt_lines(RECEIPT_LINES)) == RECEIPT_LINES
    assert codec.load_shortfalls(codec.dump_shortfalls(SHORTFALLS)) == SHORTFALLS
    # Non-ASCII is stored as UTF-8 now; the stdlib wrote escapes. Both read back the same above.
    assert "Ørsted" in codec.dump_confirmations(CONFIRMATIONS)


def test_items_and_locations_read_back_the_same_whichever_encoder_wrote_them() -> None:
    item = domain.Item(
        "MUG-001",
        "Tasse « café »",
        dimensions=domain.Dimensions(
            Decimal("12.5"), Decimal("0.1"), Decimal("1e-05"), domain.DimensionUnit.CENTIMETER
        ),
        weight=domain.Weight(Decimal("0.35"), domain.WeightUnit.KILOGRAM),
        unit_price=domain.Money("EUR", Decimal("12.90")),
    )
    location = domain.Location(
        "WH-SÜD",
        "Lager Süd",
        domain.Address(
            name="Lager Süd",
            lines=("Straße 1",),
            city="München",
            postal_code="80331",
            country_code="DE",
        ),
    )
    for dump in (codec.dump, _stdlib_dump):
        item_values = {
            **codec.item_row(item),
            "dimensions": dump(codec.dimensions_row(item.dimensions)),  # type: ignore[arg-type]
            "weight": dump(codec.weight_row(item.weight)),  # type: ignore[arg-type]
            "unit_price": dump(["EUR", "12.90"]),
        }
        assert codec.item_from(_Row(item_values)) == item
        address = location.address
        assert address is not None
        location_values = {
            **codec.location_row(location),
            "address": dump({**address.__dict__, "lines": list(address.lines)}),
        }
        assert codec.location_from(_Row(location_values)) == location
