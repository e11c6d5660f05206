"""The shipment worker's hand-over: a pick the consumer queues leased to the worker is packed and
its label booked at once, with no claim transaction; a pick never handed over (the process died
after the commit) waits out its lease and a round takes it; stop drains what was handed over;
handed-over work is bounded by the worker's concurrency.

shipment's database is real (SQLite and PostgreSQL); inventory and carrier-adapter are the real
services, in-process, with the sandbox carrier.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from crossdock.carrier.v1 import carrier_service_pb2_grpc as carrier_grpc
from crossdock.events.v1 import inventory_events_pb2
from crossdock.inventory.v1 import inventory_pb2
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from nats.aio.client import Client as NATS
from sqlalchemy import Connection, event, select

from services.kit.client import open_channel
from services.kit.db import Database
from services.kit.uow import UnitOfWork, UnitsOfWork
from services.kit.values import Address
from services.shipment.adapters.clients import CarrierClient, InventoryClient
from services.shipment.adapters.contracts import mapper
from services.shipment.adapters.store import migrate
from services.shipment.adapters.store import tables as t
from services.shipment.app import intake
from services.shipment.app.booking import Booking, BookingSettings
from services.shipment.domain.model import ShipmentStatus
from services.shipment.domain.packing import PickedUnits
from services.shipment.domain.shipment import OrderRef, PendingPick
from services.shipment.entrypoints.consumers import event_handlers
from services.shipment.entrypoints.workers import ShipmentWorker, WorkerSettings
from tests.fixtures.nats import NatsServer
from tests.fixtures.running import (
    CarrierAdapter,
    carrier_env,
    running_carrier_adapter,
    running_inventory,
)
from tests.fixtures.spine import EAST, seed_catalog

PICK_COMPLETED = "crossdock.inventory.pick_completed.v1"
LEASE_SECONDS = 60.0
HOME = Address(
    name="Ada",
    lines=("1 Rodeo Dr",),
    city="Beverly Hills",
    region="CA",
    postal_code="90210",
    country_code="US",
)


@dataclass
class Clock:
    """shipment's clock, moved by the test (leases are read against it)."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Rig:
    db: Database
    units: UnitsOfWork
    worker: ShipmentWorker
    carrier: CarrierAdapter
    clock: Clock
    commits: list[int]

    async def handle_picks(self, *pick_ids: str) -> None:
        """PickCompleted for each pick, handled by shipment's consumer in one transaction."""
        handler = event_handlers(self.clock, self.worker.wake, packer=self.worker).route(
            PICK_COMPLETED
        )
        assert handler is not None and handler.handler is not None
        handle = handler.handler

        def apply(conn: Connection) -> None:
            for pick_id in pick_ids:
                handle(pick_completed(pick_id), {}, conn)

        await self.db.run(apply)

    async def statuses(self) -> list[ShipmentStatus]:
        rows = await self.db.run(
            lambda conn: conn.execute(select(t.shipments.c.status).order_by(t.shipments.c.seq))
        )
        return [ShipmentStatus(row.status) for row in rows]

    async def queued(self) -> list[tuple[str, float]]:
        """The pending picks and when each is due (or its lease ends)."""
        table = t.pending_picks
        rows = await self.db.run(
            lambda conn: conn.execute(select(table.c.pick_id, table.c.next_attempt_at)).all()
        )
        return [(row.pick_id, row.next_attempt_at) for row in rows]


def pick_completed(pick_id: str) -> inventory_events_pb2.PickCompleted:
    return inventory_events_pb2.PickCompleted(
        pick_id=pick_id,
        order_id="ord_handover",
        location_id=EAST,
        lines=[
            inventory_pb2.PickConfirmationLine(order_line_number=1, sku="KETTLE", quantity_picked=2)
        ],
    )


def pending(pick_id: str) -> PendingPick:
    return PendingPick(pick_id, "ord_handover", EAST, (PickedUnits(1, "KETTLE", 2),), "corr")


@contextlib.asynccontextmanager
async def rig(
    db_url: str,
    tmp_path: Path,
    nats_server: NatsServer,
    nats_client: NATS,
    *,
    concurrency: int = 16,
    label_delay: float = 0.0,
) -> AsyncIterator[Rig]:
    carrier = carrier_env(
        f"sqlite:///{tmp_path / 'carrier'}.db",
        nats_server.url,
        ACCOUNT_SANDBOX_LABEL_DELAY_SECONDS=str(label_delay),
    )
    async with (
        running_inventory(
            f"sqlite:///{tmp_path / 'inventory'}.db", nats_server.url, nats_client
        ) as inventory,
        running_carrier_adapter(carrier) as carrier_adapter,
    ):
        await seed_catalog(inventory.stub, {"KETTLE": (1.5, "40.00")}, {("KETTLE", EAST): 10})
        migrate(db_url)
        db = Database(db_url, service="shipment", event_mapper=mapper)
        commits = [0]
        event.listen(db.engine, "commit", lambda _conn: commits.__setitem__(0, commits[0] + 1))
        inventory_channel = open_channel(
            f"127.0.0.1:{inventory.server.port}", default_timeout_seconds=10.0
        )
        carrier_channel = open_channel(
            f"127.0.0.1:{carrier_adapter.server.port}", default_timeout_seconds=10.0
        )
        clock = Clock()
        units = UnitsOfWork(db)
        booking = Booking(
            units,
            InventoryClient(inv_grpc.InventoryServiceStub(inventory_channel)),
            CarrierClient(carrier_grpc.CarrierAdapterServiceStub(carrier_channel)),
            clock,
            BookingSettings(label_timeout_seconds=10.0),
        )
        settings = WorkerSettings(concurrency=concurrency, lease_seconds=LEASE_SECONDS)
        # Never started: no polling rounds run unless a test calls run_once.
        worker = ShipmentWorker(booking, settings)

        def placed(uow: UnitOfWork) -> None:
            intake.record_order(uow, OrderRef("ord_handover", "ptn_handover", 2, HOME))

        await units.run(placed)
        try:
            yield Rig(db, units, worker, carrier_adapter, clock, commits)
        finally:
            await worker.stop()
            await inventory_channel.close(None)
            await carrier_channel.close(None)
            await db.close()


