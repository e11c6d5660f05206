"""The saga's outgoing commands: claim the due ones, call the other service, settle the answer.

Every command is idempotent on the other side (ReserveStock and ReceiveStock carry keys,
releasing twice is harmless), so a crash between the call and the commit only repeats a call
that returns the same answer. Transient failures are rescheduled with backoff; a step that never
succeeds is caught by the saga's step timeout (EXCEPTION, then RetryOrderStep).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

import grpc

from services.kit.client import is_transient
from services.kit.clock import Clock
from services.kit.uow import UnitOfWork, UnitsOfWork
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


def claim_due_commands(
    uow: UnitOfWork, now: datetime, limit: int, lease_seconds: float
) -> list[repo.QueuedCommand]:
    """Take (lease) up to `limit` due commands, oldest first."""
    return repo.claim_commands(uow.conn, now, limit, lease_seconds)


async def execute_command(
    units: UnitsOfWork,
    clients: SagaClients,
    saga: FulfillmentSaga,
    queued: repo.QueuedCommand,
    clock: Clock,
    *,
    max_backoff: float = 30.0,
) -> None:
    """Send one command; feed its answer back through the saga and mark it done, or reschedule
    it when the failure is transient."""
    try:
        answer = await _send(clients, queued.command)
    except grpc.aio.AioRpcError as error:
        if is_transient(error):
            delay = min(0.2 * 2**queued.attempts, max_backoff)
            log.warning(
                "saga command %s failed (%s); retrying in %.1fs",
                type(queued.command).__name__,
                error.code().name,
                delay,
            )
            await units.run(
                reschedule_command,
                queued,
                time.time() + delay,
                f"{error.code().name}: {error.details()}",
            )
            return
        answer = _final_answer(queued.command, error)
    await units.run(settle_command, saga, queued, answer, clock())


def settle_command(
    uow: UnitOfWork,
    saga: FulfillmentSaga,
    queued: repo.QueuedCommand,
    answer: SagaInput | None,
    now: datetime,
) -> None:
    """Apply the command's answer (if any) and mark the command done, in one unit of work."""
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
