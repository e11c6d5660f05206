"""Proto ↔ domain translation for orders, and the service's one event mapper.

- requests and answers: `order_input_to_domain`, `order_to_proto`, `timeline_entry_to_proto`;
- events consumed: `shipped_lines`, `invoiced_goods_lines` (other services' messages → saga
  input values);
- events published: `event_mapper` maps every order domain event to its `crossdock.events.v1`
  message and aggregate id (the order id); `uow.publish(event)` goes through it;
- returns (RMA): `return_input_to_domain`, `return_to_proto`, `return_receipt` (a receipt
  against a return), and the return events (aggregate id: the return id).
"""

from __future__ import annotations

from collections.abc import Iterable

from crossdock.billing.v1 import billing_pb2
from crossdock.carrier.v1 import carrier_pb2, tracking_pb2
from crossdock.common.v1 import common_pb2
from crossdock.events.v1 import order_events_pb2 as events_pb
from crossdock.events.v1 import return_events_pb2 as return_events_pb
from crossdock.inventory.v1 import inventory_pb2
from crossdock.order.v1 import order_pb2 as pb
from crossdock.order.v1 import order_service_pb2 as svc
from crossdock.shipment.v1 import shipment_pb2

from services.kit.proto_values import (
    address_to_domain,
    address_to_proto,
    money_to_domain,
    money_to_proto,
    timestamp,
)
from services.kit.uow import EventMapper, Mapped
from services.order.domain import messages as m
from services.order.domain import returns as r
from services.order.domain.model import (
    BackorderPolicy,
    LineQuantity,
    Order,
    OrderInput,
    OrderLine,
    OrderLineInput,
    PartyRef,
    ServiceLevel,
    TimelineEntry,
)
from services.order.domain.return_rules import ReturnLineRequest, ReturnRequest


def order_input_to_domain(order: svc.OrderInput) -> OrderInput:
    ship_to = order.ship_to
    return OrderInput(
        external_order_id=order.external_order_id,
        customer=PartyRef(order.customer.party_id, order.customer.name, order.customer.email),
        ship_to=address_to_domain(ship_to),
        lines=tuple(
            OrderLineInput(line.sku, line.quantity, money_to_domain(line.unit_price))
            for line in order.lines
        ),
        currency_code=order.currency_code,
        # UNSPECIFIED resolves to the documented defaults (see domain.model).
        service_level=ServiceLevel(order.service_level or ServiceLevel.STANDARD.value),
        backorder_policy=BackorderPolicy(
            order.backorder_policy or BackorderPolicy.SHIP_AVAILABLE.value
        ),
    )


def line_to_proto(line: OrderLine) -> pb.OrderLine:
    return pb.OrderLine(
        line_number=line.line_number,
        sku=line.sku,
        quantity_ordered=line.quantity_ordered,
        unit_price=money_to_proto(line.unit_price),
        quantity_allocated=line.quantity_allocated,
        quantity_backordered=line.quantity_backordered,
        quantity_picked=line.quantity_picked,
        quantity_shipped=line.quantity_shipped,
        quantity_delivered=line.quantity_delivered,
        quantity_invoiced=line.quantity_invoiced,
        quantity_cancelled=line.quantity_cancelled,
        quantity_returned=line.quantity_returned,
    )


def order_to_proto(order: Order) -> pb.Order:
    ship_to = order.ship_to
    return pb.Order(
        order_id=order.order_id,
        partner_id=order.partner_id,
        external_order_id=order.external_order_id,
        status=pb.OrderStatus.ValueType(order.status.value),
        fulfillment_step=pb.FulfillmentStep.ValueType(order.step.value),
        customer=common_pb2.PartyRef(
            party_id=order.customer.party_id, name=order.customer.name, email=order.customer.email
        ),
        ship_to=address_to_proto(ship_to),
        lines=[line_to_proto(line) for line in order.lines],
        currency_code=order.currency_code,
        service_level=carrier_pb2.ServiceLevel.ValueType(order.service_level.value),
        backorder_policy=pb.BackorderPolicy.ValueType(order.backorder_policy.value),
        subtotal=money_to_proto(order.subtotal),
        exception_reason=order.exception_reason,
        cancel_reason=order.cancel_reason,
        create_time=timestamp(order.created_at),
        update_time=timestamp(order.updated_at),
    )


