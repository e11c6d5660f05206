"""The saga command worker's round on the real order store (SQLite, then PostgreSQL).

What it pins down: the commands of different orders are sent concurrently and one order's one
after another in queue order; every answer of a round is settled in one transaction, where one
failing answer rolls back only itself and one order's answers settle in queue order even when
one of them is re-run after a Conflict; a transient failure reschedules only its command; and a
stop sends nothing new but settles what is in hand. Then CreateOrder's own path: its
reservations queued leased to it and sent at once (no claim transaction; handed over even
when the call is cancelled as it commits; sent outside the call's deadline and correlation id;
bounded and drained like a round), taken by a round once the lease runs out if they were never
settled, the servicer handing them over instead of waking the worker, and a replay answered
without a transaction of its own. Inventory is a fake client; the saga, the store and the units
of work are the real ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

import grpc
import pytest
from sqlalchemy import event, select

from services.kit.clock import utc_now
from services.kit.db import Database
from services.kit.errors import Conflict, Unavailable
from services.kit.request_context import (
    correlation_scope,
    current_correlation_id,
    deadline_scope,
    remaining_time,
)
from services.kit.uow import UnitOfWork, UnitsOfWork
from services.order.adapters.clients import InventoryClient, ShipmentClient
from services.order.adapters.contracts import event_mapper
from services.order.adapters.store import codec, migrate
from services.order.adapters.store import repository as repo
from services.order.adapters.store import tables as t
from services.order.app import orders, saga_commands, transitions
from services.order.app.saga_commands import SagaClients, Sent
from services.order.domain import (
    Context,
    FulfillmentSaga,
    HeldLine,
    OrderStatus,
    ReservationMade,
    ReserveStock,
    StaticCatalog,
)
from services.order.entrypoints.grpc import OrderApi
from services.order.entrypoints.workers import CommandWorker
from tests.order.service_support import order_request
from tests.order.support import CATALOG, EAST, PARTNER, WEST, order_input


class FakeInventory:
    """Inventory's ReserveStock as the saga sees it: holds what is asked, and records when each
    call starts and ends. `refusals` answers a key with an error; `overheld` holds one unit
    more than asked (an answer the saga rejects); `gate`, when set, holds every call until
    opened."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []  # ("start" | "end", idempotency key)
        self.in_flight: dict[str, int] = {}  # calls in flight, by order
        self.most_in_flight = 0
        self.most_in_flight_of_one_order = 0
        self.refusals: dict[str, grpc.StatusCode] = {}
        self.overheld: set[str] = set()
        self.gate: asyncio.Event | None = None
        self.capture_down = False  # capture_reads answers UNAVAILABLE
        self.cancel_caller = False  # the caller's call is cancelled right after capture_reads
        # Each ReserveStock's (deadline left, correlation id) of the context it was sent in.
        self.call_context: list[tuple[float | None, str | None]] = []

    async def capture_reads(
        self, skus: tuple[str, ...]
    ) -> tuple[StaticCatalog, dict[str, dict[str, int]]]:
        """CreateOrder's read: WIDGET available at EAST, GADGET at WEST (two reservations)."""
        if self.capture_down:
            raise Unavailable("inventory is unavailable", reason="INVENTORY_UNAVAILABLE")
        caller = asyncio.current_task()
        if self.cancel_caller and caller is not None:
            asyncio.get_running_loop().call_soon(caller.cancel)  # lands while it commits
        return CATALOG, {"WIDGET": {EAST: 5}, "GADGET": {WEST: 5}}

    def started(self) -> list[str]:
        return [key for what, key in self.log if what == "start"]

    async def reserve(self, command: ReserveStock) -> ReservationMade:
        key = command.idempotency_key
        self.call_context.append((remaining_time(), current_correlation_id()))
        self.log.append(("start", key))
        self.in_flight[command.order_id] = self.in_flight.get(command.order_id, 0) + 1
        self.most_in_flight = max(self.most_in_flight, sum(self.in_flight.values()))
        self.most_in_flight_of_one_order = max(
            self.most_in_flight_of_one_order, self.in_flight[command.order_id]
        )
        try:
            if self.gate is not None:
                await self.gate.wait()
            for _ in range(3):  # a network call: other tasks run meanwhile
                await asyncio.sleep(0)
            if key in self.refusals:
                raise grpc.aio.AioRpcError(
                    self.refusals[key], grpc.aio.Metadata(), grpc.aio.Metadata(), details="no"
                )
            held = command.lines
            if key in self.overheld:
                held = tuple(HeldLine(h.line_number, h.sku, h.quantity + 1) for h in held)
            return ReservationMade(key, f"res-{key}", held)
        finally:
            self.in_flight[command.order_id] -= 1
            self.log.append(("end", key))


