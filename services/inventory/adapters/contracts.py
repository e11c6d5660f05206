"""Proto ↔ domain translation for inventory, and the service's one event mapper (no I/O).

Enum numbers are shared by design (see domain.model), so enums convert by value; an UNSPECIFIED
stock condition means sellable (receipts that predate conditions). Money, weights, dimensions
and addresses go through the kit's one conversion (services.kit.proto_values).

`mapper` turns each domain event into its `crossdock.events.v1` message and aggregate id (the
CloudEvents subject); `uow.publish(event)` appends it to the outbox in the caller's transaction,
so an event exists if and only if its change committed (the transactional outbox).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from crossdock.events.v1 import inventory_events_pb2 as events_pb
from crossdock.inventory.v1 import inventory_pb2 as pb
from crossdock.inventory.v1 import inventory_service_pb2 as svc
from crossdock.shipment.v1 import shipment_pb2

from services.inventory.domain.events import (
    PickCompleted,
    ReservationReleased,
    StockAdjusted,
    StockReceived,
    StockReserved,
)
from services.inventory.domain.model import (
    Adjustment,
    Item,
    Location,
    PickConfirmationLine,
    PickTask,
    Position,
    Receipt,
    ReceiptLine,
    Reservation,
    ReservationLine,
    StockCondition,
    UnitOfMeasure,
)
from services.inventory.domain.stock import SkuAvailability
from services.kit.proto_values import (
    address_to_domain,
    address_to_proto,
    dimensions_to_domain,
    dimensions_to_proto,
    money_to_domain,
    money_to_proto,
    timestamp,
    weight_to_domain,
    weight_to_proto,
)
from services.kit.uow import EventMapper, Mapped

mapper = EventMapper("inventory")


def item_to_domain(item: svc.ItemInput) -> Item:
    return Item(
        sku=item.sku,
        description=item.description,
        unit_of_measure=UnitOfMeasure(item.unit_of_measure),
        dimensions=dimensions_to_domain(item.dimensions),
        weight=weight_to_domain(item.weight),
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
        message.dimensions.CopyFrom(dimensions_to_proto(item.dimensions))
    if item.weight:
        message.weight.CopyFrom(weight_to_proto(item.weight))
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
    return pb.InventoryPosition(**_position_fields(position))


def _position_fields(position: Position) -> dict[str, Any]:
    """An InventoryPosition's fields, for a new message or one added in place."""
    return {
        "sku": position.sku,
        "location_id": position.location_id,
        "quantity_on_hand": position.on_hand,
        "quantity_reserved": position.reserved,
        "quantity_available": position.available,
        "update_time": timestamp(position.updated_at),
        "quantity_non_sellable": position.non_sellable,
    }


def availability_to_proto(
    answer: Iterable[SkuAvailability], items: Mapping[str, Item] | None = None
) -> svc.GetAvailabilityResponse:
    """The GetAvailability answer; with `items` (the known ones among its SKUs) every entry
    says whether its SKU is known and active, and the answer says it carries item facts."""
    response = svc.GetAvailabilityResponse(items_included=items is not None)
    for a in answer:
        entry = response.availability.add(sku=a.sku, quantity_available=a.quantity_available)
        # Built in place (`add`), not built apart and copied in: every order's capture asks.
        for p in a.positions:
            entry.positions.add(**_position_fields(p))
        if items is not None:
            item = items.get(a.sku)
            entry.item_known = item is not None
            entry.item_active = item is not None and item.active
    return response


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


def receipt_line_to_domain(line: svc.ReceiptLineInput) -> ReceiptLine:
    condition = StockCondition(line.condition or StockCondition.SELLABLE.value)
    return ReceiptLine(line.sku, line.quantity, line.lot, condition, line.reason)


def package_items_to_receipt_lines(
    items: Iterable[shipment_pb2.PackageItem], condition: StockCondition, reason: str
) -> tuple[ReceiptLine, ...]:
    """Units coming back from a shipment, as receipt lines of one condition."""
    return tuple(ReceiptLine(x.sku, x.quantity, x.lot, condition, reason) for x in items)


def receipt_to_proto(receipt: Receipt) -> pb.Receipt:
    return pb.Receipt(
        receipt_id=receipt.receipt_id,
        location_id=receipt.location_id,
        source=pb.ReceiptSource.ValueType(receipt.source.value),
        source_reference=receipt.source_reference,
        lines=[
            pb.ReceiptLine(
                sku=x.sku,
                quantity=x.quantity,
                lot=x.lot,
                condition=pb.StockCondition.ValueType(x.condition.value),
                reason=x.reason,
            )
            for x in receipt.lines
        ],
        create_time=timestamp(receipt.created_at),
    )


# -- domain events → contract events (the one mapper) ------------------------------------------


@mapper.maps(StockReserved)
def _stock_reserved(event: StockReserved) -> Mapped:
    reservation = event.reservation
    message = events_pb.StockReserved(
        reservation=reservation_to_proto(reservation), occur_time=timestamp(event.occurred_at)
    )
    return message, reservation.reservation_id


@mapper.maps(ReservationReleased)
def _reservation_released(event: ReservationReleased) -> Mapped:
    reservation = event.reservation
    message = events_pb.ReservationReleased(
        reservation=reservation_to_proto(reservation),
        reason=event.reason,
        occur_time=timestamp(event.occurred_at),
    )
    return message, reservation.reservation_id


@mapper.maps(PickCompleted)
def _pick_completed(event: PickCompleted) -> Mapped:
    message = events_pb.PickCompleted(
        pick_id=event.pick_id,
        reservation_id=event.reservation_id,
        order_id=event.order_id,
        location_id=event.location_id,
        lines=[confirmation_to_proto(line) for line in event.lines],
        occur_time=timestamp(event.occurred_at),
    )
    return message, event.order_id


@mapper.maps(StockAdjusted)
def _stock_adjusted(event: StockAdjusted) -> Mapped:
    message = events_pb.StockAdjusted(
        adjustment=adjustment_to_proto(event.adjustment),
        position=position_to_proto(event.position),
        occur_time=timestamp(event.occurred_at),
    )
    return message, f"{event.position.sku}@{event.position.location_id}"


@mapper.maps(StockReceived)
def _stock_received(event: StockReceived) -> Mapped:
    message = events_pb.StockReceived(
        receipt=receipt_to_proto(event.receipt),
        positions=[position_to_proto(p) for p in event.positions],
        occur_time=timestamp(event.occurred_at),
    )
    return message, event.receipt.receipt_id
