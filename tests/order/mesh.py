"""A test double of the mesh around the saga: the real inventory domain, plus fake runner,
consumers, warehouse, shipment and billing, all in memory and driven step by step.

Nothing runs on its own: commands, order events and saga inputs wait in queues until a test
(or the stateful machine) delivers them, in any order it likes. `drain()` delivers everything
first-in first-out until the mesh is quiet.

Billing keeps a ledger of invoice and credit note values: invoices on delivery (or at pickup for
orders billed on ship, `on_ship_orders`), credit notes for the returned-to-sender credits the
order asks for. It credits the invoice the order names; the real billing credits each line
against the first invoice that billed it, which is the same money unless a line was split over
several invoices (see services/order/README.md).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from decimal import Decimal

from services.inventory import domain as inv
from services.inventory.domain.errors import LocationInactive, ReservationNotActive
from services.inventory.domain.repository import seed
from services.order.domain import (
    AvailabilityObserved,
    CancelPickTask,
    Context,
    CreditNoteObserved,
    FulfillmentSaga,
    HeldLine,
    InvoicePosted,
    LineQuantity,
    Order,
    OrderEvent,
    OrderInput,
    OrderReleased,
    OrderStatus,
    PickCompleted,
    PickedLine,
    ReleaseReservation,
    RequestAvailability,
    ReservationFailed,
    ReservationMade,
    ReservationObserved,
    ReservationReleasedObserved,
    ReserveStock,
    RestockPicked,
    ReturnedShipmentCreditRequested,
    ReturnedShipmentResolution,
    SagaCommand,
    SagaInput,
    SagaResult,
    ShipmentCancelledObserved,
    ShipmentDelivered,
    ShipmentManifested,
    ShipmentReturnedToSender,
    StepTimeouts,
    StockAvailable,
    cancellation,
    wants_stock,
)
from services.order.domain.return_rules import (
    ReturnLineRequest,
    ReturnPolicy,
    ReturnRequest,
    authorize,
)
from services.order.domain.returns import (
    ReceivedCondition,
    ReceivedUnits,
    Return,
    ReturnDisposition,
    ReturnReceipt,
    ReturnStatus,
    credit,
    receive,
    record_returned_units,
    returned_units,
)
from tests.order.support import CATALOG, EAST, NORTH, PARTNER, WEST, Clock

SKUS = ("WIDGET", "GADGET", "GIZMO")
RETURN_POLICY = ReturnPolicy(frozenset({"NO_LONGER_NEEDED"}))
LOCATIONS = (EAST, WEST, NORTH)


@dataclass
class ShipmentState:
    order_id: str
    location_id: str
    lines: tuple[LineQuantity, ...]
    skus: tuple[str, ...] = ()
    picked_up: bool = False
    delivered: bool = False
    invoiced: bool = False
    cancelled: bool = False
    returned: bool = False  # the carrier brought it back to sender
    labels: int = 0  # labels booked at the carrier for it
    voided: int = 0  # of those, voided


@dataclass(frozen=True)
class LedgerEntry:
    """A posted invoice or credit note, as billing's ledger has it."""

    order_id: str
    shipment_id: str
    invoice_id: str
    value: Decimal


