"""Random interleavings of orders, commands, events, warehouse work, carriers (pickups,
deliveries, failures, parcels returned to sender), billing (on delivery, or on ship), clock ticks,
cancellations at any stage, retries and operators' decisions on returned parcels (reship, or
cancel and credit) never break an invariant of the order saga, of the stock or of the money:
stock is conserved counting what came back and nothing is negative, nothing cancelled is
invoiced, one invoice per delivered shipment, Σ invoiced - Σ credited of an order is the value of
the units it delivered, and a cancel is refused exactly when a carrier has the parcels.

The saga runs against the real inventory domain (tests/order/mesh.py). Commands, events and
answers wait in queues and are delivered in random order, re-run, and replayed, as a runner
with retries and at-least-once consumers would.

Determinism: derandomized (fixed seed, no example database) so CI is reproducible; set
CROSSDOCK_FUZZ=1 to explore with random seeds and more examples.
"""

from __future__ import annotations

import copy
import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from services.inventory import domain as inv
from services.inventory.domain.errors import InsufficientStockForAdjustment
from services.kit.errors import Conflict
from services.order.domain import (
    BackorderPolicy,
    HoldStatus,
    Order,
    OrderStatus,
    PickCompleted,
    ReleaseReservation,
    RequestAvailability,
    ReturnedShipmentResolution,
    ShipmentFailed,
    StepTimeouts,
    figures,
)
from services.order.domain.errors import (
    NotFound,
    OrderNotCancellable,
    ReturnedShipmentAlreadyResolved,
    ReturnedShipmentAwaitsDecision,
    ReturnNotAllowed,
    ShipmentNotReturnedToSender,
)
from services.order.domain.model import InvoiceRecord
from services.order.domain.progress import (
    STEP_OF_STATUS,
    billed_invoices,
    derive_status,
    undecided_returns,
)
from services.order.domain.returns import ReturnStatus
from tests.order.mesh import LOCATIONS, SKUS, Mesh, ShipmentState
from tests.order.support import order_input

FUZZ = os.environ.get("CROSSDOCK_FUZZ") == "1"
MAX_ORDERS = 4
TIMEOUTS = StepTimeouts(
    reserve=timedelta(minutes=30),
    backorder=timedelta(hours=6),
    pick=timedelta(hours=1),
    shipment=timedelta(hours=2),
    delivery=timedelta(hours=4),
    invoice=timedelta(hours=2),
)
HOLD_OF = {
    inv.ReservationStatus.ACTIVE: HoldStatus.ACTIVE,
    inv.ReservationStatus.RELEASED: HoldStatus.RELEASED,
    inv.ReservationStatus.CONSUMED: HoldStatus.CONSUMED,
}


def _pick(data: st.DataObject, items: list):  # type: ignore[no-untyped-def, type-arg]
    return data.draw(st.sampled_from(items))


class SagaMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.mesh = Mesh(timeouts=TIMEOUTS)
        self.terminal: dict[str, tuple[OrderStatus, tuple[object, ...]]] = {}
        for sku in SKUS:
            self.mesh.receive(sku, LOCATIONS[0], 4)

    # -- orders and stock -----------------------------------------------------------------

    @precondition(lambda self: len(self.mesh.orders) < MAX_ORDERS)
    @rule(
        lines=st.lists(
            st.tuples(st.sampled_from(SKUS), st.integers(1, 5)),
            min_size=1,
            max_size=3,
            unique_by=lambda t: t[0],
        ),
        policy=st.sampled_from(BackorderPolicy),
        with_availability=st.booleans(),
        on_ship=st.booleans(),
    )
    def place(
        self,
        lines: list[tuple[str, int]],
        policy: BackorderPolicy,
        with_availability: bool,
        on_ship: bool,
    ) -> None:
        order_id = f"ord_{len(self.mesh.orders) + 1}"
        if on_ship:
            self.mesh.on_ship_orders.add(order_id)
        self.mesh.place(
            order_id, order_input(*lines, policy=policy), with_availability=with_availability
        )

    @rule(
        sku=st.sampled_from(SKUS), location=st.sampled_from(LOCATIONS), quantity=st.integers(1, 6)
    )
    def receive(self, sku: str, location: str, quantity: int) -> None:
        self.mesh.receive(sku, location, quantity)

    @rule(
        sku=st.sampled_from(SKUS),
        location=st.sampled_from(LOCATIONS),
        delta=st.integers(-4, 4).filter(bool),
    )
    def adjust(self, sku: str, location: str, delta: int) -> None:
        reason = inv.AdjustmentReason.FOUND if delta > 0 else inv.AdjustmentReason.DAMAGE
        request = inv.AdjustStock(
            sku, location, delta, reason, "", f"adj-{self.mesh.ids.new_id('k')}"
        )
        try:
            outcome = inv.adjust(self.mesh.repo, self.mesh.ids, request, self.mesh.clock.now)
        except InsufficientStockForAdjustment:
            return
        self.mesh.units_brought_in += delta
        self.mesh.consume_inventory_events(outcome.events)

    # -- the runner and the consumers -----------------------------------------------------

    @precondition(lambda self: self.mesh.commands)
    @rule(data=st.data())
    def run_command(self, data: st.DataObject) -> None:
        self.mesh.run_command(data.draw(st.integers(0, len(self.mesh.commands) - 1)))

    @precondition(lambda self: self.mesh.run_commands)
    @rule(data=st.data())
    def rerun_command(self, data: st.DataObject) -> None:
        """A runner retry: every command is keyed, so running it again must be harmless."""
        self.mesh.execute(_pick(data, self.mesh.run_commands))

    @precondition(lambda self: self.mesh.order_events)
    @rule(data=st.data())
    def publish(self, data: st.DataObject) -> None:
        self.mesh.publish(data.draw(st.integers(0, len(self.mesh.order_events) - 1)))

    @precondition(lambda self: self.mesh.inbox)
    @rule(data=st.data(), twice=st.booleans())
    def deliver(self, data: st.DataObject, twice: bool) -> None:
        index = data.draw(st.integers(0, len(self.mesh.inbox) - 1))
        order_id, saga_input = self.mesh.inbox[index]
        self.mesh.deliver(index)
        if twice:
            snapshot = copy.deepcopy(self.mesh.orders[order_id])
            again = self.mesh.apply(order_id, saga_input)
            assert not again.changed and again.events == () and again.commands == ()
            assert self.mesh.orders[order_id] == snapshot

    @precondition(lambda self: self.mesh.history)
    @rule(data=st.data())
    def replay_old_input(self, data: st.DataObject) -> None:
        """An old event redelivered much later: never a new event; at most a compensation or
        a fresh availability check (a receipt that found no backorder the first time)."""
        order_id, saga_input = _pick(data, self.mesh.history)
        result = self.mesh.apply(order_id, saga_input)
        assert result.events == ()
        assert all(isinstance(c, ReleaseReservation | RequestAvailability) for c in result.commands)

    @rule()
    def drain(self) -> None:
        self.mesh.drain()

    @rule()
    def everyone_does_their_job(self) -> None:
        """Warehouse, carriers and billing finish all open work: lets runs reach COMPLETED."""
        self.mesh.fulfil_everything()

    @rule()
    def warehouse_ships_everything(self) -> None:
        """The warehouse picks and ships all open work; the parcels are then on the road (where
        carriers deliver, fail or bring them back)."""
        self.mesh.drain()
        for task in self.mesh.open_picks():
            self.mesh.confirm_pick(task)
        self.mesh.drain()
        for pick in self.mesh.shippable():
            self.mesh.ship(pick)
        self.mesh.drain()

    # -- warehouse, carriers, billing ---------------------------------------------------------

    @precondition(lambda self: self.mesh.open_picks())
    @rule(data=st.data())
    def confirm_pick(self, data: st.DataObject) -> None:
        task = _pick(data, self.mesh.open_picks())
        shorts = {
            ln.order_line_number: data.draw(st.one_of(st.just(0), st.integers(0, ln.quantity)))
            for ln in task.lines
        }
        event("pick: short" if any(shorts.values()) else "pick: full")
        self.mesh.confirm_pick(task, shorts)

    @precondition(lambda self: self.mesh.shippable())
    @rule(data=st.data())
    def ship(self, data: st.DataObject) -> None:
        self.mesh.ship(_pick(data, self.mesh.shippable()))

    @precondition(lambda self: self._on_the_road(lambda s: not s.picked_up))
    @rule(data=st.data())
    def pick_up(self, data: st.DataObject) -> None:
        self.mesh.pick_up(_pick(data, self._on_the_road(lambda s: not s.picked_up)))

    @precondition(lambda self: self._on_the_road(lambda s: not s.delivered))
    @rule(data=st.data(), fail=st.booleans())
    def carrier(self, data: st.DataObject, fail: bool) -> None:
        shipment_id = _pick(data, self._on_the_road(lambda s: not s.delivered))
        if fail:
            order_id = self.mesh.shipments[shipment_id].order_id
            self.mesh.inbox.append((order_id, ShipmentFailed(shipment_id, "address not found")))
        else:
            self.mesh.deliver_shipment(shipment_id)

    @precondition(
        lambda self: any(s.delivered and not s.invoiced for s in self.mesh.shipments.values())
    )
    @rule(data=st.data())
    def invoice(self, data: st.DataObject) -> None:
        ready = sorted(
            sid for sid, s in self.mesh.shipments.items() if s.delivered and not s.invoiced
        )
        self.mesh.invoice(_pick(data, ready))

    @precondition(lambda self: self._on_the_road(lambda s: not s.delivered))
    @rule(data=st.data(), sellable=st.booleans())
    def return_to_sender(self, data: st.DataObject, sellable: bool) -> None:
        """The carrier cannot deliver and brings the parcel back; inventory receives it."""
        shipment_id = _pick(data, self._on_the_road(lambda s: not s.delivered))
        self.mesh.return_to_sender(shipment_id, sellable=sellable)
        event("returned to sender")

    @precondition(lambda self: self._billable_on_ship())
    @rule(data=st.data())
    def invoice_on_ship(self, data: st.DataObject) -> None:
        """Billing invoices the shipment of an order billed on ship (the parcel left)."""
        self.mesh.invoice(_pick(data, self._billable_on_ship()))
        event("invoice on ship")

    def _on_the_road(self, what: Callable[[ShipmentState], bool]) -> list[str]:
        """Shipments (not cancelled, not returned) for which `what` holds, in a stable order."""
        return sorted(
            sid
            for sid, s in self.mesh.shipments.items()
            if not s.cancelled and not s.returned and what(s)
        )

    def _billable_on_ship(self) -> list[str]:
        return sorted(
            sid
            for sid, s in self.mesh.shipments.items()
            if s.order_id in self.mesh.on_ship_orders
            and s.picked_up
            and not (s.invoiced or s.cancelled)
        )

    # -- returns (RMA) ----------------------------------------------------------------------

    def _returnable_orders(self) -> list[str]:
        return sorted(
            o
            for o, x in self.mesh.orders.items()
            if any(line.quantity_delivered for line in x.lines)
        )

    def _authorized(self, order_id: str, line_number: int) -> int:
        return sum(
            line.quantity_authorized
            for r in self.mesh.returns.values()
            if r.order_id == order_id and r.counts_against_order
            for line in r.lines
            if line.order_line_number == line_number
        )

    @precondition(lambda self: self._returnable_orders())
    @rule(data=st.data(), quantity=st.integers(1, 4))
    def authorize_return(self, data: st.DataObject, quantity: int) -> None:
        """Any amount may be asked: the rules must refuse exactly what exceeds the delivered
        units not already authorized on another return."""
        order_id = _pick(data, self._returnable_orders())
        order = self.mesh.orders[order_id]
        line = _pick(data, [x for x in order.lines if x.quantity_delivered])
        returnable = line.quantity_delivered - self._authorized(order_id, line.line_number)
        try:
            self.mesh.authorize_return(order_id, {line.line_number: quantity})
        except ReturnNotAllowed as refused:
            assert quantity > returnable, refused.message
            assert f"{max(returnable, 0)} returnable" in refused.message
            event("return: refused")
            return
        assert quantity <= returnable
        event("return: authorized")

    @precondition(
        lambda self: any(r.status is ReturnStatus.AUTHORIZED for r in self.mesh.returns.values())
    )
    @rule(data=st.data(), damaged=st.booleans(), twice=st.booleans())
    def receive_return(self, data: st.DataObject, damaged: bool, twice: bool) -> None:
        waiting = sorted(
            r for r, x in self.mesh.returns.items() if x.status is ReturnStatus.AUTHORIZED
        )
        return_id = _pick(data, waiting)
        self.mesh.receive_return(return_id, damaged=damaged)
        if twice:  # the warehouse sends the same receipt again: nothing moves twice
            before = (
                copy.deepcopy(self.mesh.returns),
                self.mesh.ledger(self.mesh.returns[return_id].order_id),
            )
            self.mesh.receive_return(return_id, damaged=damaged)
            after = (self.mesh.returns, self.mesh.ledger(self.mesh.returns[return_id].order_id))
            assert after == before
        assert self.mesh.returns[return_id].status in (
            ReturnStatus.RECEIVED,  # credited once its units are invoiced
            ReturnStatus.CREDITED,
        )
        event("return: received")

    @invariant()
    def returns_never_exceed_what_was_delivered(self) -> None:
        for order_id, order in self.mesh.orders.items():
            for line in order.lines:
                authorized = self._authorized(order_id, line.line_number)
                assert line.quantity_returned <= authorized
                assert (
                    authorized <= max(line.quantity_delivered, 0)
                    or authorized == 0
                    or (
                        # Delivered units never go down, so what was authorized stays covered.
                        authorized <= line.quantity_delivered
                    )
                )

    # -- operators and the clock ----------------------------------------------------------

    @precondition(lambda self: self.mesh.orders)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        order_id = _pick(data, sorted(self.mesh.orders))
        order = self.mesh.orders[order_id]
        carrier_has = any(
            s.order_id == order_id and (s.picked_up or s.delivered)
            for s in self.mesh.shipments.values()
            if not (s.cancelled or s.returned)
        )
        # A parcel the carrier brought back is not cancellable either (shipment refuses):
        # cancel-and-credit is its way out.
        came_back = any(s.order_id == order_id and s.returned for s in self.mesh.shipments.values())
        delivered = any(s.delivered and not s.cancelled for s in order.shipments.values())
        refusable = order.status is not OrderStatus.CANCELLED
        before = copy.deepcopy(order)
        try:
            self.mesh.cancel(order_id)
        except OrderNotCancellable:
            assert refusable and (
                carrier_has or came_back or delivered or order.status is OrderStatus.COMPLETED
            )
            assert order == before
            event("cancel: refused")
            return
        assert not carrier_has and not delivered and order.status is OrderStatus.CANCELLED
        assert not (refusable and came_back)
        event("cancel: done")

    @rule(minutes=st.integers(1, 240))
    def time_passes(self, minutes: int) -> None:
        self.mesh.clock.advance(minutes=minutes)
        for order_id in sorted(self.mesh.orders):
            if self.mesh.tick(order_id).changed:
                event("timeout")

    @precondition(
        lambda self: any(o.status is OrderStatus.EXCEPTION for o in self.mesh.orders.values())
    )
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        order_id = _pick(
            data,
            sorted(o for o, x in self.mesh.orders.items() if x.status is OrderStatus.EXCEPTION),
        )
        order = self.mesh.orders[order_id]
        before = copy.deepcopy(order)
        try:
            self.mesh.retry(order_id)
        except ReturnedShipmentAwaitsDecision:
            # A retry cannot bring a parcel back: only a decision on it can.
            assert order.exception is not None
            assert order.exception.shipment_id in {s.shipment_id for s in undecided_returns(order)}
            assert order == before
            event("retry: refused, a returned parcel awaits a decision")
            return
        event("retry")

    @precondition(lambda self: any(s.returned for s in self.mesh.shipments.values()))
    @rule(data=st.data(), resolution=st.sampled_from(ReturnedShipmentResolution))
    def decide(self, data: st.DataObject, resolution: ReturnedShipmentResolution) -> None:
        """An operator reships, or cancels and credits, a returned parcel: at any time, twice,
        or the other way after the first decision."""
        shipment_id = _pick(
            data, sorted(sid for sid, s in self.mesh.shipments.items() if s.returned)
        )
        order_id = self.mesh.shipments[shipment_id].order_id
        order = self.mesh.orders[order_id]
        known = order.shipments.get(shipment_id)
        before = copy.deepcopy(order)
        try:
            result = self.mesh.resolve(order_id, shipment_id, resolution)
        except (NotFound, ShipmentNotReturnedToSender):
            # The order has not heard of the shipment, or of its return, yet.
            assert known is None or not known.returned
            assert order == before
            event("decide: return not known yet")
            return
        except ReturnedShipmentAlreadyResolved:
            assert known is not None and known.resolution not in (None, resolution)
            assert order == before
            event("decide: refused, decided the other way")
            return
        except Conflict:
            assert order == before  # a pick of the parcel is still on its way to the order
            event("decide: a pick is still on its way")
            return
        assert known is not None and known.returned
        if known.resolution is resolution:
            assert not result.changed and result.events == () and result.commands == ()
            assert order == before
            event("decide: same decision again")
            return
        assert order.shipments[shipment_id].resolution is resolution
        event(f"decide: {resolution.name}")

    @precondition(lambda self: self._live_shipments_known())
    @rule(data=st.data(), resolution=st.sampled_from(ReturnedShipmentResolution))
    def decide_on_a_parcel_not_returned(
        self, data: st.DataObject, resolution: ReturnedShipmentResolution
    ) -> None:
        order_id, shipment_id = _pick(data, self._live_shipments_known())
        order = self.mesh.orders[order_id]
        before = copy.deepcopy(order)
        try:
            self.mesh.resolve(order_id, shipment_id, resolution)
        except ShipmentNotReturnedToSender as refused:
            assert shipment_id in str(refused) and "not returned to sender" in str(refused)
            assert order == before
            return
        raise AssertionError("a shipment that was not returned to sender was decided on")

    def _live_shipments_known(self) -> list[tuple[str, str]]:
        return sorted(
            (order_id, shipment_id)
            for order_id, order in self.mesh.orders.items()
            for shipment_id, s in order.shipments.items()
            if not s.returned and not self.mesh.shipments[shipment_id].returned
        )

    def teardown(self) -> None:
        """Liveness: once the world cooperates (stock everywhere, operators retry, warehouse,
        carriers and billing do their job), every order ends COMPLETED or CANCELLED."""
        for sku in SKUS:
            for location in LOCATIONS:
                self.mesh.receive(sku, location, 50)
        decisions = 0
        for _ in range(5):
            self.mesh.fulfil_everything()
            for order_id, order in sorted(self.mesh.orders.items()):
                # Returned parcels get a decision, alternately reship and cancel-and-credit.
                for returned in undecided_returns(order):
                    decisions += 1
                    resolution = list(ReturnedShipmentResolution)[decisions % 2]
                    self.mesh.resolve(order_id, returned.shipment_id, resolution)
                if order.status is OrderStatus.EXCEPTION:
                    self.mesh.retry(order_id)
        self.mesh.fulfil_everything()
        stuck = {o: x.status.name for o, x in self.mesh.orders.items() if not x.is_terminal}
        assert not stuck, stuck
        self.stock_books_balance()
        self.orders_and_inventory_agree_on_reservations()
        for order_id in self.mesh.orders:
            self._money_nets_to_the_delivered_value(order_id)

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def stock_books_balance(self) -> None:
        assert inv.invariant_violations(self.mesh.repo) == []

    @invariant()
    def terminal_states_stay_terminal(self) -> None:
        for order_id, (status, frozen) in self.terminal.items():
            order = self.mesh.orders[order_id]
            assert order.status is status
            # Nothing billable moves after the end; a cancelled order may only record the
            # late picks, stray reservations and shipments its cancellation compensates (and
            # a returned parcel's invoice arriving late, which is credited, never billed).
            assert _billed(order) == frozen[1]
            if status is OrderStatus.COMPLETED:
                # Returns come after completion: only the lines' returned units may move.
                lines = [replace(line, quantity_returned=0) for line in order.lines]
                then = [replace(line, quantity_returned=0) for line in frozen[2]]
                assert (order.shipments, lines, order.picks, order.reservations) == (
                    frozen[0],
                    then,
                    *frozen[3:],
                )
        for order_id, order in self.mesh.orders.items():
            if order.is_terminal and order_id not in self.terminal:
                frozen = copy.deepcopy(
                    (order.shipments, _billed(order), order.lines, order.picks, order.reservations)
                )
                self.terminal[order_id] = (order.status, frozen)
                event(f"reached {order.status.name}")

    @invariant()
    def stock_is_conserved(self) -> None:
        """Σ on hand + Σ held apart = receipts ± adjustments - units out on live shipments: a
        cancelled shipment's units are back exactly once, and so are a returned parcel's (on
        hand if sellable, held apart in quarantine otherwise); nothing is negative."""
        positions = self.mesh.repo.positions()
        assert all(p.on_hand >= 0 and p.reserved >= 0 and p.non_sellable >= 0 for p in positions)
        on_books = sum(p.on_hand + p.non_sellable for p in positions)
        assert on_books == self.mesh.units_brought_in - self.mesh.units_out()

    @invariant()
    def one_label_per_shipment_voided_labels_excluded(self) -> None:
        for shipment in self.mesh.shipments.values():
            assert 0 <= shipment.voided <= shipment.labels <= 1
            live = shipment.labels - shipment.voided
            assert live == (0 if shipment.cancelled else shipment.labels)
            if shipment.picked_up and not shipment.cancelled:
                assert live == 1  # nothing leaves without exactly one label

    @invariant()
    def nothing_cancelled_is_invoiced(self) -> None:
        for shipment in self.mesh.shipments.values():
            assert not (shipment.cancelled and (shipment.invoiced or shipment.delivered))
        for order in self.mesh.orders.values():
            if order.status is OrderStatus.CANCELLED:
                # Only a returned parcel's invoice (billed on ship) may be there: credited.
                assert not billed_invoices(order)

    @invariant()
    def nothing_is_negative(self) -> None:
        for order_id, order in self.mesh.orders.items():
            for line in order.lines:
                assert all(v >= 0 for k, v in vars(line).items() if k.startswith("quantity_"))
                assert line.quantity_cancelled <= line.quantity_ordered
            invoiced, credited = self.mesh.ledger(order_id)
            assert invoiced >= 0 and credited >= 0 and invoiced - credited >= 0

    @invariant()
    def one_invoice_per_delivered_shipment(self) -> None:
        """Billing and the order agree: at most one invoice per shipment, none for a cancelled
        one, never one counted for a parcel returned to sender; a completed order has exactly
        one per delivered shipment."""
        for order_id, order in self.mesh.orders.items():
            shipments = [i.shipment_id for i in order.invoices.values()]
            assert len(shipments) == len(set(shipments))
            for invoice_id, invoice in order.invoices.items():
                posted = self.mesh.invoices[invoice_id]
                assert (posted.order_id, posted.shipment_id) == (order_id, invoice.shipment_id)
                assert not self.mesh.shipments[invoice.shipment_id].cancelled
            if self.mesh.quiet:  # the order has heard of every return
                returned = {sid for sid, s in self.mesh.shipments.items() if s.returned}
                assert not set(_billed(order)) & {f"inv_{sid}" for sid in returned}
            if order.status is OrderStatus.COMPLETED:
                delivered = sorted(
                    sid
                    for sid, s in self.mesh.shipments.items()
                    if s.order_id == order_id and s.delivered
                )
                assert sorted(i.shipment_id for i in _billed(order).values()) == delivered

    @invariant()
    def money_nets_to_the_delivered_value(self) -> None:
        """Once an order is closed and the mesh quiet: Σ invoiced - Σ credited is the value of
        the units it delivered (a returned parcel billed on ship is credited in full)."""
        if not self.mesh.quiet:
            return
        for order_id, order in self.mesh.orders.items():
            if order.is_terminal:
                self._money_nets_to_the_delivered_value(order_id)

    def _money_nets_to_the_delivered_value(self, order_id: str) -> None:
        invoiced, credited = self.mesh.ledger(order_id)
        assert invoiced - credited == self.mesh.delivered_value(order_id), (
            order_id,
            invoiced,
            credited,
        )
        if credited:
            event("money: a returned parcel's invoice credited")

    @invariant()
    def line_figures_add_up(self) -> None:
        for order in self.mesh.orders.values():
            figs = figures(order)
            for line in order.lines:
                f = figs[line.line_number]
                assert (
                    min(vars(line).values(), key=lambda v: v if isinstance(v, int) else 0)
                    is not None
                )
                assert all(v >= 0 for k, v in vars(line).items() if k.startswith("quantity_"))
                held = sum(
                    h.quantity
                    for r in order.reservations.values()
                    if r.status is HoldStatus.ACTIVE
                    for h in r.lines
                    if h.line_number == line.line_number
                )
                assert line.quantity_allocated == held
                assert line.quantity_backordered <= f.open_demand and f.pending <= f.open_demand
                if order.status is not OrderStatus.CANCELLED:
                    # Units cancelled (a returned parcel's, cancelled and credited) are out.
                    assert line.quantity_ordered == (
                        f.open_demand + held + line.quantity_picked + line.quantity_cancelled
                    )

    @invariant()
    def status_follows_from_the_records(self) -> None:
        for order in self.mesh.orders.values():
            if order.is_terminal:
                continue
            if order.exception is not None:
                assert order.status is OrderStatus.EXCEPTION and order.step is order.exception.step
            else:
                assert order.status is derive_status(order)
                assert order.step is STEP_OF_STATUS[order.status]
                # The documented meaning, checked independently of derive_status:
                waiting = any(line.quantity_backordered for line in order.lines)
                assert (order.status is OrderStatus.BACKORDERED) == waiting
        for order in self.mesh.orders.values():
            if order.status is OrderStatus.COMPLETED:
                assert all(
                    line.quantity_invoiced == line.quantity_ordered - line.quantity_cancelled
                    and line.quantity_allocated == line.quantity_backordered == 0
                    for line in order.lines
                )

    @invariant()
    def orders_and_inventory_agree_on_reservations(self) -> None:
        """Always: what an order holds, inventory holds (or has just consumed, with the pick on
        its way). When the mesh is quiet: both sides agree exactly."""
        in_flight_picks = {
            i.reservation_id for _, i in self.mesh.inbox if isinstance(i, PickCompleted)
        }
        for order in self.mesh.orders.values():
            for r in order.reservations.values():
                stored = self.mesh.repo.get_reservation(r.reservation_id)
                assert stored is not None and stored.order_id == order.order_id
                if r.status is HoldStatus.ACTIVE:
                    assert stored.status is inv.ReservationStatus.ACTIVE or (
                        stored.status is inv.ReservationStatus.CONSUMED
                        and r.reservation_id in in_flight_picks
                    )
        if not self.mesh.quiet:
            return
        for order in self.mesh.orders.values():
            kept = self.mesh.repo.reservations(order_id=order.order_id)
            assert {k.reservation_id for k in kept} == set(order.reservations)
            for k in kept:
                assert HOLD_OF[k.status] is order.reservations[k.reservation_id].status
            held_by_inventory: dict[int, int] = defaultdict(int)
            for k in kept:
                if k.status is inv.ReservationStatus.ACTIVE:
                    for held in k.lines:
                        held_by_inventory[held.order_line_number] += held.quantity
            for line in order.lines:
                assert line.quantity_allocated == held_by_inventory[line.line_number]
        for order in self.mesh.orders.values():
            if not order.is_terminal:
                # Quiet means no round in flight: every unit without stock is a backorder,
                # none fell through the cracks.
                assert order.availability_request is None and not order.pending
                figs = figures(order)
                for line in order.lines:
                    assert line.quantity_backordered == figs[line.line_number].open_demand
        for task in self.mesh.open_picks():
            reservation = self.mesh.repo.get_reservation(task.reservation_id)
            assert reservation is not None and reservation.status is inv.ReservationStatus.ACTIVE


def _billed(order: Order) -> dict[str, InvoiceRecord]:
    """The invoices that bill the order (a returned parcel's, being credited, do not)."""
    return {i: order.invoices[i] for i in billed_invoices(order)}


SagaMachine.TestCase.settings = settings(
    max_examples=600 if FUZZ else 120,
    stateful_step_count=60,
    deadline=None,
    derandomize=not FUZZ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestSagaMachine = SagaMachine.TestCase
