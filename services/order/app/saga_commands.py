"""The saga's outgoing commands: claim the due ones, call the other services, settle the answers.

Every command is idempotent on the other side (ReserveStock and ReceiveStock carry keys,
releasing twice is harmless), so a crash between the call and the commit only repeats a call
that returns the same answer. Transient failures are rescheduled with backoff; a step that never
succeeds is caught by the saga's step timeout (EXCEPTION, then RetryOrderStep).

A round (`send_commands`, then `settle_round` under `UnitsOfWork.run_batch`): the commands of
different orders are sent concurrently, one order's one after another in queue order; then every
answer is settled in ONE transaction, each under its own savepoint, one order's in queue order.
A transient failure reschedules only its command: the order's later commands still go, as each
is a request of its own. Settling after the whole round, not after each call, is safe for the
same reason a crash is: a command's request never depends on an earlier command's answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import grpc

from services.kit.client import is_transient
from services.kit.clock import Clock
from services.kit.errors import Conflict
from services.kit.uow import UnitOfWork, lost_a_race
from services.order.adapters.clients import InventoryClient, ShipmentClient
from services.order.adapters.store import repository as repo
from services.order.app.transitions import apply_input
from services.order.domain import Context, FulfillmentSaga, SagaInput
from services.order.domain import messages as m

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SagaClients:
    """The services saga commands are sent to."""

    inventory: InventoryClient
    shipments: ShipmentClient


@dataclass(frozen=True)
class Sent:
    """What sending one queued command came to: the saga input its answer means (None when it
    means nothing), or, after a transient failure, when to try again and why."""

    queued: repo.QueuedCommand
    answer: SagaInput | None = None
    retry_at: float | None = None
    error: str = ""


# Settles one sent command in the unit of work it is given (`run_batch`'s item savepoint).
SettleUseCase = Callable[[UnitOfWork, Sent], None]


@dataclass
class Round:
    """One round of sends: what was sent, in queue order, and the unexpected failures (each
    stopped its own order's later commands, which stay leased)."""

    sent: list[Sent] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)


def claim_due_commands(
    uow: UnitOfWork, now: datetime, limit: int, lease_seconds: float
) -> list[repo.QueuedCommand]:
    """Take (lease) up to `limit` due commands, oldest first."""
    return repo.claim_commands(uow.conn, now, limit, lease_seconds)


async def send_commands(
    clients: SagaClients,
    due: Sequence[repo.QueuedCommand],
    *,
    concurrency: int,
    stopping: Callable[[], bool],
    max_backoff: float = 30.0,
) -> Round:
    """Send claimed commands: up to `concurrency` orders at once, one order's commands one after
    another in queue order. Once `stopping()` is true no further command is sent."""
    by_order: dict[str, list[repo.QueuedCommand]] = {}
    for queued in due:
        by_order.setdefault(queued.order_id, []).append(queued)
    answers: dict[int, Sent] = {}
    errors: list[Exception] = []
    slots = asyncio.Semaphore(concurrency)

    async def send_order(commands: list[repo.QueuedCommand]) -> None:
        async with slots:
            for queued in commands:
                if stopping():
                    return
                try:
                    answers[queued.id] = await send_command(
                        clients, queued, max_backoff=max_backoff
                    )
                except Exception as error:
                    # The order's later commands must not overtake this one: they wait too.
                    errors.append(error)
                    return

    await asyncio.gather(*(send_order(commands) for commands in by_order.values()))
    return Round([answers[q.id] for q in due if q.id in answers], errors)


async def send_command(
    clients: SagaClients, queued: repo.QueuedCommand, *, max_backoff: float = 30.0
) -> Sent:
    """Send one command: its answer, or when to retry it when the failure is transient."""
    try:
        answer = await _send(clients, queued.command)
    except grpc.aio.AioRpcError as error:
        if not is_transient(error):
            return Sent(queued, _final_answer(queued.command, error))
        delay = min(0.2 * 2**queued.attempts, max_backoff)
        log.warning(
            "saga command %s failed (%s); retrying in %.1fs",
            type(queued.command).__name__,
            error.code().name,
            delay,
        )
        return Sent(
            queued, retry_at=time.time() + delay, error=f"{error.code().name}: {error.details()}"
        )
    return Sent(queued, answer)