def timeline_entry_to_proto(entry: TimelineEntry) -> pb.TimelineEntry:
    return pb.TimelineEntry(
        occur_time=timestamp(entry.occurred_at),
        kind=pb.TimelineEntryKind.ValueType(entry.kind.value),
        from_status=pb.OrderStatus.ValueType(entry.from_status.value if entry.from_status else 0),
        to_status=pb.OrderStatus.ValueType(entry.to_status.value if entry.to_status else 0),
        fulfillment_step=pb.FulfillmentStep.ValueType(entry.step.value),
        event_type=entry.event_type,
        event_id=entry.event_id,
        correlation_id=entry.correlation_id,
        detail=entry.detail,
        transition=entry.transition,
    )


# -- events consumed ---------------------------------------------------------------------------


def shipped_lines(shipment: shipment_pb2.Shipment) -> tuple[LineQuantity, ...]:
    """The shipment's units per order line, summed over its packages."""
    units: dict[int, int] = {}
    for package in shipment.packages:
        for item in package.items:
            units[item.order_line_number] = units.get(item.order_line_number, 0) + item.quantity
    return tuple(LineQuantity(n, q) for n, q in sorted(units.items()))


def package_item_lines(items: Iterable[shipment_pb2.PackageItem]) -> tuple[LineQuantity, ...]:
    """Units per order line of package items (a returned or cancelled shipment's `items`)."""
    units: dict[int, int] = {}
    for item in items:
        units[item.order_line_number] = units.get(item.order_line_number, 0) + item.quantity
    return tuple(LineQuantity(n, q) for n, q in sorted(units.items()))


def incident_text(incident_reason: int) -> str:
    """A carrier incident reason as words ("refused"); empty when unspecified or unknown."""
    known = tracking_pb2.IncidentReason.DESCRIPTOR.values_by_number.get(incident_reason)
    if not incident_reason or known is None:
        return ""
    return known.name.removeprefix("INCIDENT_REASON_").lower().replace("_", " ")


def invoiced_goods_lines(invoice: billing_pb2.Invoice) -> tuple[LineQuantity, ...]:
    """The invoice's goods units per order line (freight is not an order line)."""
    goods: dict[int, int] = {}
    for line in invoice.lines:
        if line.kind == billing_pb2.INVOICE_LINE_KIND_GOODS:
            goods[line.order_line_number] = goods.get(line.order_line_number, 0) + line.quantity
    return tuple(LineQuantity(n, q) for n, q in sorted(goods.items()))


# -- events published --------------------------------------------------------------------------

event_mapper = EventMapper("order")


@event_mapper.maps(m.OrderPlaced)
def _placed(event: m.OrderPlaced) -> Mapped:
    message = events_pb.OrderPlaced(
        order=order_to_proto(event.order), occur_time=timestamp(event.occurred_at)
    )
    return message, event.order_id


@event_mapper.maps(m.OrderAllocated)
def _allocated(event: m.OrderAllocated) -> Mapped:
    message = events_pb.OrderAllocated(
        order_id=event.order_id,
        partner_id=event.partner_id,
        reservation_ids=list(event.reservation_ids),
        lines=[line_to_proto(line) for line in event.lines],
        occur_time=timestamp(event.occurred_at),
    )
    return message, event.order_id


@event_mapper.maps(m.OrderBackordered)
def _backordered(event: m.OrderBackordered) -> Mapped:
    message = events_pb.OrderBackordered(
        order_id=event.order_id,
        partner_id=event.partner_id,
        lines=[line_to_proto(line) for line in event.lines],
        policy=pb.BackorderPolicy.ValueType(event.policy.value),
        occur_time=timestamp(event.occurred_at),
    )
    return message, event.order_id