def clients(inventory: FakeInventory) -> SagaClients:
    return SagaClients(cast(InventoryClient, inventory), cast(ShipmentClient, inventory))


@dataclass
class Store:
    units: UnitsOfWork
    db: Database
    commits: list[int]

    def place(self, order_id: str) -> list[ReserveStock]:
        """A new order whose two lines reserve at two warehouses: two ReserveStock commands,
        queued in that order."""
        now = utc_now()
        result = FulfillmentSaga().place(
            order_id=order_id,
            partner_id=PARTNER,
            order_input=order_input(("WIDGET", 2), ("GADGET", 1), external_id=f"EXT-{order_id}"),
            catalog=CATALOG,
            ctx=Context(now, f"corr-{order_id}"),
            availability={"WIDGET": {EAST: 5}, "GADGET": {WEST: 5}},
        )
        self.units.run_sync(transitions.commit, None, result, now)
        commands = [c for c in result.commands if isinstance(c, ReserveStock)]
        assert len(commands) == 2 == len(result.commands)
        return commands

    def rows(self) -> dict[str, tuple[int, bool, str]]:
        """(attempts, done, last error) of every queued command, by idempotency key."""

        def read(uow: UnitOfWork) -> dict[str, tuple[int, bool, str]]:
            rows = uow.conn.execute(select(t.saga_commands)).all()
            return {
                codec.loads(ReserveStock, r.payload).idempotency_key: (
                    int(r.attempts),
                    r.done_at is not None,
                    r.last_error,
                )
                for r in rows
            }

        return self.units.run_sync(read)

    def order(self, order_id: str) -> repo.Loaded:
        loaded = self.units.run_sync(lambda uow: repo.get_order(uow.conn, order_id))
        assert loaded is not None
        return loaded


@pytest.fixture
def database(db_urls: dict[str, str]) -> Iterator[Database]:
    migrate(db_urls["order"])
    yield Database(db_urls["order"], service="order", event_mapper=event_mapper)


@pytest.fixture
async def store(database: Database) -> AsyncIterator[Store]:
    commits: list[int] = []
    event.listen(database.engine, "commit", lambda _conn: commits.append(1))
    yield Store(UnitsOfWork(database), database, commits)
    await database.close()


def worker(store: Store, inventory: FakeInventory, **kwargs: int) -> CommandWorker:
    return CommandWorker(store.units, FulfillmentSaga(), clients(inventory), utc_now, **kwargs)


async def test_orders_are_sent_concurrently_in_queue_order_and_settled_in_one_transaction(
    store: Store,
) -> None:
    queued = {order_id: store.place(order_id) for order_id in ("ord_a", "ord_b", "ord_c")}
    inventory = FakeInventory()
    store.commits.clear()

    assert await worker(store, inventory).run_once() == 6

    # Different orders at once, never two of one order at once.
    assert inventory.most_in_flight == 3
    assert inventory.most_in_flight_of_one_order == 1
    for commands in queued.values():
        first, second = (c.idempotency_key for c in commands)
        log = inventory.log
        assert log.index(("end", first)) < log.index(("start", second))
    # One transaction claimed, one settled all six answers.
    assert len(store.commits) == 2
    assert all(done for _, done, _ in store.rows().values())
    for order_id, commands in queued.items():
        order = store.order(order_id).order
        assert set(order.reservations) == {f"res-{c.idempotency_key}" for c in commands}
        assert order.status is not OrderStatus.PLACED and not order.pending
    assert await worker(store, inventory).run_once() == 0


