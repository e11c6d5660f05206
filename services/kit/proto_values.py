"""The one conversion between the kit's value types and the contracts' common messages."""

from __future__ import annotations

from datetime import datetime

from crossdock.common.v1 import common_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from services.kit.values import Address, Money, to_decimal, to_units_nanos


def timestamp(moment: datetime | None) -> Timestamp | None:
    """A protobuf Timestamp, or None for no instant."""
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


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
