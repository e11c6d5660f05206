"""The shipment worker: packs queued picks into shipments and books their labels.

Both steps call other services (inventory's item master, carrier-adapter's rates and labels),
so they run here, outside any transaction, and settle each result in one unit of work.

Exactly one label per shipment: the shipment id is the booking's idempotency key, so a call that
timed out (and may have booked) is simply made again and carrier-adapter returns the same label.
The chosen quote is stored before booking so every retry books the same one. Work is leased in
the database, so several replicas never pack or book the same thing at once; a crashed worker's
lease runs out and another takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import grpc
from crossdock.carrier.v1 import carrier_pb2
from crossdock.carrier.v1 import carrier_service_pb2 as carrier_svc
from crossdock.carrier.v1 import carrier_service_pb2_grpc as carrier_grpc
from crossdock.common.v1 import common_pb2
from crossdock.inventory.v1 import inventory_service_pb2 as inv_svc
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from crossdock.shipment.v1 import shipment_pb2

from services.kit.db import Database
from services.shipment import flow
from services.shipment.api.mapping import item_spec, parcels_of, quote_of
from services.shipment.domain.model import ServiceLevel
from services.shipment.domain.packing import ItemSpec
from services.shipment.domain.rating import choose
from services.shipment.store import repository as repo

log = logging.getLogger(__name__)

# Codes worth calling again later; anything else is the other service's final word.
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


@dataclass(frozen=True)
class WorkerSettings:
    max_box_weight_kg: float = 30.0
    carrier_preference: tuple[str, ...] = ()
    label_timeout_seconds: float = 10.0
    label_max_attempts: int = 8
    retry_base_delay_seconds: float = 0.5
    retry_max_delay_seconds: float = 60.0
    poll_interval_seconds: float = 0.5
    batch_size: int = 50
    concurrency: int = 16
    lease_seconds: float = 120.0


class ShipmentWorker:
    def __init__(
        self,
        db: Database,
        inventory: inv_grpc.InventoryServiceAsyncStub,
        carriers: carrier_grpc.CarrierAdapterServiceAsyncStub,
        clock: Callable[[], datetime],
        settings: WorkerSettings,
    ) -> None:
        self._db = db
        self._inventory = inventory
        self._carriers = carriers
        self._clock = clock
        self._settings = settings
        self._items: dict[str, ItemSpec] = {}
        self._addresses: dict[str, common_pb2.Address] = {}
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="shipment-worker")

    async def stop(self) -> None:
        """Finish the work in hand, then stop."""
        self._stopping.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            await task

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                done = await self.run_once()
            except Exception:
                log.exception("shipment worker round failed")
                done = 0
            if done == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.poll_interval_seconds)
                self._wake.clear()

    async def run_once(self) -> int:
        """Pack every due pick, then book every due label, once; returns how many were tried."""
        s = self._settings
        now = self._clock().timestamp()
        picks = await self._db.run(repo.claim_pending_picks, now, s.batch_size, s.lease_seconds)
        await self._each(self._pack(pick) for pick in picks)
        due = await self._db.run(repo.claim_label_due, now, s.batch_size, s.lease_seconds)
        await self._each(self._book(stored) for stored in due)
        return len(picks) + len(due)

    async def _each(self, jobs: Iterable[Coroutine[Any, Any, None]]) -> None:
        async def bounded(job: Coroutine[Any, Any, None]) -> None:
            async with self._slots:
                await job

        await asyncio.gather(*(bounded(job) for job in jobs))

    def _backoff(self, attempts: int) -> float:
        """Exponential with full jitter, capped."""
        s = self._settings
        ceiling = min(s.retry_base_delay_seconds * 2**attempts, s.retry_max_delay_seconds)
        return random.uniform(ceiling / 2, ceiling)

    # -- packing -------------------------------------------------------------------------

    async def _pack(self, pick: repo.PendingPick) -> None:
        try:
            items = await self._item_specs({str(line["sku"]) for line in pick.lines})
            ship_from = await self._address(pick.location_id)
            await self._db.run(
                flow.create_shipment,
                pick,
                items,
                ship_from,
                self._settings.max_box_weight_kg,
                self._clock(),
            )
            self._wake.set()  # its label is due now
        except Exception as error:
            attempts = pick.attempts + 1
            due = self._clock().timestamp() + self._backoff(attempts)
            log.warning("packing pick %s failed (attempt %d): %s", pick.pick_id, attempts, error)
            await self._db.run(repo.reschedule_pick, pick.pick_id, attempts, due, str(error))

    async def _item_specs(self, skus: set[str]) -> dict[str, ItemSpec]:
        missing = [sku for sku in skus if sku not in self._items]
        answers = await asyncio.gather(
            *(self._inventory.GetItem(inv_svc.GetItemRequest(sku=sku)) for sku in missing)
        )
        for answer in answers:
            self._items[answer.item.sku] = item_spec(answer.item)
        return {sku: self._items[sku] for sku in skus}

    async def _address(self, location_id: str) -> common_pb2.Address:
        if location_id not in self._addresses:
            answer = await self._inventory.GetLocation(
                inv_svc.GetLocationRequest(location_id=location_id)
            )
            self._addresses[location_id] = answer.location.address
        return self._addresses[location_id]

    # -- labels --------------------------------------------------------------------------

    async def _book(self, stored: repo.StoredShipment) -> None:
        shipment = stored.shipment
        try:
            rate = shipment.rate if shipment.HasField("rate") else await self._shop(shipment)
            if rate is None:
                level = ServiceLevel(shipment.service_level).name
                await self._db.run(
                    flow.label_failed,
                    shipment.shipment_id,
                    f"no carrier rate meets service level {level}",
                    self._clock(),
                )
                return
            answer = await self._carriers.BookLabel(
                carrier_svc.BookLabelRequest(
                    idempotency_key=shipment.shipment_id,
                    rate_id=rate.rate_id,
                    ship_from=shipment.ship_from,
                    ship_to=shipment.ship_to,
                    parcels=parcels_of(shipment),
                    label_format=carrier_pb2.LABEL_FORMAT_PDF,
                    reference=shipment.order_id[:64],
                ),
                timeout=self._settings.label_timeout_seconds,
            )
            await self._db.run(flow.manifest, shipment.shipment_id, answer.label, self._clock())
        except grpc.aio.AioRpcError as error:
            await self._label_error(stored, error)
        except Exception as error:
            log.exception("booking shipment %s failed", shipment.shipment_id)
            await self._retry_label(stored, f"{type(error).__name__}: {error}")

    async def _shop(self, shipment: shipment_pb2.Shipment) -> carrier_pb2.Rate | None:
        answer = await self._carriers.GetRates(
            carrier_svc.GetRatesRequest(
                ship_from=shipment.ship_from,
                ship_to=shipment.ship_to,
                parcels=parcels_of(shipment),
            ),
            timeout=self._settings.label_timeout_seconds,
        )
        rates = {rate.rate_id: rate for rate in answer.rates}
        best = choose(
            [quote_of(rate) for rate in answer.rates],
            ServiceLevel(shipment.service_level),
            self._settings.carrier_preference,
        )
        if best is None:
            if answer.carrier_errors and any(e.retryable for e in answer.carrier_errors):
                raise RuntimeError(
                    "no rate yet: "
                    + "; ".join(f"{e.carrier}: {e.message}" for e in answer.carrier_errors)
                )
            return None
        chosen: carrier_pb2.Rate = rates[best.rate_id]
        await self._db.run(flow.save_rate, shipment.shipment_id, chosen, self._clock())
        return chosen

    async def _label_error(self, stored: repo.StoredShipment, error: grpc.aio.AioRpcError) -> None:
        reason = f"{error.code().name}: {error.details()}"
        shipment_id = stored.shipment.shipment_id
        if error.code() in TRANSIENT:
            await self._retry_label(stored, reason)
        elif error.code() == grpc.StatusCode.FAILED_PRECONDITION and stored.label_attempts < 2:
            # Typically the quote expired before it was booked: shop again.
            await self._db.run(flow.clear_rate, shipment_id, self._clock())
            await self._retry_label(stored, reason)
        else:
            await self._db.run(flow.label_failed, shipment_id, reason, self._clock())

    async def _retry_label(self, stored: repo.StoredShipment, reason: str) -> None:
        attempts = stored.label_attempts + 1
        shipment_id = stored.shipment.shipment_id
        now = self._clock()
        if attempts >= self._settings.label_max_attempts:
            await self._db.run(flow.label_failed, shipment_id, reason, now)
            return
        log.warning("label for %s not booked (attempt %d): %s", shipment_id, attempts, reason)
        due = now.timestamp() + self._backoff(attempts)
        await self._db.run(
            repo.reschedule_label, shipment_id, attempts, due, reason, now.timestamp()
        )