async def test_a_failure_costs_only_its_own_command(store: Store) -> None:
    a1, a2 = store.place("ord_a")
    b1, b2 = store.place("ord_b")
    c1, c2 = store.place("ord_c")
    inventory = FakeInventory()
    inventory.refusals[a1.idempotency_key] = grpc.StatusCode.UNAVAILABLE  # transient
    inventory.overheld.add(b1.idempotency_key)  # an answer the saga rejects when settling
    inventory.refusals[c1.idempotency_key] = grpc.StatusCode.FAILED_PRECONDITION  # for good
    store.commits.clear()

    assert await worker(store, inventory).run_once() == 6

    # Every command was sent, each order's in queue order, in spite of the failures.
    started = inventory.started()
    for first, second in ((a1, a2), (b1, b2), (c1, c2)):
        assert started.index(first.idempotency_key) < started.index(second.idempotency_key)
    assert len(store.commits) == 2
    rows = store.rows()
    # Transient: rescheduled, and the order's next command still went and settled.
    attempts, done, error = rows[a1.idempotency_key]
    assert (attempts, done) == (1, False) and error.startswith("UNAVAILABLE")
    assert rows[a2.idempotency_key][1]
    assert set(store.order("ord_a").order.reservations) == {f"res-{a2.idempotency_key}"}
    # Rejected when settling: rolled back alone, left leased (sent again when the lease ends).
    assert rows[b1.idempotency_key] == (0, False, "")
    assert rows[b2.idempotency_key][1]
    assert set(store.order("ord_b").order.reservations) == {f"res-{b2.idempotency_key}"}
    # Refused for good: the refusal is the answer, settled like any other.
    assert rows[c1.idempotency_key][1] and rows[c2.idempotency_key][1]
    assert not store.order("ord_c").order.pending


async def test_one_orders_answers_settle_in_queue_order_when_one_is_re_run(store: Store) -> None:
    a1, a2 = store.place("ord_a")
    (b1, _b2) = store.place("ord_b")
    due = await store.units.run(saga_commands.claim_due_commands, utc_now(), 10, 60.0)
    by_key = {q.command.idempotency_key: q for q in due if isinstance(q.command, ReserveStock)}
    sent = [
        Sent(
            by_key[c.idempotency_key],
            ReservationMade(c.idempotency_key, f"res-{c.idempotency_key}", c.lines),
        )
        for c in (a1, a2, b1)
    ]
    settle = saga_commands.settle_round(FulfillmentSaga(), utc_now, sent)
    settled: list[str] = []
    lost_once: set[str] = set()

    def racing(uow: UnitOfWork, item: Sent) -> None:
        assert isinstance(item.queued.command, ReserveStock)
        key = item.queued.command.idempotency_key
        if key == a1.idempotency_key and key not in lost_once:
            lost_once.add(key)
            raise Conflict("another writer saved ord_a first")
        settle(uow, item)
        settled.append(key)

    results = await store.units.run_batch(racing, sent)

    assert all(r.ok for r in results)
    # a1 lost a Conflict and was re-run: a2 waited for it instead of overtaking it.
    assert settled == [b1.idempotency_key, a1.idempotency_key, a2.idempotency_key]
    assert all(store.rows()[c.idempotency_key][1] for c in (a1, a2, b1))


