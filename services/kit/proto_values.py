"""The one conversion between the kit's value types and the contracts' common messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from crossdock.common.v1 import common_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from services.kit.values import (
    Address,
    Dimensions,
    DimensionUnit,
    Money,
    Weight,
    WeightUnit,
    to_decimal,
    to_units_nanos,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)  # Timestamp.FromDatetime reads naive instants as UTC
_MICROSECOND = timedelta(microseconds=1)


def timestamp(moment: datetime | None) -> Timestamp | None:
    """A protobuf Timestamp, or None for no instant (what Timestamp.FromDatetime makes, in a
    quarter of its time: this runs for every instant of every message built)."""
    if moment is None:
        return None
    micros = (moment - (_NAIVE_EPOCH if moment.tzinfo is None else _EPOCH)) // _MICROSECOND
    seconds, rest = divmod(micros, 1_000_000)
    return Timestamp(seconds=seconds, nanos=rest * 1000)


def money_to_domain(money: common_pb2.Money) -> Money:
    return Money(money.currency_code, to_decimal(money.units, money.nanos))


def money_to_proto(money: Money) -> common_pb2.Money:
    units, nanos = to_units_nanos(money.amount)
    return common_pb2.Money(currency_code=money.currency_code, units=units, nanos=nanos)


def address_to_domain(address: common_pb2.Address) -> Address:
    return Address(
        name=address.name,
        lines=tuple(address.lines),
        city=address.city,
        postal_code=address.postal_code,
        country_code=address.country_code,
        region=address.region,
        company=address.company,
        phone=address.phone,
        email=address.email,
        residential=address.residential,
    )


def address_to_proto(address: Address) -> common_pb2.Address:
    return common_pb2.Address(
        name=address.name,
        company=address.company,
        lines=list(address.lines),
        city=address.city,
        region=address.region,
        postal_code=address.postal_code,
        country_code=address.country_code,
        phone=address.phone,
        email=address.email,
        residential=address.residential,
    )


def weight_to_domain(weight: common_pb2.Weight) -> Weight:
    """The contract's double becomes an exact Decimal of its shortest repr (0.1 stays 0.1)."""
    unit = common_pb2.WeightUnit.Name(weight.unit).removeprefix("WEIGHT_UNIT_")
    return Weight(Decimal(repr(weight.value)), WeightUnit(unit))


def weight_to_proto(weight: Weight) -> common_pb2.Weight:
    return common_pb2.Weight(
        value=float(weight.value),
        unit=common_pb2.WeightUnit.Value(f"WEIGHT_UNIT_{weight.unit.value}"),
    )


def dimensions_to_domain(dimensions: common_pb2.Dimensions) -> Dimensions:
    unit = common_pb2.DimensionUnit.Name(dimensions.unit).removeprefix("DIMENSION_UNIT_")
    return Dimensions(
        Decimal(repr(dimensions.length)),
        Decimal(repr(dimensions.width)),
        Decimal(repr(dimensions.height)),
        DimensionUnit(unit),
    )


def dimensions_to_proto(dimensions: Dimensions) -> common_pb2.Dimensions:
    return common_pb2.Dimensions(
        length=float(dimensions.length),
        width=float(dimensions.width),
        height=float(dimensions.height),
        unit=common_pb2.DimensionUnit.Value(f"DIMENSION_UNIT_{dimensions.unit.value}"),
    )
