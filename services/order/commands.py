"""The saga command worker: executes queued commands against inventory over gRPC and feeds each
answer back through the saga in one unit of work (answer applied + command marked done).

Every command is idempotent on the inventory side (ReserveStock and ReceiveStock carry keys,
releasing twice is harmless), so a crash between the call and the commit only repeats a call
that returns the same answer. Transient failures are rescheduled with backoff; a step that never
succeeds is caught by the saga's step timeout (EXCEPTION, then RetryOrderStep).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime

import grpc
from crossdock.inventory.v1 import inventory_pb2 as inv
from crossdock.inventory.v1 import inventory_service_pb2 as inv_svc
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from crossdock.shipment.v1 import shipment_service_pb2 as shp_svc
from crossdock.shipment.v1 import shipment_service_pb2_grpc as shp_grpc
from sqlalchemy import Connection

from services.kit.db import Database
from services.order import flow
from services.order.domain import Context, FulfillmentSaga, HeldLine, SagaInput
from services.order.domain import messages as m
from services.order.store import repository as repo

log = logging.getLogger(__name__)

# Codes worth calling again later; anything else is the service's final word.
TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
    }
)


class CommandWorker:
    """One loop per process: claim (lease) due commands, execute them in order, settle each."""

    def __init__(
        self,
        db: Database,
        saga: FulfillmentSaga,
        inventory: inv_grpc.InventoryServiceAsyncStub,
        clock: Callable[[], datetime],
        *,
        shipments: shp_grpc.ShipmentServiceAsyncStub | None = None,
        poll_interval: float = 0.5,
        batch_size: int = 50,
        max_backoff: float = 30.0,
        lease_seconds: float = 60.0,
    ) -> None:
        self._db = db
        self._saga = saga
        self._inventory = inventory
        self._shipments = shipments
        self._clock = clock
        self._poll_interval = poll_interval
        self._batch_size = batch_size
        self._max_backoff = max_backoff
        self._lease_seconds = lease_seconds
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Run now (called after a commit that queued commands)."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="order-saga-commands")

    async def stop(self) -> None:
        """Finish the command in hand, then stop."""
        self._stopping.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            await task

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                executed = await self.run_once()
            except Exception:
                log.exception("saga command batch failed")
                executed = 0
            if executed == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval)
                self._wake.clear()

    async def run_once(self) -> int:
        """Execute every due command once; returns how many were attempted."""
        due = await self._db.run(
            repo.claim_commands, self._clock(), self._batch_size, self._lease_seconds
        )
        for queued in due:
            if self._stopping.is_set():
                break
            await self._execute(queued)
        return len(due)

    async def _execute(self, queued: repo.QueuedCommand) -> None:
        try:
            answer = await self._call(queued.command)
        except grpc.aio.AioRpcError as error:
            if error.code() in TRANSIENT:
                attempts = queued.attempts + 1
                delay = min(0.2 * 2**queued.attempts, self._max_backoff)
                log.warning(
                    "saga command %s failed (%s); retrying in %.1fs",
                    type(queued.command).__name__,
                    error.code().name,
                    delay,
                )
                await self._db.run(
                    repo.reschedule_command,
                    queued.id,
                    attempts,
                    time.time() + delay,
                    f"{error.code().name}: {error.details()}",
                )
                return
            answer = _final_answer(queued.command, error)
        await flow.run_retrying(self._db, self._settle, queued, answer, self._clock())
        self.wake()  # the answer may have queued follow-up commands

    def _settle(
        self,
        conn: Connection,
        queued: repo.QueuedCommand,
        answer: SagaInput | None,
        now: datetime,
    ) -> None:
        if answer is not None:
            flow.apply_input(conn, self._saga, queued.order_id, answer, Context(now))
        repo.finish_command(conn, queued.id, now)

    async def _call(self, command: m.SagaCommand) -> SagaInput | None:
        stub = self._inventory
        if isinstance(command, m.RequestAvailability):
            availability = await stub.GetAvailability(
                inv_svc.GetAvailabilityRequest(skus=list(command.skus))
            )
            snapshot = {
                a.sku: {p.location_id: int(p.quantity_available) for p in a.positions}
                for a in availability.availability
            }
            return m.AvailabilityObserved(command.request_id, snapshot)
        if isinstance(command, m.ReserveStock):
            response = await stub.ReserveStock(
                inv_svc.ReserveStockRequest(
                    order_id=command.order_id,
                    location_id=command.location_id,
                    lines=[
                        inv_svc.ReserveLine(
                            order_line_number=h.line_number, sku=h.sku, quantity=h.quantity
                        )
                        for h in command.lines
                    ],
                    # The saga plans against a snapshot; PARTIAL takes what is really there.
                    policy=inv.RESERVATION_POLICY_PARTIAL,
                    idempotency_key=command.idempotency_key,
                )
            )
            if not response.HasField("reservation"):
                return m.ReservationMade(command.idempotency_key, None, ())
            held = tuple(
                HeldLine(x.order_line_number, x.sku, int(x.quantity))
                for x in response.reservation.lines
            )
            return m.ReservationMade(
                command.idempotency_key, response.reservation.reservation_id, held
            )
        if isinstance(command, m.ReleaseReservation):
            await stub.ReleaseReservation(
                inv_svc.ReleaseReservationRequest(
                    reservation_id=command.reservation_id, reason=command.reason[:200]
                )
            )
            return None
        if isinstance(command, m.RestockPicked):
            await stub.ReceiveStock(
                inv_svc.ReceiveStockRequest(
                    location_id=command.location_id,
                    source=inv.RECEIPT_SOURCE_RETURN,
                    source_reference=command.order_id,
                    lines=[
                        inv_svc.ReceiptLineInput(sku=h.sku, quantity=h.quantity)
                        for h in command.lines
                    ],
                    idempotency_key=command.idempotency_key,
                )
            )
            return None
        if isinstance(command, m.CancelPickTask):
            # Inventory withdraws a reservation's open pick when the reservation is released
            # (ReleaseReservation, always queued with this command), so nothing is left to do.
            return None
        if isinstance(command, m.RetryShipment):
            if self._shipments is None:
                log.warning(
                    "no SHIPMENT_TARGET configured: RetryShipment %s skipped", command.shipment_id
                )
                return None
            # The shipment's own events (manifested) move the order on; nothing to answer.
            await self._shipments.RetryLabel(
                shp_svc.RetryLabelRequest(shipment_id=command.shipment_id)
            )
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