async def test_a_stop_sends_nothing_new_and_settles_what_is_in_hand(store: Store) -> None:
    a1, a2 = store.place("ord_a")
    b1, b2 = store.place("ord_b")
    inventory = FakeInventory()
    inventory.gate = asyncio.Event()
    command_worker = worker(store, inventory)
    command_worker.start()

    async def both_first_commands_in_flight() -> None:
        while sum(inventory.in_flight.values()) < 2:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(both_first_commands_in_flight(), 30)
    stopping = asyncio.create_task(command_worker.stop())
    await asyncio.sleep(0)
    inventory.gate.set()
    await asyncio.wait_for(stopping, 30)

    assert sorted(inventory.started()) == sorted([a1.idempotency_key, b1.idempotency_key])
    rows = store.rows()
    assert rows[a1.idempotency_key][1] and rows[b1.idempotency_key][1]  # settled
    assert not rows[a2.idempotency_key][1] and not rows[b2.idempotency_key][1]  # still leased


# -- CreateOrder's reservations, sent at once ------------------------------------------------------


class HeldSender:
    """A CommandSender that keeps what it is handed (a process that dies right after commit)."""

    lease_seconds = 60.0

    def __init__(self) -> None:
        self.handed: list[repo.QueuedCommand] = []

    def send_now(self, queued: Sequence[repo.QueuedCommand]) -> None:
        self.handed += queued


def place_request(external_id: str = "EXT-ord") -> orders.PlaceOrder:
    return orders.PlaceOrder(
        PARTNER, order_input(("WIDGET", 2), ("GADGET", 1), external_id=external_id)
    )


async def place(
    store: Store,
    inventory: FakeInventory,
    sender: orders.CommandSender | None,
    external_id: str = "EXT-ord",
) -> orders.Placed:
    return await orders.place_order(
        store.units,
        cast(InventoryClient, inventory),
        FulfillmentSaga(),
        place_request(external_id),
        lambda: Context(utc_now(), "corr-place"),
        sender=sender,
    )


async def test_create_orders_reservations_are_sent_at_once_without_a_claim(store: Store) -> None:
    inventory = FakeInventory()
    held = HeldSender()
    placed = await place(store, inventory, held)

    assert held.handed == list(placed.commands)
    first, second = placed.commands
    assert not placed.replayed
    assert [type(q.command) for q in placed.commands] == [ReserveStock, ReserveStock]
    assert {q.order_id for q in placed.commands} == {placed.order.order_id}
    # Leased to the sender: a round of the worker does not take them.
    assert await store.units.run(saga_commands.claim_due_commands, utc_now(), 10, 60.0) == []

    store.commits.clear()
    command_worker = worker(store, inventory)
    command_worker.send_now(held.handed)
    await command_worker.drain_sends()

    assert isinstance(first.command, ReserveStock) and isinstance(second.command, ReserveStock)
    keys = [first.command.idempotency_key, second.command.idempotency_key]
    assert inventory.started() == keys  # one order's commands in queue order
    assert len(store.commits) == 1  # one transaction settled both answers; none claimed
    assert all(done for _, done, _ in store.rows().values())
    order = store.order(placed.order.order_id).order
    assert set(order.reservations) == {f"res-{key}" for key in keys}
    assert not order.pending and order.status is not OrderStatus.PLACED


async def test_a_call_cancelled_while_it_commits_still_hands_its_commands_over(
    store: Store,
) -> None:
    inventory = FakeInventory()
    inventory.cancel_caller = True
    held = HeldSender()
    call = asyncio.create_task(place(store, inventory, held))
    with pytest.raises(asyncio.CancelledError):
        await call

    async def handed_over() -> None:
        while not held.handed:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(handed_over(), 30)
    assert len(held.handed) == 2 == len(store.rows())


async def test_sends_at_once_carry_nothing_of_the_call_that_handed_them_over(
    store: Store,
) -> None:
    inventory = FakeInventory()
    command_worker = worker(store, inventory)
    with correlation_scope("corr-create-order"), deadline_scope(0.5):
        placed = await place(store, inventory, command_worker)
    await asyncio.sleep(1.0)  # past the call's deadline
    await command_worker.drain_sends()

    # Not bounded by CreateOrder's deadline nor tagged with its correlation id: a round's own.
    assert inventory.call_context == [(None, None), (None, None)]
    assert all(done for _, done, _ in store.rows().values())
    assert len(store.order(placed.order.order_id).order.reservations) == 2


