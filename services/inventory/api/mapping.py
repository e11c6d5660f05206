"""Proto ↔ domain translation for inventory (messages only; no I/O).

Enum numbers are shared by design (see domain.model), so enums convert by value. Money goes
through Decimal so no float ever touches an amount.
"""

from __future__ import annotations

from crossdock.common.v1 import common_pb2
from crossdock.inventory.v1 import inventory_pb2 as pb
from crossdock.inventory.v1 import inventory_service_pb2 as svc

from services.inventory.domain.model import (
    Adjustment,
    Dimensions,
    DimensionUnit,
    Item,
    Location,
    PickConfirmationLine,
    PickTask,
    Position,
    Receipt,
    Reservation,
    ReservationLine,
    UnitOfMeasure,
    Weight,
    WeightUnit,
)
from services.kit.proto_values import (
    address_to_domain,
    address_to_proto,
    money_to_domain,
    money_to_proto,
    timestamp,
)


def item_to_domain(item: svc.ItemInput) -> Item:
    dims, weight = item.dimensions, item.weight
    return Item(
        sku=item.sku,
        description=item.description,
        unit_of_measure=UnitOfMeasure(item.unit_of_measure),
        dimensions=Dimensions(dims.length, dims.width, dims.height, DimensionUnit(dims.unit)),
        weight=Weight(weight.value, WeightUnit(weight.unit)),
        hazmat=item.hazmat,
        lot_controlled=item.lot_controlled,
        active=item.active,
        unit_price=money_to_domain(item.unit_price),
    )


def item_to_proto(item: Item) -> pb.Item:
    message = pb.Item(
        sku=item.sku,
        description=item.description,
        unit_of_measure=pb.UnitOfMeasure.ValueType(item.unit_of_measure.value),
        hazmat=item.hazmat,
        lot_controlled=item.lot_controlled,
        active=item.active,
    )
    if item.dimensions:
        d = item.dimensions
        message.dimensions.CopyFrom(
            common_pb2.Dimensions(
                length=d.length,
                width=d.width,
                height=d.height,
                unit=common_pb2.DimensionUnit.ValueType(d.unit.value),
            )
        )
    if item.weight:
        message.weight.CopyFrom(
            common_pb2.Weight(
                value=item.weight.value,
                unit=common_pb2.WeightUnit.ValueType(item.weight.unit.value),
            )
        )
    if item.unit_price:
        message.unit_price.CopyFrom(money_to_proto(item.unit_price))
    return message


def location_to_domain(location: svc.LocationInput) -> Location:
    return Location(
        location.location_id, location.name, address_to_domain(location.address), location.active
    )


def location_to_proto(location: Location) -> pb.Location:
    message = pb.Location(
        location_id=location.location_id, name=location.name, active=location.active
    )
    if location.address:
        message.address.CopyFrom(address_to_proto(location.address))
    return message


def position_to_proto(position: Position) -> pb.InventoryPosition:
    return pb.InventoryPosition(
        sku=position.sku,
        location_id=position.location_id,
        quantity_on_hand=position.on_hand,
        quantity_reserved=position.reserved,
        quantity_available=position.available,
        update_time=timestamp(position.updated_at),
    )


def reservation_lines_to_proto(lines: tuple[ReservationLine, ...]) -> list[pb.ReservationLine]:
    return [
        pb.ReservationLine(order_line_number=x.order_line_number, sku=x.sku, quantity=x.quantity)
        for x in lines
    ]


def reservation_to_proto(reservation: Reservation) -> pb.Reservation:
    return pb.Reservation(
        reservation_id=reservation.reservation_id,
        order_id=reservation.order_id,
        location_id=reservation.location_id,
        status=pb.ReservationStatus.ValueType(reservation.status.value),
        lines=reservation_lines_to_proto(reservation.lines),
        create_time=timestamp(reservation.created_at),
    )


def pick_task_to_proto(task: PickTask) -> pb.PickTask:
    return pb.PickTask(
        pick_id=task.pick_id,
        reservation_id=task.reservation_id,
        order_id=task.order_id,
        location_id=task.location_id,
        status=pb.PickStatus.ValueType(task.status.value),
        lines=reservation_lines_to_proto(task.lines),
        create_time=timestamp(task.created_at),
    )


def confirmation_to_domain(line: pb.PickConfirmationLine) -> PickConfirmationLine:
    return PickConfirmationLine(
        line.order_line_number, line.sku, line.quantity_picked, line.quantity_short, line.lot
    )


def confirmation_to_proto(line: PickConfirmationLine) -> pb.PickConfirmationLine:
    return pb.PickConfirmationLine(
        order_line_number=line.order_line_number,
        sku=line.sku,
        quantity_picked=line.quantity_picked,
        quantity_short=line.quantity_short,
        lot=line.lot,
    )


def adjustment_to_proto(adjustment: Adjustment) -> pb.Adjustment:
    return pb.Adjustment(
        adjustment_id=adjustment.adjustment_id,
        sku=adjustment.sku,
        location_id=adjustment.location_id,
        quantity_delta=adjustment.quantity_delta,
        reason=pb.AdjustmentReason.ValueType(adjustment.reason.value),
        note=adjustment.note,
        create_time=timestamp(adjustment.created_at),
    )


def receipt_to_proto(receipt: Receipt) -> pb.Receipt:
    return pb.Receipt(
        receipt_id=receipt.receipt_id,
        location_id=receipt.location_id,
        source=pb.ReceiptSource.ValueType(receipt.source.value),
        source_reference=receipt.source_reference,
        lines=[pb.ReceiptLine(sku=x.sku, quantity=x.quantity, lot=x.lot) for x in receipt.lines],
        create_time=timestamp(receipt.created_at),
    )