def settle_round(saga: FulfillmentSaga, clock: Clock, sent: Sequence[Sent]) -> SettleUseCase:
    """The `run_batch` use case that settles one round's `sent`, one order's in queue order.

    run_batch re-runs an item that lost a `Conflict` in a further pass, after the items behind
    it; so an item whose order still has an earlier answer unsettled defers itself (a Conflict
    too) and settles after it.
    """
    unsettled: dict[str, deque[int]] = {}
    for item in sent:
        unsettled.setdefault(item.queued.order_id, deque()).append(item.queued.id)

    def settle(uow: UnitOfWork, item: Sent) -> None:
        waiting = unsettled[item.queued.order_id]
        if waiting[0] != item.queued.id:
            raise Conflict(f"saga command {item.queued.id} waits for an earlier one of its order")
        try:
            settle_sent(uow, saga, item, clock())
        except Exception as error:
            # A lost race (Conflict, or a PostgreSQL deadlock) is re-run in a further pass, still
            # first of its order; anything else failed for good (rolled back alone), so the
            # order's next answer may go.
            if not lost_a_race(error):
                waiting.popleft()
            raise
        waiting.popleft()

    return settle


def settle_sent(uow: UnitOfWork, saga: FulfillmentSaga, sent: Sent, now: datetime) -> None:
    """Settle one sent command: reschedule it after a transient failure, else apply its answer
    and mark it done."""
    if sent.retry_at is not None:
        reschedule_command(uow, sent.queued, sent.retry_at, sent.error)
    else:
        settle_command(uow, saga, sent.queued, sent.answer, now)


def settle_command(
    uow: UnitOfWork,
    saga: FulfillmentSaga,
    queued: repo.QueuedCommand,
    answer: SagaInput | None,
    now: datetime,
) -> None:
    """Apply the command's answer (if any) and mark the command done, together."""
    if answer is not None:
        apply_input(uow, saga, queued.order_id, answer, Context(now))
    repo.finish_command(uow.conn, queued.id, now)


def reschedule_command(
    uow: UnitOfWork, queued: repo.QueuedCommand, next_attempt_at: float, error: str
) -> None:
    repo.reschedule_command(uow.conn, queued.id, queued.attempts + 1, next_attempt_at, error)


async def _send(clients: SagaClients, command: m.SagaCommand) -> SagaInput | None:
    """Call the service a command is for; the saga input its answer means, if any."""
    inventory = clients.inventory
    if isinstance(command, m.RequestAvailability):
        snapshot = await inventory.availability(command.skus)
        return m.AvailabilityObserved(command.request_id, snapshot)
    if isinstance(command, m.ReserveStock):
        return await inventory.reserve(command)
    if isinstance(command, m.ReleaseReservation):
        await inventory.release(command)
        return None
    if isinstance(command, m.RestockPicked):
        await inventory.restock(command)
        return None
    if isinstance(command, m.CancelPickTask):
        # Inventory withdraws a reservation's open pick when the reservation is released
        # (ReleaseReservation, always queued with this command), so nothing is left to do.
        return None
    if isinstance(command, m.RetryShipment):
        # The shipment's own events (manifested) move the order on; nothing to answer.
        await clients.shipments.retry_label(command.shipment_id)
        return None
    raise TypeError(f"unknown saga command {type(command).__name__}")


def _final_answer(command: m.SagaCommand, error: grpc.aio.AioRpcError) -> SagaInput | None:
    """What a permanent refusal means to the saga."""
    if isinstance(command, m.ReserveStock):
        reason = f"{error.code().name}: {error.details()}"
        return m.ReservationFailed(command.idempotency_key, reason)
    # Releasing a reservation that was picked meanwhile is refused; the pick's own compensation
    # (restock) covers it. Other refusals leave nothing to retry either.
    log.warning(
        "saga command %s refused: %s %s", type(command).__name__, error.code().name, error.details()
    )
    return None