async def test_sends_at_once_are_bounded_and_a_stop_settles_what_is_in_hand(store: Store) -> None:
    inventory = FakeInventory()
    inventory.gate = asyncio.Event()
    command_worker = worker(store, inventory, send_concurrency=1)
    a = await place(store, inventory, command_worker, external_id="EXT-a")
    await place(store, inventory, command_worker, external_id="EXT-b")

    async def one_command_in_flight() -> None:
        while sum(inventory.in_flight.values()) < 1:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(one_command_in_flight(), 30)
    stopping = asyncio.create_task(command_worker.stop())
    await asyncio.sleep(0)
    inventory.gate.set()
    await asyncio.wait_for(stopping, 30)

    assert inventory.most_in_flight == 1  # one order at a time, as send_concurrency says
    a1, a2 = (q.command for q in a.commands)
    assert isinstance(a1, ReserveStock) and isinstance(a2, ReserveStock)
    assert inventory.started() == [a1.idempotency_key]
    rows = store.rows()
    assert rows[a1.idempotency_key][1]  # settled before the stop returned
    # Not sent: still leased, for a round to take once the lease runs out.
    assert [done for _, done, _ in rows.values()].count(False) == 3


async def test_reservations_never_sent_at_once_go_in_a_round_once_their_lease_runs_out(
    store: Store,
) -> None:
    inventory = FakeInventory()
    held = HeldSender()
    placed = await place(store, inventory, held)  # and the process dies here

    later = utc_now() + timedelta(seconds=held.lease_seconds + 1)
    due = await store.units.run(saga_commands.claim_due_commands, later, 10, 60.0)

    assert [q.id for q in due] == [q.id for q in placed.commands]
    assert [q.command for q in due] == [q.command for q in placed.commands]


async def test_without_a_sender_create_orders_commands_are_due_for_the_worker(
    store: Store,
) -> None:
    inventory = FakeInventory()
    placed = await place(store, inventory, None)

    assert placed.commands == ()
    assert await worker(store, inventory).run_once() == 2
    assert all(done for _, done, _ in store.rows().values())


async def test_a_new_order_is_one_transaction_and_a_replay_is_answered_without_inventory(
    store: Store,
) -> None:
    inventory = FakeInventory()
    held = HeldSender()
    store.commits.clear()
    placed = await place(store, inventory, held)
    assert len(store.commits) == 1  # no replay check in a transaction of its own

    again = await place(store, inventory, held)
    assert again.replayed and again.commands == ()
    assert again.order.order_id == placed.order.order_id

    inventory.capture_down = True  # a replay still answers while inventory cannot
    down = await place(store, inventory, held)
    assert down.replayed and down.order.order_id == placed.order.order_id
    with pytest.raises(Unavailable):
        await place(store, inventory, held, external_id="EXT-new")
    assert held.handed == list(placed.commands)  # only the first order's, once
    assert len(store.rows()) == 2


async def test_the_servicer_hands_create_orders_reservations_over_instead_of_waking(
    store: Store,
) -> None:
    inventory = FakeInventory()
    woken: list[str] = []

    def api(sender: orders.CommandSender | None) -> OrderApi:
        return OrderApi(
            store.units,
            FulfillmentSaga(),
            cast(InventoryClient, inventory),
            shipments=cast(ShipmentClient, inventory),
            on_commands=lambda: woken.append("woken"),
            send_at_once=sender,
        )

    held = HeldSender()
    request = order_request([("WIDGET", 2), ("GADGET", 1)], external_id="EXT-api")
    created = await api(held).CreateOrder(request, None)
    assert [q.order_id for q in held.handed] == [created.order.order_id] * 2
    assert woken == []

    older = order_request([("WIDGET", 1)], external_id="EXT-api-2")
    await api(None).CreateOrder(older, None)  # without a sender the worker is woken, as before
    assert woken == ["woken"]
