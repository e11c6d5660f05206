"""One seeded order's history on the order side: the saga (pure) places it, takes the
reservation, the pick, the shipment's milestones and the invoice as the other services' steps
(bench/seed_services.py) produce them, and order's store keeps it COMPLETED.

The order's saga is driven through the same inputs the mesh's consumers feed it, so its lines,
reservations, picks, shipments, invoices, timeline and status are the ones a completed order
has; its commands (which the command worker would run) are never queued.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection

from bench.seed_events import Raised
from bench.seed_ids import SeededIds
from bench.seed_plan import PlannedOrder, currency
from services.kit.values import Address, Money
from services.order.adapters.store import repository as order_store
from services.order.domain import messages as order_msg
from services.order.domain.model import (
    BackorderPolicy,
    LineQuantity,
    Order,
    OrderInput,
    OrderLineInput,
    OrderStatus,
    PartyRef,
    PickedLine,
    ServiceLevel,
)
from services.order.domain.saga import FulfillmentSaga
from services.order.domain.validation import CatalogItem, StaticCatalog

_SAGA = FulfillmentSaga()
ORDER = "order"


class SeedingError(RuntimeError):
    """A seeded history did not take the path the mesh's would (the seeder is out of date)."""


@dataclass
class History:
    """One order's history as the services built it, batch step by batch step."""

    plan: PlannedOrder
    ids: SeededIds
    order: Order
    reserve: order_msg.ReserveStock
    reservation_id: str = ""
    pick_id: str = ""
    rate_id: str = ""
    label_id: str = ""
    tracking_number: str = ""
    shipment_id: str = ""
    invoice_id: str = ""
    applied: list[str] = field(default_factory=list)
    # service → the domain events its steps raised (written only for recent seeds).
    raised: dict[str, list[Raised]] = field(default_factory=lambda: defaultdict(list))

    def at(self, when: datetime) -> SeededIds:
        self.ids.now = when
        return self.ids

    @property
    def correlation_id(self) -> str:
        return f"seed-{self.plan.external_order_id}"

    def raise_all(self, service: str, events: Iterable[object], when: datetime) -> None:
        self.raised[service] += [Raised(e, when, self.correlation_id) for e in events]


def delivery_address(plan: PlannedOrder) -> Address:
    """The customer's address (order's ship-to, shipment's order reference)."""
    return Address(
        name=f"Customer {plan.customer_id}",
        lines=(f"{100 + plan.index % 900} Main Street",),
        city="Springfield",
        postal_code=f"{10000 + plan.index % 89999:05d}",
        country_code="US",
        region="IL",
    )


def _ctx(history: History, when: datetime, event_type: str) -> order_msg.Context:
    return order_msg.Context(
        when,
        correlation_id=history.correlation_id,
        event_id=history.at(when).event_id(),
        event_type=event_type,
    )


def _apply(history: History, fact: order_msg.SagaInput, when: datetime, event_type: str) -> None:
    result = _SAGA.apply(history.order, fact, _ctx(history, when, event_type))
    history.order = result.order
    history.raise_all("order", result.events, when)
    history.applied.append(event_type)


# -- order: place (pure) ------------------------------------------------------------------


def place(plan: PlannedOrder, partner_id: str, seed: int) -> History:
    """The order placed with its warehouse's stock in view: one reservation asked for."""
    ids = SeededIds(seed * 1_000_003 + plan.index, plan.at.placed)
    order_input = OrderInput(
        external_order_id=plan.external_order_id,
        customer=PartyRef(plan.customer_id, f"Customer {plan.customer_id}"),
        ship_to=delivery_address(plan),
        lines=tuple(
            OrderLineInput(line.sku, line.quantity, Money(currency(), line.unit_price))
            for line in plan.lines
        ),
        currency_code=currency(),
        service_level=ServiceLevel.STANDARD,
        backorder_policy=BackorderPolicy.SHIP_AVAILABLE,
    )
    skus = {line.sku for line in plan.lines}
    demand: dict[str, int] = defaultdict(int)
    for line in plan.lines:
        demand[line.sku] += line.quantity
    result = _SAGA.place(
        order_id=ids.new_id("ord"),
        partner_id=partner_id,
        order_input=order_input,
        catalog=StaticCatalog([CatalogItem(sku, True) for sku in skus]),
        ctx=order_msg.Context(plan.at.placed, correlation_id=f"seed-{plan.external_order_id}"),
        availability={sku: {plan.location_id: demand[sku]} for sku in skus},
    )
    asks = [c for c in result.commands if isinstance(c, order_msg.ReserveStock)]
    if len(asks) != 1:
        raise SeedingError(f"order {plan.index}: expected one ReserveStock, saga asked {asks}")
    history = History(plan, ids, result.order, asks[0])
    history.raise_all("order", result.events, plan.at.placed)
    return history


def take_reservation_and_pick(history: History) -> None:
    """The saga hears of the reservation (and releases it to the warehouse), then the pick."""
    at, held = history.plan.at, history.reserve.lines
    _apply(
        history,
        order_msg.ReservationMade(history.reserve.idempotency_key, history.reservation_id, held),
        at.reserved,
        "ReservationMade",
    )
    _apply(
        history,
        order_msg.PickCompleted(
            history.pick_id,
            history.reservation_id,
            tuple(PickedLine(h.line_number, h.sku, h.quantity) for h in held),
        ),
        at.picked,
        "PickCompleted",
    )


# -- order: the rest of the saga, stored ----------------------------------------------------


def _shipped(history: History) -> tuple[LineQuantity, ...]:
    return tuple(LineQuantity(h.line_number, h.quantity) for h in history.reserve.lines)


def complete(history: History) -> None:
    """The saga hears the shipment's milestones and the invoice: COMPLETED."""
    at, lines = history.plan.at, _shipped(history)
    shipment, location = history.shipment_id, history.plan.location_id
    _apply(
        history, order_msg.ShipmentCreated(shipment, location, lines), at.picked, "ShipmentCreated"
    )
    _apply(
        history,
        order_msg.ShipmentManifested(shipment, location, lines),
        at.manifested,
        "ShipmentManifested",
    )
    _apply(
        history,
        order_msg.ShipmentDelivered(shipment, location, lines),
        at.delivered,
        "ShipmentDelivered",
    )
    _apply(
        history,
        order_msg.InvoicePosted(history.invoice_id, shipment, lines),
        at.invoiced,
        "InvoicePosted",
    )
    if history.order.status is not OrderStatus.COMPLETED:
        raise SeedingError(
            f"order {history.plan.index} ended {history.order.status.name} "
            f"after {', '.join(history.applied)}"
        )


def write_orders(conn: Connection, batch: Sequence[History]) -> None:
    for history in batch:
        order_store.insert_order(conn, history.order)