@event_mapper.maps(m.OrderReleased)
def _released(event: m.OrderReleased) -> Mapped:
    message = events_pb.OrderReleased(
        order_id=event.order_id,
        partner_id=event.partner_id,
        reservation_ids=list(event.reservation_ids),
        occur_time=timestamp(event.occurred_at),
    )
    return message, event.order_id


@event_mapper.maps(m.OrderCancelled)
def _cancelled(event: m.OrderCancelled) -> Mapped:
    message = events_pb.OrderCancelled(
        order_id=event.order_id,
        partner_id=event.partner_id,
        reason=event.reason,
        released_reservation_ids=list(event.released_reservation_ids),
        occur_time=timestamp(event.occurred_at),
    )
    return message, event.order_id


@event_mapper.maps(m.OrderLinesCancelled)
def _lines_cancelled(event: m.OrderLinesCancelled) -> Mapped:
    message = events_pb.OrderLinesCancelled(
        order=order_to_proto(event.order),
        lines=[
            events_pb.CancelledLine(line_number=x.line_number, sku=x.sku, quantity=x.quantity)
            for x in event.lines
        ],
        reason=event.reason,
        occur_time=timestamp(event.occurred_at),
    )
    return message, event.order_id


@event_mapper.maps(m.OrderCompleted)
def _completed(event: m.OrderCompleted) -> Mapped:
    message = events_pb.OrderCompleted(
        order_id=event.order_id,
        partner_id=event.partner_id,
        invoice_ids=list(event.invoice_ids),
        occur_time=timestamp(event.occurred_at),
    )
    return message, event.order_id


@event_mapper.maps(m.OrderExceptionRaised)
def _exception_raised(event: m.OrderExceptionRaised) -> Mapped:
    message = events_pb.OrderExceptionRaised(
        order_id=event.order_id,
        partner_id=event.partner_id,
        episode=event.episode,
        step=pb.FulfillmentStep.ValueType(event.step.value),
        reason=event.reason,
        shipment_id=event.shipment_id,
        occur_time=timestamp(event.occurred_at),
    )
    return message, event.order_id


@event_mapper.maps(m.OrderExceptionCleared)
def _exception_cleared(event: m.OrderExceptionCleared) -> Mapped:
    message = events_pb.OrderExceptionCleared(
        order_id=event.order_id,
        partner_id=event.partner_id,
        episode=event.episode,
        clearance=events_pb.OrderExceptionClearance.ValueType(event.clearance.value),
        step=pb.FulfillmentStep.ValueType(event.step.value),
        reason=event.reason,
        occur_time=timestamp(event.occurred_at),
    )
    return message, event.order_id


# -- shipments returned to sender ----------------------------------------------------------------

# The reason on the lines of a returned shipment's credit request; billing puts it on the note.
RETURNED_TO_SENDER_REASON = "returned to sender"


@event_mapper.maps(m.ReturnedShipmentResolved)
def _returned_shipment_resolved(event: m.ReturnedShipmentResolved) -> Mapped:
    message = events_pb.OrderReturnedShipmentResolved(
        order=order_to_proto(event.order),
        shipment_id=event.shipment_id,
        resolution=pb.ReturnedShipmentResolution.ValueType(event.resolution.value),
        lines=[
            events_pb.ReturnedShipmentLine(
                line_number=x.line_number, sku=x.sku, quantity=x.quantity
            )
            for x in event.lines
        ],
        reason=event.reason,
        occur_time=timestamp(event.occurred_at),
    )
    return message, event.order_id


@event_mapper.maps(m.ReturnedShipmentCreditRequested)
def _returned_shipment_credit(event: m.ReturnedShipmentCreditRequested) -> Mapped:
    """Billing credits received returns at their invoiced prices (crossdock.return.received.v1);
    a returned shipment's credit goes the same way, the shipment's id standing for the return's."""
    at = timestamp(event.occurred_at)
    order_return = pb.Return(
        return_id=event.shipment_id,
        order_id=event.order_id,
        partner_id=event.partner_id,
        status=pb.RETURN_STATUS_RECEIVED,
        lines=[
            pb.ReturnLine(
                order_line_number=x.line_number,
                sku=x.sku,
                quantity_authorized=x.quantity,
                quantity_received=x.quantity,
                reason=RETURNED_TO_SENDER_REASON,
            )
            for x in event.lines
        ],
        return_location_id=event.location_id,
        create_time=at,
        update_time=at,
    )
    message = return_events_pb.ReturnReceived(order_return=order_return, occur_time=at)
    return message, event.shipment_id


