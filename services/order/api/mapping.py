"""Proto ↔ domain translation for orders, and order domain events → event messages."""

from __future__ import annotations

from crossdock.carrier.v1 import carrier_pb2
from crossdock.common.v1 import common_pb2
from crossdock.events.v1 import order_events_pb2 as events_pb
from crossdock.order.v1 import order_pb2 as pb
from crossdock.order.v1 import order_service_pb2 as svc
from google.protobuf.message import Message

from services.kit.proto_values import (
    address_to_domain,
    address_to_proto,
    money_to_domain,
    money_to_proto,
    timestamp,
)
from services.order.domain import messages as m
from services.order.domain.model import (
    BackorderPolicy,
    Order,
    OrderInput,
    OrderLine,
    OrderLineInput,
    PartyRef,
    ServiceLevel,
    TimelineEntry,
)


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
    )


def event_to_message(event: m.OrderEvent, order: Order) -> Message:
    """The `crossdock.events.v1` message of an order domain event."""
    at = timestamp(event.occurred_at)
    if isinstance(event, m.OrderPlaced):
        return events_pb.OrderPlaced(order=order_to_proto(order), occur_time=at)
    if isinstance(event, m.OrderAllocated):
        return events_pb.OrderAllocated(
            order_id=event.order_id,
            partner_id=event.partner_id,
            reservation_ids=list(event.reservation_ids),
            lines=[line_to_proto(line) for line in event.lines],
            occur_time=at,
        )
    if isinstance(event, m.OrderBackordered):
        return events_pb.OrderBackordered(
            order_id=event.order_id,
            partner_id=event.partner_id,
            lines=[line_to_proto(line) for line in event.lines],
            policy=pb.BackorderPolicy.ValueType(event.policy.value),
            occur_time=at,
        )
    if isinstance(event, m.OrderReleased):
        return events_pb.OrderReleased(
            order_id=event.order_id,
            partner_id=event.partner_id,
            reservation_ids=list(event.reservation_ids),
            occur_time=at,
        )
    if isinstance(event, m.OrderCancelled):
        return events_pb.OrderCancelled(
            order_id=event.order_id,
            partner_id=event.partner_id,
            reason=event.reason,
            released_reservation_ids=list(event.released_reservation_ids),
            occur_time=at,
        )
    if isinstance(event, m.OrderCompleted):
        return events_pb.OrderCompleted(
            order_id=event.order_id,
            partner_id=event.partner_id,
            invoice_ids=list(event.invoice_ids),
            occur_time=at,
        )
    raise TypeError(f"unknown order event {type(event).__name__}")
