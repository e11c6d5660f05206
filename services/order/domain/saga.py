"""The fulfillment saga: a persisted state machine per order.

reserve -> release to warehouse -> await pick -> await shipment(s) -> await delivery ->
await invoice -> complete. The saga is pure: each call takes the order (loaded by the store),
mutates it in place, and returns the events to write to the outbox and the commands for the
runner to execute. The service persists order + events + commands in one transaction.

Guarantees:
- applying the same input twice changes nothing the second time (`SagaResult.changed` is False);
- COMPLETED and CANCELLED are terminal: later inputs only trigger compensations;
- an input that is rejected (an exception is raised) leaves the order untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.order.domain import (
    cancellation,
    exception_episodes,
    post_release_steps,
    reserve_step,
    returned_to_sender,
)
from services.order.domain.allocation_planner import Availability
from services.order.domain.errors import (
    InvalidArgument,
    OrderNotRetryable,
    ReturnedShipmentAwaitsDecision,
)
from services.order.domain.idempotency import order_fingerprint
from services.order.domain.messages import (
    AvailabilityObserved,
    Context,
    CreditNoteObserved,
    InvoicePosted,
    LabelVoided,
    LabelVoidFailed,
    OrderEvent,
    OrderPlaced,
    OrderReleased,
    PickCompleted,
    RequestAvailability,
    ReservationFailed,
    ReservationMade,
    ReservationObserved,
    ReservationReleasedObserved,
    ReserveStock,
    RetryShipment,
    SagaCommand,
    SagaInput,
    ShipmentCancelledObserved,
    ShipmentCreated,
    ShipmentDelivered,
    ShipmentFailed,
    ShipmentManifested,
    ShipmentReturnedToSender,
    StockAvailable,
)
from services.order.domain.model import (
    ExceptionState,
    FulfillmentStep,
    HoldStatus,
    Order,
    OrderInput,
    OrderLine,
    OrderStatus,
    ReturnedShipmentResolution,
    TimelineEntry,
    TimelineEntryKind,
)
from services.order.domain.progress import (
    Effects,
    StepTimeouts,
    awaiting_decision_reason,
    refresh,
)
from services.order.domain.validation import Catalog, validate_order

_HANDLERS: dict[type[Any], Callable[[Order, Any, Effects], None]] = {
    AvailabilityObserved: reserve_step.on_availability,
    ReservationMade: reserve_step.on_reservation_made,
    ReservationFailed: reserve_step.on_reservation_failed,
    ReservationObserved: reserve_step.on_reservation_observed,
    ReservationReleasedObserved: reserve_step.on_reservation_released,
    PickCompleted: post_release_steps.on_pick_completed,
    ShipmentCreated: post_release_steps.on_shipment_created,
    ShipmentManifested: post_release_steps.on_shipment_manifested,
    ShipmentFailed: post_release_steps.on_shipment_failed,
    ShipmentDelivered: post_release_steps.on_shipment_delivered,
    InvoicePosted: post_release_steps.on_invoice_posted,
    ShipmentCancelledObserved: cancellation.on_shipment_cancelled,
    LabelVoided: cancellation.on_label_voided,
    LabelVoidFailed: cancellation.on_label_void_failed,
    ShipmentReturnedToSender: returned_to_sender.on_shipment_returned,
    CreditNoteObserved: returned_to_sender.on_credit_note,
    StockAvailable: post_release_steps.on_stock_available,
}


@dataclass(frozen=True)
class SagaResult:
    """The order after a saga call, what to publish, what to run, and whether anything changed."""

    order: Order
    events: tuple[OrderEvent, ...]
    commands: tuple[SagaCommand, ...]
    changed: bool
    # `wanted_skus(order)` from the figures the call's refresh computed, so the store need not
    # compute them again; None when nothing changed (no refresh ran).
    wanted_skus: tuple[str, ...] | None = None


class FulfillmentSaga:
    """The saga's entry points; holds only configuration (the step timeouts)."""

    def __init__(self, timeouts: StepTimeouts | None = None) -> None:
        self.timeouts = timeouts or StepTimeouts()

    def place(
        self,
        *,
        order_id: str,
        partner_id: str,
        order_input: OrderInput,
        catalog: Catalog,
        ctx: Context,
        availability: Availability | None = None,
    ) -> SagaResult:
        """Validate and create an order, and start its saga.

        `availability` is the snapshot checked synchronously at capture; with it the first
        reservations are planned at once, without a RequestAvailability round trip.
        """
        if not order_id or not partner_id:
            raise InvalidArgument.for_field(
                "partner_id" if order_id else "order_id", "is required", "required"
            )
        validate_order(order_input, catalog)
        order = Order(
            order_id=order_id,
            partner_id=partner_id,
            external_order_id=order_input.external_order_id,
            customer=order_input.customer,
            ship_to=order_input.ship_to,
            currency_code=order_input.currency_code,
            service_level=order_input.service_level,
            backorder_policy=order_input.backorder_policy,
            lines=[
                OrderLine(index + 1, line.sku, line.unit_price, line.quantity)
                for index, line in enumerate(order_input.lines)
            ],
            fingerprint=order_fingerprint(partner_id, order_input),
            created_at=ctx.now,
            updated_at=ctx.now,
        )
        fx = Effects(ctx, self.timeouts)
        order.timeline.append(
            TimelineEntry(
                occurred_at=ctx.now,
                kind=TimelineEntryKind.STATUS_CHANGE,
                step=order.step,
                detail="order placed",
                to_status=OrderStatus.PLACED,
                correlation_id=ctx.correlation_id,
            )
        )
        fx.emit(order, OrderPlaced(order_id, partner_id, tuple(order.lines), ctx.now, order))
        reserve_step.start_planning(order, fx)
        if availability is not None and order.availability_request is not None:
            # Answer our own request in place: the runner need not ask inventory again.
            request_id = order.availability_request
            fx.commands = [c for c in fx.commands if not isinstance(c, RequestAvailability)]
            reserve_step.on_availability(order, AvailabilityObserved(request_id, availability), fx)
        return self._finish(order, fx)

    def apply(self, order: Order, saga_input: SagaInput, ctx: Context) -> SagaResult:
        """Apply one fact (a command's answer or another service's event) to the order."""
        fx = self._effects(order, ctx)
        _HANDLERS[type(saga_input)](order, saga_input, fx)
        return self._finish(order, fx)

    def cancel(self, order: Order, reason: str, ctx: Context) -> SagaResult:
        """Cancel the whole order; returns the compensations to run (cancellation.py).

        The caller has already had shipment cancel the order's shipments when the warehouse may
        have picked (`cancellation.needs_shipment_cancel`). Cancelling twice changes nothing.
        """
        if order.status is OrderStatus.CANCELLED:
            return SagaResult(order, (), (), changed=False)
        cancellation.ensure_cancellable(order)
        fx = self._effects(order, ctx)
        cancellation.cancel_whole(order, reason or "order cancelled", fx)
        return self._finish(order, fx)

    def cancel_lines(
        self, order: Order, plan: cancellation.PartialCancelPlan, reason: str, ctx: Context
    ) -> SagaResult:
        """Record a partial cancel whose reservation releases inventory has made."""
        fx = self._effects(order, ctx)
        cancellation.apply_partial_cancel(order, plan, reason or "lines cancelled", fx)
        if all(line.quantity_cancelled >= line.quantity_ordered for line in order.lines):
            # Nothing of the order is left: it is cancelled, not "completed" with nothing sent.
            cancellation.cancel_whole(order, reason or "every line cancelled", fx)
        return self._finish(order, fx)

    def on_tick(self, order: Order, now: datetime) -> SagaResult:
        """Move an order whose step deadline has passed to EXCEPTION (once)."""
        deadline = order.step_deadline
        if order.is_terminal or order.exception is not None or deadline is None or now < deadline:
            return SagaResult(order, (), (), changed=False)
        fx = self._effects(order, Context(now))
        reason = f"{order.step.name} not done by {deadline.isoformat()}"
        if order.deadline_key == "BACKORDER":
            reason = f"backorder not filled by {deadline.isoformat()}"
        order.exception = ExceptionState(order.step, reason, now)
        fx.note(order, TimelineEntryKind.EXCEPTION, f"timeout: {reason}")
        return self._finish(order, fx)

    def retry(self, order: Order, ctx: Context) -> SagaResult:
        """Take an order out of EXCEPTION and redo the work of the step it is in.

        Re-sent commands reuse their idempotency keys, so a retry never doubles an effect.
        """
        if order.is_terminal or order.exception is None:
            raise OrderNotRetryable(
                f"order {order.order_id} is {order.status.name}; only an order in EXCEPTION "
                "can be retried",
                metadata={"order_id": order.order_id, "status": order.status.name},
            )
        failed = order.exception
        returned = order.shipments.get(failed.shipment_id)
        if returned is not None and returned.returned and returned.resolution is None:
            raise ReturnedShipmentAwaitsDecision(
                f"order {order.order_id}: {awaiting_decision_reason(returned)} "
                "(ReshipReturnedShipment or CancelAndCreditReturnedShipment); a retry cannot "
                "bring the parcel back",
                metadata={"order_id": order.order_id, "shipment_id": returned.shipment_id},
            )
        fx = self._effects(order, ctx)
        fx.retried = True
        order.exception = None
        order.deadline_key = ""  # a fresh deadline for the retried step
        fx.note(order, TimelineEntryKind.EXCEPTION, f"retry of {failed.step.name}: {failed.reason}")
        for pending in order.pending.values():
            fx.command(
                ReserveStock(
                    order.order_id, pending.location_id, pending.lines, pending.idempotency_key
                )
            )
        if order.availability_request is not None:
            skus = tuple(sorted({line.sku for line in order.lines}))
            fx.command(RequestAvailability(order.order_id, order.availability_request, skus))
        reserve_step.start_planning(order, fx)
        if failed.shipment_id:
            fx.command(RetryShipment(order.order_id, failed.shipment_id))
        elif failed.step is FulfillmentStep.AWAIT_PICK:
            unpicked = tuple(
                r.reservation_id
                for r in order.reservations.values()
                if r.status is HoldStatus.ACTIVE and r.released_to_warehouse
            )
            if unpicked:
                # Pick-task creation is idempotent per reservation, so re-releasing is safe.
                fx.emit(order, OrderReleased(order.order_id, order.partner_id, unpicked, ctx.now))
        return self._finish(order, fx)

    def resolve_returned_shipment(
        self,
        order: Order,
        shipment_id: str,
        resolution: ReturnedShipmentResolution,
        reason: str,
        ctx: Context,
    ) -> SagaResult:
        """An operator's decision for a shipment returned to sender (returned_to_sender.py):
        reship its units, or cancel and credit them. The same decision twice changes nothing."""
        fx = self._effects(order, ctx)
        returned_to_sender.resolve(order, shipment_id, resolution, reason, fx)
        return self._finish(order, fx)

    def _effects(self, order: Order, ctx: Context) -> Effects:
        return Effects(ctx, self.timeouts, exception_at_start=order.exception)

    def _finish(self, order: Order, fx: Effects) -> SagaResult:
        if not fx.changed:
            return SagaResult(order, tuple(fx.events), tuple(fx.commands), changed=False)
        wanted = reserve_step.wanted_skus(order, refresh(order, fx))
        # Once the call's exception is final (refresh may set or clear it too).
        exception_episodes.report(order, fx)
        return SagaResult(order, tuple(fx.events), tuple(fx.commands), True, tuple(wanted))
