"""Between the contracts' messages and shipment's domain values (units, rates, boxes)."""

from __future__ import annotations

from crossdock.carrier.v1 import carrier_pb2
from crossdock.common.v1 import common_pb2
from crossdock.inventory.v1 import inventory_pb2
from crossdock.shipment.v1 import shipment_pb2

from services.kit.ids import resource_id
from services.kit.values import to_decimal
from services.shipment.domain.model import ServiceLevel
from services.shipment.domain.packing import Box, ItemSpec
from services.shipment.domain.rating import Quote

_KG_PER = {
    common_pb2.WEIGHT_UNIT_UNSPECIFIED: 1.0,
    common_pb2.WEIGHT_UNIT_KILOGRAM: 1.0,
    common_pb2.WEIGHT_UNIT_GRAM: 0.001,
    common_pb2.WEIGHT_UNIT_OUNCE: 0.028349523125,
    common_pb2.WEIGHT_UNIT_POUND: 0.45359237,
}
_CM_PER = {
    common_pb2.DIMENSION_UNIT_UNSPECIFIED: 1.0,
    common_pb2.DIMENSION_UNIT_CENTIMETER: 1.0,
    common_pb2.DIMENSION_UNIT_INCH: 2.54,
}


def item_spec(item: inventory_pb2.Item) -> ItemSpec:
    """One unit of an item in kilograms and centimetres, whatever units the master uses."""
    cm = _CM_PER.get(item.dimensions.unit, 1.0)
    return ItemSpec(
        item.sku,
        item.weight.value * _KG_PER.get(item.weight.unit, 1.0),
        item.dimensions.length * cm,
        item.dimensions.width * cm,
        item.dimensions.height * cm,
    )


def package_of(box: Box) -> shipment_pb2.Package:
    return shipment_pb2.Package(
        package_id=resource_id("pkg"),
        weight=common_pb2.Weight(value=box.weight_kg, unit=common_pb2.WEIGHT_UNIT_KILOGRAM),
        dimensions=common_pb2.Dimensions(
            length=box.length_cm,
            width=box.width_cm,
            height=box.height_cm,
            unit=common_pb2.DIMENSION_UNIT_CENTIMETER,
        ),
        items=[
            shipment_pb2.PackageItem(
                order_line_number=u.order_line_number, sku=u.sku, quantity=u.quantity, lot=u.lot
            )
            for u in box.items
        ],
    )


def parcels_of(shipment: shipment_pb2.Shipment) -> list[carrier_pb2.Parcel]:
    return [
        carrier_pb2.Parcel(weight=p.weight, dimensions=p.dimensions, reference=p.package_id)
        for p in shipment.packages
    ]


def quote_of(rate: carrier_pb2.Rate) -> Quote:
    return Quote(
        rate.rate_id,
        rate.carrier,
        ServiceLevel(rate.service_level),
        to_decimal(rate.total_charge.units, rate.total_charge.nanos),
        rate.total_charge.currency_code,
        rate.estimated_transit_days,
    )
