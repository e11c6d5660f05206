"""An order's exceptions as events: each stretch in EXCEPTION is an episode, numbered per order
(1, 2, ...), published raised once and cleared once, so an operator's tools can tell one
exception from the next on the same order.

A saga call may set, replace or clear `order.exception` in several places (a failed
reservation, a timeout, a failed shipment, a parcel back, progress, a retry, a cancel). Rather
than publish at each, `report` compares, once the call is done, the exception the call began
with and the one it ends with:
- none → one: a new episode (the order's count + 1), OrderExceptionRaised;
- one → another (a new reason while still in EXCEPTION): the same episode, raised again with
  the new reason;
- one → none: OrderExceptionCleared of that episode, by retry (RetryOrderStep), cancellation,
  or progress (anything else: the step or shipment went through, a decision on a returned
  parcel, the order completing).
A retry always ends its episode: an exception raised again in the same call is a new one. An
exception stored before episodes existed (episode 0) was never published: its clear is not
either, and the next call that changes the order numbers and raises it.
"""

from __future__ import annotations

from dataclasses import replace

from services.order.domain.messages import (
    ExceptionClearance,
    OrderExceptionCleared,
    OrderExceptionRaised,
)
from services.order.domain.model import Order, OrderStatus
from services.order.domain.progress import Effects


def report(order: Order, fx: Effects) -> None:
    """Number the exception the call ends with and publish what the call raised or cleared
    (through `fx`, so in the call's transaction, with the order's status change)."""
    before = fx.exception_at_start
    # The episode the order was in, as published; 0 for none (or one never published).
    open_episode = before.episode if before is not None else 0
    after = order.exception
    if after is not None and after.episode == 0:
        if open_episode and not fx.retried:
            episode = open_episode
        else:
            order.exception_episodes += 1
            episode = order.exception_episodes
        after = order.exception = replace(after, episode=episode)
    if before is not None and open_episode and (after is None or after.episode != open_episode):
        fx.emit(
            order,
            OrderExceptionCleared(
                order.order_id,
                order.partner_id,
                open_episode,
                _clearance(order, fx),
                before.step,
                before.reason,
                fx.ctx.now,
            ),
        )
    if after is not None and after != before:
        fx.emit(
            order,
            OrderExceptionRaised(
                order.order_id,
                order.partner_id,
                after.episode,
                after.step,
                after.reason,
                after.shipment_id,
                fx.ctx.now,
            ),
        )


def _clearance(order: Order, fx: Effects) -> ExceptionClearance:
    if order.status is OrderStatus.CANCELLED:
        return ExceptionClearance.CANCELLED
    if fx.retried:
        return ExceptionClearance.RETRIED
    return ExceptionClearance.PROGRESSED
