"""The outbox relay against a real nats-server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from types import ModuleType

from nats.aio.client import Client as NATS
from sqlalchemy import Connection, text

from services.kit import outbox
from services.kit.leader import leadership_for
from services.kit.metrics import ServiceMetrics
from services.kit.outbox import append
from services.kit.relay import OutboxRelay, RelaySettings
from services.kit.streams import ensure_streams
from tests.fixtures.events import stream_messages
from tests.fixtures.kittest.harness import open_db, produce
from tests.fixtures.waiting import wait_for

FAST = RelaySettings(poll_interval=0.2, backoff_initial=0.05, backoff_max=0.5, ack_timeout=2.0)


async def wait_until(predicate, timeout: float = 15.0, interval: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    """Wait (bounded) until `predicate()`, sync or async, is truthy; fail if it never is."""
    met = await wait_for(predicate, bool, timeout=timeout, interval=interval)
    if not met:
        raise AssertionError("condition not met in time")


async def test_relay_publishes_pending_rows_and_marks_them_sent(
    db_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    await ensure_streams(js)
    db = open_db(db_url)
    metrics = ServiceMetrics("kittest")
    ids = await db.run(produce, pb, [("t-1", 1), ("t-2", 1), ("t-1", 2)])
    relay = OutboxRelay(db, nats_client, settings=FAST, metrics=metrics)
    assert await relay.flush(10)

    messages = await stream_messages(js, "ORDER")
    assert [m.headers["Nats-Msg-Id"] for m in messages] == ids
    assert [m.headers["ce-id"] for m in messages] == ids
    assert pb.ThingHappened.FromString(messages[2].data).n == 2
    assert (await db.run(outbox.backlog))[0] == 0
    sample = metrics.registry.get_sample_value(
        "crossdock_events_published_total", {"subject": "crossdock.order.thing_happened.v1"}
    )
    assert sample == 3
    # One batch: t-1's second event follows its first's ack within the same batch.
    batches = metrics.registry.get_sample_value("crossdock_relay_batch_size_count")
    assert batches == 1
    assert metrics.registry.get_sample_value("crossdock_relay_batch_size_sum") == 3
    await relay.stop()
    await db.close()


async def test_relay_wakes_on_commit_not_on_poll(
    sqlite_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    await ensure_streams(js)
    db = open_db(sqlite_url)
    # A poll interval far beyond the wait below: only the commit signal can explain a publish.
    relay = OutboxRelay(db, nats_client, settings=RelaySettings(poll_interval=600))
    relay.start()
    await wait_until(lambda: relay.is_leader)
    await asyncio.sleep(0.3)  # let the loop reach its idle wait
    await db.run(produce, pb, [("t-1", 1)])

    async def published() -> bool:
        return (await js.stream_info("ORDER")).state.messages == 1

    await wait_until(published, timeout=10)
    await relay.stop()
    await db.close()


async def test_a_lingering_relay_publishes_rows_committed_meanwhile_in_one_batch(
    sqlite_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    await ensure_streams(js)
    db = open_db(sqlite_url)
    relay = OutboxRelay(db, nats_client, settings=RelaySettings(poll_interval=600, linger=0.5))
    relay.start()
    await wait_until(lambda: relay.is_leader)
    await asyncio.sleep(0.3)  # let the loop reach its idle wait
    committed = time.time()
    await db.run(produce, pb, [("t-1", 1)])  # wakes the relay, which lingers...
    await asyncio.sleep(0.2)
    await db.run(produce, pb, [("t-2", 1)])  # ...so this row joins the first one's batch

    async def published() -> bool:
        return (await js.stream_info("ORDER")).state.messages == 2

    await wait_until(published, timeout=10)
    first, second = [m.time for m in await stream_messages(js, "ORDER")]
    assert first.timestamp() - committed >= 0.4  # it waited out the linger
    assert (second - first).total_seconds() < 0.1  # and published both together
    await relay.stop()
    await db.close()


async def test_relay_preserves_per_aggregate_order(
    db_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    await ensure_streams(js)
    db = open_db(db_url)
    things = [f"t-{i}" for i in range(7)]
    # Interleave aggregates across many units of work, several events per aggregate per batch.
    for n in range(1, 31):
        await db.run(produce, pb, [(thing, n) for thing in things])
    relay = OutboxRelay(db, nats_client, settings=RelaySettings(batch_size=50))
    assert await relay.flush(30)

    seen: dict[str, list[int]] = {thing: [] for thing in things}
    for message in await stream_messages(js, "ORDER"):
        event = pb.ThingHappened.FromString(message.data)
        seen[event.thing_id].append(event.n)
    assert all(ns == list(range(1, 31)) for ns in seen.values()), seen
    await db.close()


async def test_a_failing_event_holds_back_only_its_own_aggregate(
    db_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    """A partial batch failure must not let a later event of that aggregate overtake it."""
    js = nats_client.jetstream()
    await ensure_streams(js)
    await js.delete_stream("CARRIER")  # publishes to crossdock.carrier.> now fail
    db = open_db(db_url)

    def unit_of_work(conn: Connection) -> None:
        append(conn, pb.ThingShipped(thing_id="a", n=1), "a", correlation_id="c")
        append(conn, pb.ThingHappened(thing_id="a", n=2), "a", correlation_id="c")
        append(conn, pb.ThingHappened(thing_id="b", n=1), "b", correlation_id="c")

    await db.run(unit_of_work)
    relay = OutboxRelay(db, nats_client, settings=FAST)
    assert not await relay.flush(1.5)  # cannot drain: a's head keeps failing
    order = [pb.ThingHappened.FromString(m.data) for m in await stream_messages(js, "ORDER")]
    assert [(e.thing_id, e.n) for e in order] == [("b", 1)]  # b flowed, a's n=2 waited

    await ensure_streams(js)  # the operator fixes the stream; a drains in order
    assert await relay.flush(10)
    order = [pb.ThingHappened.FromString(m.data) for m in await stream_messages(js, "ORDER")]
    assert [(e.thing_id, e.n) for e in order] == [("b", 1), ("a", 2)]
    carrier = await stream_messages(js, "CARRIER")
    assert carrier[0].time <= (await stream_messages(js, "ORDER"))[1].time  # a1 before a2
    await db.close()


async def test_only_one_relay_leads_per_database(db_url: str) -> None:
    db1, db2 = open_db(db_url), open_db(db_url)
    first, second = leadership_for(db1), leadership_for(db2)
    assert await first.acquire()
    assert not await second.acquire()
    assert await first.still_leader()
    await first.release()
    assert await second.acquire()  # takeover once the leader is gone
    await second.release()
    await db1.close()
    await db2.close()


async def test_sent_rows_are_purged_after_retention(sqlite_url: str, pb: ModuleType) -> None:
    db = open_db(sqlite_url)
    await db.run(produce, pb, [("t-1", 1), ("t-1", 2), ("t-2", 1)])
    rows = await db.run(outbox.fetch_pending, 10)
    await db.run(outbox.mark_sent, [rows[0].seq, rows[1].seq], time.time() - 7200)
    assert await db.run(outbox.purge_sent, 3600) == 2
    remaining = await db.run(lambda c: c.execute(text("SELECT COUNT(*) FROM outbox")).scalar())
    assert remaining == 1  # the pending row is never purged
    await db.close()


async def test_each_batch_costs_one_transaction_marking_it_and_reading_the_next(
    sqlite_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    """Marking a batch sent and reading the next pending rows share one transaction, so a
    backlog of N batches takes N + 1 transactions, and the relay knows when it may sleep."""
    from sqlalchemy import event

    js = nats_client.jetstream()
    await ensure_streams(js)
    db = open_db(sqlite_url)
    # Four rows, two per batch: two batches.
    ids = await db.run(produce, pb, [("t-1", 1), ("t-1", 2), ("t-1", 3), ("t-2", 1)])
    relay = OutboxRelay(db, nats_client, settings=replace(FAST, batch_size=2))
    assert await relay._ensure_leader()
    commits: list[int] = []
    event.listen(db.engine, "commit", lambda _conn: commits.append(1))

    results = [await relay.publish_batch() for _ in range(2)]

    assert [(r.sent, r.drained) for r in results] == [(2, False), (2, True)]
    assert len(commits) == 3  # the first read, then one per batch
    messages = await stream_messages(js, "ORDER")
    assert sorted(m.headers["ce-id"] for m in messages) == sorted(ids)
    t1 = [
        m.headers["ce-id"]
        for m in messages
        if pb.ThingHappened.FromString(m.data).thing_id == "t-1"
    ]
    assert t1 == ids[:3]  # per-aggregate order kept
    assert (await db.run(outbox.backlog))[0] == 0
    await relay.stop()
    await db.close()