# -- returns (RMA) -------------------------------------------------------------------------------

# Inventory's stock conditions; UNSPECIFIED is sellable (receipts that predate conditions).
_CONDITIONS = {
    inventory_pb2.STOCK_CONDITION_UNSPECIFIED: r.ReceivedCondition.SELLABLE,
    inventory_pb2.STOCK_CONDITION_SELLABLE: r.ReceivedCondition.SELLABLE,
    inventory_pb2.STOCK_CONDITION_DAMAGED: r.ReceivedCondition.DAMAGED,
    inventory_pb2.STOCK_CONDITION_SCRAP: r.ReceivedCondition.SCRAP,
    inventory_pb2.STOCK_CONDITION_QUARANTINE: r.ReceivedCondition.QUARANTINE,
}


def return_input_to_domain(order_return: svc.ReturnInput) -> ReturnRequest:
    return ReturnRequest(
        lines=tuple(
            ReturnLineRequest(
                order_line_number=line.order_line_number,
                quantity=line.quantity,
                disposition=r.ReturnDisposition(line.disposition),
                reason=line.reason,
            )
            for line in order_return.lines
        ),
        return_location_id=order_return.return_location_id,
    )


def return_to_proto(order_return: r.Return) -> pb.Return:
    return pb.Return(
        return_id=order_return.return_id,
        order_id=order_return.order_id,
        partner_id=order_return.partner_id,
        status=pb.ReturnStatus.ValueType(order_return.status.value),
        lines=[
            pb.ReturnLine(
                order_line_number=line.order_line_number,
                sku=line.sku,
                quantity_authorized=line.quantity_authorized,
                quantity_received=line.quantity_received,
                disposition=pb.ReturnDisposition.ValueType(line.disposition.value),
                reason=line.reason,
            )
            for line in order_return.lines
        ],
        return_location_id=order_return.return_location_id,
        create_time=timestamp(order_return.created_at),
        update_time=timestamp(order_return.updated_at),
        receipt_id=order_return.receipt_id,
        credit_note_ids=list(order_return.credit_note_ids),
    )


def return_receipt(receipt: inventory_pb2.Receipt) -> r.ReturnReceipt | None:
    """A receipt recorded against a return, or None for any other receipt (purchase orders,
    transfers, restocked cancellations...)."""
    if receipt.source != inventory_pb2.RECEIPT_SOURCE_RETURN or not receipt.source_reference:
        return None
    return r.ReturnReceipt(
        receipt_id=receipt.receipt_id,
        return_id=receipt.source_reference,
        location_id=receipt.location_id,
        units=tuple(
            r.ReceivedUnits(
                line.sku,
                int(line.quantity),
                # A condition newer than this code: held for inspection, the plan stands.
                _CONDITIONS.get(line.condition, r.ReceivedCondition.QUARANTINE),
            )
            for line in receipt.lines
        ),
    )


@event_mapper.maps(r.ReturnAuthorized)
def _return_authorized(event: r.ReturnAuthorized) -> Mapped:
    message = return_events_pb.ReturnAuthorized(
        order_return=return_to_proto(event.order_return), occur_time=timestamp(event.occurred_at)
    )
    return message, event.order_return.return_id


@event_mapper.maps(r.ReturnReceived)
def _return_received(event: r.ReturnReceived) -> Mapped:
    message = return_events_pb.ReturnReceived(
        order_return=return_to_proto(event.order_return),
        receipt_id=event.receipt_id,
        occur_time=timestamp(event.occurred_at),
    )
    return message, event.order_return.return_id