@dataclass
class Mesh:
    timeouts: StepTimeouts = field(default_factory=StepTimeouts)
    clock: Clock = field(default_factory=Clock)

    def __post_init__(self) -> None:
        self.repo = inv.InMemoryInventory()
        self.ids = inv.SequentialIds()
        seed(
            self.repo,
            [inv.Item(sku, sku.title()) for sku in SKUS],
            [inv.Location(loc, loc.title()) for loc in LOCATIONS],
        )
        self.saga = FulfillmentSaga(self.timeouts)
        self.orders: dict[str, Order] = {}
        self.commands: list[SagaCommand] = []
        self.run_commands: list[SagaCommand] = []
        self.order_events: list[OrderEvent] = []  # written to the outbox, not yet consumed
        self.published: list[OrderEvent] = []
        self.inbox: list[tuple[str, SagaInput]] = []
        self.history: list[tuple[str, SagaInput]] = []
        self.picked: list[inv.PickCompleted] = []
        self.shipments: dict[str, ShipmentState] = {}
        self.cancelled_orders: set[str] = set()  # what the shipment service was told
        self.units_brought_in = 0  # purchase-order receipts and adjustments, for conservation
        self.on_ship_orders: set[str] = set()  # billed when the carrier takes the parcel
        self.invoices: dict[str, LedgerEntry] = {}  # billing's ledger, by invoice id
        self.credit_notes: dict[str, LedgerEntry] = {}  # by billing's source key
        self.returns: dict[str, Return] = {}  # RMAs, as the order service stores them
        self._keys = 0

    # -- the order service --------------------------------------------------------------

    def place(self, order_id: str, order: OrderInput, *, with_availability: bool = True) -> Order:
        availability = self.availability(tuple(line.sku for line in order.lines))
        result = self.saga.place(
            order_id=order_id,
            partner_id=PARTNER,
            order_input=order,
            catalog=CATALOG,
            ctx=self.clock.ctx(f"corr-{order_id}"),
            availability=availability if with_availability else None,
        )
        self.orders[order_id] = result.order
        self._absorb(result)
        return result.order

    def apply(self, order_id: str, saga_input: SagaInput) -> SagaResult:
        result = self.saga.apply(
            self.orders[order_id], saga_input, self.clock.ctx(f"corr-{order_id}")
        )
        self.history.append((order_id, saga_input))
        self._absorb(result)
        return result

    def cancel(self, order_id: str, reason: str = "customer asked") -> SagaResult:
        """The order service's CancelOrder: shipment acts first when the warehouse may have
        picked (refusing once a parcel is picked up), then the saga commits."""
        order = self.orders[order_id]
        if order.status is not OrderStatus.CANCELLED:
            cancellation.ensure_cancellable(order)
            if cancellation.needs_shipment_cancel(order):
                self.cancel_shipments(order_id, reason)
        result = self.saga.cancel(order, reason, self.clock.ctx())
        self._absorb(result)
        return result

    def tick(self, order_id: str) -> SagaResult:
        result = self.saga.on_tick(self.orders[order_id], self.clock.now)
        self._absorb(result)
        return result

    def retry(self, order_id: str) -> SagaResult:
        result = self.saga.retry(self.orders[order_id], self.clock.ctx())
        self._absorb(result)
        return result

    def resolve(
        self,
        order_id: str,
        shipment_id: str,
        resolution: ReturnedShipmentResolution,
        reason: str = "operator decided",
    ) -> SagaResult:
        """ReshipReturnedShipment / CancelAndCreditReturnedShipment: one unit of work."""
        result = self.saga.resolve_returned_shipment(
            self.orders[order_id], shipment_id, resolution, reason, self.clock.ctx()
        )
        self._absorb(result)
        return result

    def _absorb(self, result: SagaResult) -> None:
        self.commands += result.commands
        self.order_events += result.events

    # -- the runner and the consumers ----------------------------------------------------

    def run_command(self, index: int = 0) -> None:
        """Execute a queued command against inventory; its answer goes to the inbox."""
        command = self.commands.pop(index)
        self.run_commands.append(command)
        self.execute(command)

    def execute(self, command: SagaCommand) -> None:
        now = self.clock.now
        if isinstance(command, RequestAvailability):
            answer = AvailabilityObserved(command.request_id, self.availability(command.skus))
            self.inbox.append((command.order_id, answer))
        elif isinstance(command, ReserveStock):
            self._reserve(command)
        elif isinstance(command, ReleaseReservation):
            try:
                outcome = inv.release(self.repo, command.reservation_id, command.reason, now)
            except ReservationNotActive:
                return  # already picked: the pick's own compensation restocks it
            self.consume_inventory_events(outcome.events)
        elif isinstance(command, CancelPickTask):
            for task in self.repo.pick_tasks(
                reservation_id=command.reservation_id, status=inv.PickStatus.OPEN
            ):
                inv.cancel_pick_task(self.repo, task.pick_id, now)
        elif isinstance(command, RestockPicked):
            lines = tuple(inv.ReceiptLine(h.sku, h.quantity) for h in command.lines)
            request = inv.ReceiveStock(
                command.location_id,
                inv.ReceiptSource.RETURN,
                command.order_id,
                lines,
                command.idempotency_key,
            )
            self.consume_inventory_events(inv.receive(self.repo, self.ids, request, now).events)

    def _reserve(self, command: ReserveStock) -> None:
        lines = tuple(inv.ReserveLine(h.line_number, h.sku, h.quantity) for h in command.lines)
        request = inv.ReserveStock(
            command.order_id,
            command.location_id,
            lines,
            inv.ReservationPolicy.PARTIAL,
            command.idempotency_key,
        )
        try:
            outcome = inv.reserve(self.repo, self.ids, request, self.clock.now)
        except LocationInactive as error:
            self.inbox.append(
                (command.order_id, ReservationFailed(command.idempotency_key, error.message))
            )
            return
        reservation = outcome.reservation
        held = (
            tuple(HeldLine(ln.order_line_number, ln.sku, ln.quantity) for ln in reservation.lines)
            if reservation
            else ()
        )
        answer = ReservationMade(
            command.idempotency_key, reservation.reservation_id if reservation else None, held
        )
        self.inbox.append((command.order_id, answer))
        self.consume_inventory_events(outcome.events)

    def consume_inventory_events(self, events: tuple[inv.InventoryEvent, ...]) -> None:
        """The order service's consumers of inventory events, as saga inputs."""
        for event in events:
            if isinstance(event, inv.StockReserved):
                r = event.reservation
                self.inbox.append(
                    (r.order_id, ReservationObserved(r.reservation_id, r.location_id))
                )
            elif isinstance(event, inv.ReservationReleased):
                r = event.reservation
                self.inbox.append(
                    (r.order_id, ReservationReleasedObserved(r.reservation_id, event.reason))
                )
            elif isinstance(event, inv.PickCompleted):
                self.picked.append(event)
                if event.order_id in self.cancelled_orders:
                    self._cancel_pick(event, "order cancelled")
                lines = tuple(
                    PickedLine(ln.order_line_number, ln.sku, ln.quantity_picked, ln.quantity_short)
                    for ln in event.lines
                )
                self.inbox.append(
                    (event.order_id, PickCompleted(event.pick_id, event.reservation_id, lines))
                )
            elif isinstance(event, inv.StockReceived):
                for position in event.positions:
                    self._stock_arrived(
                        position.sku, position.location_id, event.receipt.receipt_id
                    )
            elif isinstance(event, inv.StockAdjusted) and event.adjustment.quantity_delta > 0:
                adjustment = event.adjustment
                self._stock_arrived(
                    adjustment.sku, adjustment.location_id, adjustment.adjustment_id
                )

    def _stock_arrived(self, sku: str, location_id: str, source_id: str) -> None:
        # The consumer fans out to the orders waiting for the SKU, oldest first.
        for order_id, order in self.orders.items():
            if wants_stock(order, sku):
                self.inbox.append((order_id, StockAvailable(sku, location_id, source_id)))

    def deliver(self, index: int = 0) -> SagaResult:
        order_id, saga_input = self.inbox.pop(index)
        return self.apply(order_id, saga_input)

    def publish(self, index: int = 0) -> None:
        """Inventory's consumer of order events: a released reservation becomes a pick task."""
        event = self.order_events.pop(index)
        self.published.append(event)
        if isinstance(event, OrderReleased):
            for reservation_id in event.reservation_ids:
                # A reservation released meanwhile (cancel) has nothing to pick.
                with contextlib.suppress(ReservationNotActive):
                    inv.create_pick_task(self.repo, self.ids, reservation_id, self.clock.now)
        elif isinstance(event, ReturnedShipmentCreditRequested):
            self._credit(event)

    def _credit(self, event: ReturnedShipmentCreditRequested) -> None:
        """Billing's consumer of return.received: one credit note per (return, invoice), at the
        invoiced unit prices; its CreditNotePosted comes back to the order."""
        key = f"{event.shipment_id}:{event.invoice_id}"
        note_id = f"crn_{event.invoice_id}"
        if key not in self.credit_notes:
            value = self._value(event.order_id, {h.line_number: h.quantity for h in event.lines})
            self.credit_notes[key] = LedgerEntry(
                event.order_id, event.shipment_id, event.invoice_id, value
            )
        self.inbox.append(
            (event.order_id, CreditNoteObserved(note_id, event.invoice_id, event.shipment_id))
        )

    def _value(self, order_id: str, units: dict[int, int]) -> Decimal:
        order = self.orders[order_id]
        return sum((order.line(n).unit_price.amount * q for n, q in units.items()), Decimal(0))

    @property
    def quiet(self) -> bool:
        return not (self.commands or self.inbox or self.order_events)

    def drain(self, limit: int = 10_000) -> None:
        for _ in range(limit):
            if self.commands:
                self.run_command()
            elif self.order_events:
                self.publish()
            elif self.inbox:
                self.deliver()
            else:
                self.credit_received_returns()
                return
        raise AssertionError("the mesh did not settle")

    # -- inventory, warehouse, shipment and billing ----------------------------------------

    def availability(self, skus: tuple[str, ...]) -> dict[str, dict[str, int]]:
        return {
            a.sku: {p.location_id: p.available for p in a.positions}
            for a in inv.availability(self.repo, tuple(dict.fromkeys(skus)))
        }

    def receive(self, sku: str, location_id: str, quantity: int) -> None:
        self.units_brought_in += quantity
        self._keys += 1
        request = inv.ReceiveStock(
            location_id,
            inv.ReceiptSource.PURCHASE_ORDER,
            "PO-9",
            (inv.ReceiptLine(sku, quantity),),
            f"po-{self._keys:06d}",
        )
        self.consume_inventory_events(
            inv.receive(self.repo, self.ids, request, self.clock.now).events
        )

    def open_picks(self, order_id: str | None = None) -> list[inv.PickTask]:
        tasks = self.repo.pick_tasks(status=inv.PickStatus.OPEN)
        return [t for t in tasks if order_id is None or t.order_id == order_id]

    def confirm_pick(self, task: inv.PickTask, shorts: dict[int, int] | None = None) -> None:
        shorts = shorts or {}
        lines = tuple(
            inv.PickConfirmationLine(
                ln.order_line_number,
                ln.sku,
                ln.quantity - shorts.get(ln.order_line_number, 0),
                shorts.get(ln.order_line_number, 0),
            )
            for ln in task.lines
        )
        self.consume_inventory_events(
            inv.confirm_pick(self.repo, self.ids, task.pick_id, lines, self.clock.now).events
        )

    def shippable(self) -> list[inv.PickCompleted]:
        """Picks with picked units, not shipped yet, of orders the shipment service may ship."""
        return [
            p
            for p in self.picked
            if f"shp_{p.pick_id}" not in self.shipments
            and any(ln.quantity_picked for ln in p.lines)
            and p.order_id not in self.cancelled_orders
        ]

    def cancel_shipments(self, order_id: str, reason: str) -> None:
        """Shipment's CancelOrderShipments: all or none, refused once the carrier has one."""
        mine = {sid: s for sid, s in self.shipments.items() if s.order_id == order_id}
        if any(s.picked_up or s.delivered for s in mine.values() if not s.cancelled):
            order = self.orders[order_id]
            cancellation.refuse(order, "the carrier has the parcels", "picked up", "SHIPMENT")
        self.cancelled_orders.add(order_id)
        for shipment_id, shipment in mine.items():
            if not shipment.cancelled:
                self._cancel_shipment(shipment_id, shipment, reason)
        for pick in self.picked:
            if pick.order_id == order_id and f"shp_{pick.pick_id}" not in self.shipments:
                self._cancel_pick(pick, reason)

    def _cancel_pick(self, pick: inv.PickCompleted, reason: str) -> None:
        """A pick of a cancelled order: a CANCELLED shipment at once (if anything was picked)."""
        shipment_id = f"shp_{pick.pick_id}"
        if shipment_id in self.shipments or not any(ln.quantity_picked for ln in pick.lines):
            return
        shipment = self._shipment_of(pick)
        self.shipments[shipment_id] = shipment
        self._cancel_shipment(shipment_id, shipment, reason)

    def _cancel_shipment(self, shipment_id: str, shipment: ShipmentState, reason: str) -> None:
        """CANCELLED; its label, if it has one, voided; inventory puts the units back (keyed on
        the shipment), order hears of it."""
        shipment.cancelled = True
        shipment.voided = shipment.labels
        lines = tuple(
            inv.ReceiptLine(sku, q.quantity)
            for sku, q in zip(shipment.skus, shipment.lines, strict=True)
        )
        request = inv.ReceiveStock(
            shipment.location_id,
            inv.ReceiptSource.CANCELLATION,
            shipment_id,
            lines,
            f"cancel/{shipment_id}",
        )
        self.consume_inventory_events(
            inv.receive(self.repo, self.ids, request, self.clock.now).events
        )
        self.inbox.append(
            (
                shipment.order_id,
                ShipmentCancelledObserved(
                    shipment_id, shipment.location_id, shipment.lines, reason
                ),
            )
        )

    def _shipment_of(self, pick: inv.PickCompleted) -> ShipmentState:
        picked = [ln for ln in pick.lines if ln.quantity_picked]
        return ShipmentState(
            pick.order_id,
            pick.location_id,
            tuple(LineQuantity(ln.order_line_number, ln.quantity_picked) for ln in picked),
            tuple(ln.sku for ln in picked),
        )

    def pick_up(self, shipment_id: str) -> None:
        """The carrier takes the parcels (the order hears nothing until delivery)."""
        self.shipments[shipment_id].picked_up = True

    def ship(self, pick: inv.PickCompleted) -> str:
        shipment_id = f"shp_{pick.pick_id}"
        shipment = self._shipment_of(pick)
        shipment.labels = 1  # booked under the shipment id as idempotency key: once
        self.shipments[shipment_id] = shipment
        self.inbox.append(
            (pick.order_id, ShipmentManifested(shipment_id, pick.location_id, shipment.lines))
        )
        return shipment_id

    def deliver_shipment(self, shipment_id: str) -> None:
        shipment = self.shipments[shipment_id]
        shipment.picked_up = True
        shipment.delivered = True
        self.inbox.append(
            (
                shipment.order_id,
                ShipmentDelivered(shipment_id, shipment.location_id, shipment.lines),
            )
        )

    def invoice(self, shipment_id: str) -> None:
        """Billing posts the shipment's invoice (once: on delivery, or at pickup when billed on
        ship) and the order hears of it."""
        shipment = self.shipments[shipment_id]
        shipment.invoiced = True
        invoice_id = f"inv_{shipment_id}"
        value = self._value(shipment.order_id, {q.line_number: q.quantity for q in shipment.lines})
        self.invoices[invoice_id] = LedgerEntry(shipment.order_id, shipment_id, invoice_id, value)
        self.inbox.append(
            (shipment.order_id, InvoicePosted(invoice_id, shipment_id, shipment.lines))
        )

    def return_to_sender(self, shipment_id: str, *, sellable: bool = False) -> None:
        """The carrier brings the parcel back: inventory receives its units at the warehouse it
        left from (keyed on the shipment, sellable or in quarantine) and the order hears of it."""
        shipment = self.shipments[shipment_id]
        shipment.picked_up = True
        shipment.returned = True
        condition = inv.StockCondition.SELLABLE if sellable else inv.StockCondition.QUARANTINE
        lines = tuple(
            inv.ReceiptLine(
                sku,
                q.quantity,
                condition=condition,
                reason="" if sellable else "returned to sender",
            )
            for sku, q in zip(shipment.skus, shipment.lines, strict=True)
        )
        request = inv.ReceiveStock(
            shipment.location_id,
            inv.ReceiptSource.RETURNED_TO_SENDER,
            shipment_id,
            lines,
            f"rts/{shipment_id}",
        )
        self.consume_inventory_events(
            inv.receive(self.repo, self.ids, request, self.clock.now).events
        )
        self.inbox.append(
            (
                shipment.order_id,
                ShipmentReturnedToSender(
                    shipment_id, shipment.location_id, shipment.lines, "recipient absent"
                ),
            )
        )

    # -- returns (RMA): authorized by the order, received by the warehouse, credited ---------

    def authorize_return(self, order_id: str, units: dict[int, int]) -> Return:
        """CreateReturn; ReturnNotAllowed (or InvalidArgument) exactly as the service answers."""
        order = self.orders[order_id]
        request = ReturnRequest(
            tuple(
                ReturnLineRequest(n, q, ReturnDisposition.RESTOCK, "NO_LONGER_NEEDED")
                for n, q in sorted(units.items())
            )
        )
        mine = [r for r in self.returns.values() if r.order_id == order_id]
        authorized, _ = authorize(
            order,
            mine,
            request,
            RETURN_POLICY,
            return_id=f"ret_{len(self.returns) + 1}",
            now=self.clock.now,
        )
        self.returns[authorized.return_id] = authorized
        return authorized

    def receive_return(self, return_id: str, *, damaged: bool = False) -> None:
        """The warehouse receives the goods (keyed on the return): inventory books them, the
        order marks the return received, billing credits the received units at the invoiced
        prices, and the order marks it credited and counts the units returned."""
        authorized = self.returns[return_id]
        order = self.orders[authorized.order_id]
        skus = {line.line_number: line.sku for line in order.lines}
        condition = inv.StockCondition.DAMAGED if damaged else inv.StockCondition.SELLABLE
        lines = tuple(
            inv.ReceiptLine(
                line.sku,
                line.quantity_authorized,
                condition=condition,
                reason="damaged in transit" if damaged else "",
            )
            for line in authorized.lines
        )
        request = inv.ReceiveStock(
            authorized.return_location_id,
            inv.ReceiptSource.RETURN,
            return_id,
            lines,
            f"return/{return_id}",
        )
        outcome = inv.receive(self.repo, self.ids, request, self.clock.now)
        if not outcome.replayed:
            self.units_brought_in += sum(line.quantity for line in lines)
        self.consume_inventory_events(outcome.events)
        receipt = ReturnReceipt(
            outcome.receipt.receipt_id,
            return_id,
            authorized.return_location_id,
            tuple(
                ReceivedUnits(line.sku, line.quantity, ReceivedCondition[condition.name])
                for line in lines
            ),
        )
        current = receive(authorized, receipt, self.clock.now).order_return
        self.returns[return_id] = current
        mine = [r for r in self.returns.values() if r.order_id == current.order_id]
        record_returned_units(order, returned_units(mine), self.clock.now)
        assert all(skus[line.order_line_number] == line.sku for line in current.lines)
        self.credit_received_returns()

    def credit_received_returns(self) -> None:
        """Billing's side of return.received: a credit note at the invoiced prices, once per
        return, as soon as the returned units are invoiced (billing waits for the invoice)."""
        for return_id, received in sorted(self.returns.items()):
            key = f"return:{return_id}"
            if received.status is not ReturnStatus.RECEIVED or key in self.credit_notes:
                continue
            order = self.orders[received.order_id]
            units = {
                line.order_line_number: line.quantity_received
                for line in received.lines
                if line.quantity_received
            }
            if any(order.line(n).quantity_invoiced < q for n, q in units.items()):
                continue
            value = self._value(received.order_id, units)
            self.credit_notes[key] = LedgerEntry(received.order_id, return_id, "", value)
            credited = credit(received, f"crn_{return_id}", self.clock.now).order_return
            self.returns[return_id] = credited

    def returned_value(self, order_id: str) -> Decimal:
        """The value of the units the customer sent back and the warehouse received."""
        units: dict[int, int] = {}
        for r in self.returns.values():
            if r.order_id == order_id:
                for line in r.lines:
                    units[line.order_line_number] = (
                        units.get(line.order_line_number, 0) + line.quantity_received
                    )
        return self._value(order_id, units)

    def ledger(self, order_id: str) -> tuple[Decimal, Decimal]:
        """(Σ invoiced, Σ credited) of an order in billing's ledger."""
        invoiced = sum(
            (x.value for x in self.invoices.values() if x.order_id == order_id), Decimal(0)
        )
        credited = sum(
            (x.value for x in self.credit_notes.values() if x.order_id == order_id), Decimal(0)
        )
        return invoiced, credited

    def delivered_value(self, order_id: str) -> Decimal:
        """The value of the order's units the carrier delivered and the customer kept."""
        return -self.returned_value(order_id) + sum(
            (
                self._value(order_id, {q.line_number: q.quantity for q in s.lines})
                for s in self.shipments.values()
                if s.order_id == order_id and s.delivered
            ),
            Decimal(0),
        )

    def fulfil_everything(self) -> None:
        """Warehouse, carriers and billing do their job for every order until nothing is left."""
        self.drain()
        while self.open_picks() or self.shippable() or self._undelivered() or self._uninvoiced():
            for task in self.open_picks():
                self.confirm_pick(task)
            self.drain()
            for pick in self.shippable():
                self.ship(pick)
            for shipment_id in self._undelivered():
                self.deliver_shipment(shipment_id)
            for shipment_id in self._uninvoiced():
                self.invoice(shipment_id)
            self.drain()

    def units_out(self) -> int:
        """Units that left the books and are not back: picked onto a shipment that was not
        cancelled or returned to sender, or written off as short (never on the shelf)."""
        out = 0
        for pick in self.picked:
            shipment = self.shipments.get(f"shp_{pick.pick_id}")
            back = shipment is not None and (shipment.cancelled or shipment.returned)
            out += sum(ln.quantity_short + (0 if back else ln.quantity_picked) for ln in pick.lines)
        return out

    def _undelivered(self) -> list[str]:
        return [
            sid
            for sid, s in self.shipments.items()
            if not (s.delivered or s.cancelled or s.returned)
        ]

    def _uninvoiced(self) -> list[str]:
        return [sid for sid, s in self.shipments.items() if s.delivered and not s.invoiced]

    def context(self) -> Context:
        return self.clock.ctx()
