"""The kit's shared values: exact money, weights and dimensions, and their contract forms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from crossdock.common.v1 import common_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from services.kit.proto_values import (
    dimensions_to_domain,
    dimensions_to_proto,
    money_to_domain,
    money_to_proto,
    timestamp,
    weight_to_domain,
    weight_to_proto,
)
from services.kit.values import Dimensions, DimensionUnit, Money, Weight, WeightUnit, to_units_nanos


def test_money_is_exact_and_refuses_mixed_currencies() -> None:
    assert Money.of(0.1, "usd") + Money.of(0.2, "USD") == Money("USD", Decimal("0.3"))
    assert Money.of("12.00", "EUR").times(2) - Money.of("0.5", "EUR") == Money(
        "EUR", Decimal("23.50")
    )
    assert Money.of("2.345", "EUR").rounded() == Money("EUR", Decimal("2.35"))
    with pytest.raises(ValueError, match="cannot combine EUR with USD"):
        Money.of(1, "EUR") + Money.of(1, "USD")


def test_money_never_truncates_below_a_nano() -> None:
    assert to_units_nanos(Decimal("-1.5")) == (-1, -500_000_000)
    with pytest.raises(ValueError, match="more than nine decimal places"):
        money_to_proto(Money("USD", Decimal("0.0000000001")))
    proto = money_to_proto(Money("USD", Decimal("-12.000000001")))
    assert (proto.units, proto.nanos) == (-12, -1)
    assert money_to_domain(proto) == Money("USD", Decimal("-12.000000001"))


def test_weights_and_dimensions_convert_exactly() -> None:
    assert Weight(Decimal(1), WeightUnit.POUND).to(WeightUnit.GRAM) == Decimal("453.59237")
    assert Dimensions(Decimal(10), Decimal(5), Decimal(1), DimensionUnit.INCH).to(
        DimensionUnit.CENTIMETER
    ) == (Decimal("25.40"), Decimal("12.70"), Decimal("2.54"))


def test_weights_and_dimensions_round_trip_through_the_contract() -> None:
    weight = weight_to_domain(common_pb2.Weight(value=0.1, unit=common_pb2.WEIGHT_UNIT_KILOGRAM))
    assert weight == Weight(Decimal("0.1"), WeightUnit.KILOGRAM)
    assert weight_to_domain(weight_to_proto(weight)) == weight
    dims = Dimensions(Decimal("30.5"), Decimal(20), Decimal(10), DimensionUnit.CENTIMETER)
    assert dimensions_to_domain(dimensions_to_proto(dims)) == dims


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 1, 5, 10, 0, 0, 123456, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # before the epoch
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=-5))),  # another offset
        datetime(2026, 3, 29, 1, 30, 0, 7),  # naive: read as UTC
    ],
)
def test_timestamps_are_what_protobuf_makes_of_the_instant(moment: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(moment)
    assert timestamp(moment) == expected