def manifested(statuses: Sequence[ShipmentStatus], count: int) -> bool:
    return list(statuses) == [ShipmentStatus.MANIFESTED] * count


async def test_a_handed_over_pick_is_packed_and_booked_at_once_without_a_claim(
    db_url: str, tmp_path: Path, nats_server: NatsServer, nats_client: NATS
) -> None:
    async with rig(db_url, tmp_path, nats_server, nats_client) as r:
        await r.handle_picks("pck_handed")
        handled = r.commits[0]
        await r.worker.stop()  # waits for the handed-over work; no round ever ran

        assert manifested(await r.statuses(), 1)
        assert r.carrier.label_bookings() == 1
        # Packed, then manifested (the label's quote is chosen and stored by carrier-adapter's
        # shop and book): two transactions, none of them a claim.
        assert r.commits[0] - handled == 2 + 1  # + the read of the statuses
        assert await r.queued() == []
        assert await r.worker.run_once() == 0  # nothing left for a round (lease released)


async def test_a_pick_never_handed_over_waits_out_its_lease_then_a_round_takes_it(
    db_url: str, tmp_path: Path, nats_server: NatsServer, nats_client: NATS
) -> None:
    async with rig(db_url, tmp_path, nats_server, nats_client) as r:
        # What the consumer committed before its process died, before the hand-over.
        start = r.clock.now
        lease_until = start.timestamp() + LEASE_SECONDS

        def queue_leased(uow: UnitOfWork) -> bool:
            return intake.record_pick(uow, pending("pck_orphan"), start, lease_until=lease_until)

        assert await r.units.run(queue_leased)
        assert await r.queued() == [("pck_orphan", lease_until)]

        r.clock.now = start + timedelta(seconds=LEASE_SECONDS - 1)
        assert await r.worker.run_once() == 0  # still leased: no round takes it
        assert await r.statuses() == []

        r.clock.now = start + timedelta(seconds=LEASE_SECONDS + 1)
        assert await r.worker.run_once() == 1  # packed and booked in the round's job
        assert manifested(await r.statuses(), 1)
        assert r.carrier.label_bookings() == 1
        assert await r.worker.run_once() == 0


async def test_stop_drains_handed_over_work_then_picks_are_queued_due_for_a_round(
    sqlite_url: str, tmp_path: Path, nats_server: NatsServer, nats_client: NATS
) -> None:
    async with rig(sqlite_url, tmp_path, nats_server, nats_client, label_delay=0.5) as r:
        await r.handle_picks("pck_first")
        await asyncio.sleep(0.1)  # the booking is under way at the carrier
        await r.worker.stop()
        assert manifested(await r.statuses(), 1)  # stop waited for it
        assert r.carrier.label_bookings() == 1

        # Stopping: the next pick is queued due at once, for a round (of the next process).
        assert r.worker.hand_over_lease() is None
        await r.handle_picks("pck_after_stop")
        await asyncio.sleep(0.2)
        assert await r.queued() == [("pck_after_stop", r.clock.now.timestamp())]
        assert manifested(await r.statuses(), 1)


async def test_handed_over_work_is_bounded_by_the_worker_concurrency(
    sqlite_url: str, tmp_path: Path, nats_server: NatsServer, nats_client: NATS
) -> None:
    async with rig(
        sqlite_url, tmp_path, nats_server, nats_client, concurrency=2, label_delay=0.4
    ) as r:
        await r.handle_picks(*(f"pck_{n}" for n in range(5)))
        most_in_hand = 0
        for _ in range(200):
            statuses = await r.statuses()
            # A shipment is CREATED from its packing to its manifest, all within one slot.
            most_in_hand = max(most_in_hand, statuses.count(ShipmentStatus.CREATED))
            if manifested(statuses, 5):
                break
            await asyncio.sleep(0.05)
        assert manifested(await r.statuses(), 5)
        assert 1 <= most_in_hand <= 2
        assert r.carrier.label_bookings() == 5


async def test_a_pick_handed_over_twice_is_packed_once_and_one_not_queued_not_at_all(
    sqlite_url: str, tmp_path: Path, nats_server: NatsServer, nats_client: NATS
) -> None:
    async with rig(sqlite_url, tmp_path, nats_server, nats_client) as r:
        # A consumer batch re-run after a rolled-back savepoint runs its after-commit callbacks
        # twice; one whose savepoint stayed rolled back hands over a pick that is not queued.
        start = r.clock.now

        def queue_leased(uow: UnitOfWork) -> bool:
            lease_until = start.timestamp() + LEASE_SECONDS
            return intake.record_pick(uow, pending("pck_twice"), start, lease_until=lease_until)

        assert await r.units.run(queue_leased)
        r.worker.pack_now(pending("pck_twice"))
        r.worker.pack_now(pending("pck_twice"))
        r.worker.pack_now(pending("pck_rolled_back"))
        await r.worker.stop()

        assert manifested(await r.statuses(), 1)
        assert r.carrier.label_bookings() == 1
        assert await r.queued() == []
