"""The relay publishes every pending row of a batch in rounds: an aggregate's next event goes out
in the same batch, once the previous one was acked, and never after one that was not."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from types import ModuleType

from nats.aio.client import Client as NATS
from sqlalchemy import Connection, event, text

from services.kit import outbox
from services.kit.bus import connect
from services.kit.consumer import ConsumerSettings, EventConsumer
from services.kit.relay import OutboxRelay, RelaySettings
from services.kit.streams import StreamSettings, ensure_streams
from tests.fixtures.events import stream_messages
from tests.fixtures.kittest.harness import open_db, produce, read_effects, registry_for
from tests.fixtures.nats import NatsServer
from tests.kit.test_consumer import drain

FAST = RelaySettings(poll_interval=0.2, backoff_initial=0.05, backoff_max=0.5, ack_timeout=2.0)


def _row(seq: int, aggregate_id: str) -> outbox.OutboxRow:
    return outbox.OutboxRow(seq, f"ev-{seq}", "crossdock.order.x.v1", aggregate_id, {}, b"", 0.0)


def test_publish_rounds_put_the_kth_row_of_each_aggregate_in_round_k() -> None:
    rows = [_row(1, "a"), _row(2, "b"), _row(3, "a"), _row(4, "c"), _row(5, "a"), _row(6, "b")]
    rounds = outbox.publish_rounds(rows)
    assert [[row.seq for row in round_rows] for round_rows in rounds] == [[1, 2, 4], [3, 6], [5]]
    assert outbox.publish_rounds([]) == []


def _things(messages: list[object], pb: ModuleType) -> list[tuple[str, int]]:
    found = [pb.ThingHappened.FromString(m.data) for m in messages]  # type: ignore[attr-defined]
    return [(e.thing_id, e.n) for e in found]


async def test_events_one_unit_of_work_commits_for_an_aggregate_go_out_in_one_batch_in_order(
    db_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    await ensure_streams(js)
    db = open_db(db_url)
    await db.run(produce, pb, [("t-1", 1), ("t-1", 2), ("t-2", 1), ("t-1", 3)])
    relay = OutboxRelay(db, nats_client, settings=FAST)
    assert await relay._ensure_leader()
    commits: list[bool] = []

    def count_commit(_conn: Connection) -> None:
        commits.append(True)

    event.listen(db.engine, "commit", count_commit)
    result = await relay.publish_batch()
    event.remove(db.engine, "commit", count_commit)

    assert (result.sent, result.failed, result.drained) == (4, 0, True)
    assert len(commits) == 2  # the read, then ONE mark-sent for all four
    things = _things(await stream_messages(js, "ORDER"), pb)
    assert [n for thing, n in things if thing == "t-1"] == [1, 2, 3]
    assert (await db.run(outbox.backlog))[0] == 0
    await relay.stop()
    await db.close()


async def test_a_row_without_ack_holds_back_the_rest_of_its_aggregate_in_the_batch(
    db_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    """A failed head keeps its successors unpublished, and so does a failure in the middle of an
    aggregate's chain; what came before it is marked sent, other aggregates flow on."""
    js = nats_client.jetstream()
    await ensure_streams(js)
    await js.delete_stream("CARRIER")  # publishes to crossdock.carrier.> now fail
    db = open_db(db_url)

    def unit_of_work(conn: Connection) -> None:
        def happened(thing: str, n: int) -> None:
            outbox.append(conn, pb.ThingHappened(thing_id=thing, n=n), thing, correlation_id="c")

        def shipped(thing: str, n: int) -> None:
            outbox.append(conn, pb.ThingShipped(thing_id=thing, n=n), thing, correlation_id="c")

        shipped("head", 1)  # fails...
        happened("head", 2)  # ...so this waits
        happened("mid", 1)
        shipped("mid", 2)  # fails...
        happened("mid", 3)  # ...so this waits
        happened("ok", 1)
        happened("ok", 2)

    await db.run(unit_of_work)
    relay = OutboxRelay(db, nats_client, settings=FAST)
    assert await relay._ensure_leader()

    result = await relay.publish_batch()

    assert (result.sent, result.failed) == (3, 2)
    assert _things(await stream_messages(js, "ORDER"), pb) == [("mid", 1), ("ok", 1), ("ok", 2)]
    pending = await db.run(outbox.fetch_pending, 10)
    assert [(row.aggregate_id, row.subject.split(".")[2]) for row in pending] == [
        ("head", "thing_shipped"),
        ("head", "thing_happened"),
        ("mid", "thing_shipped"),
        ("mid", "thing_happened"),
    ]

    await ensure_streams(js)  # the operator fixes the stream: both chains drain in order
    assert await relay.flush(10)
    order = await stream_messages(js, "ORDER")
    assert _things(order[3:], pb) == [("head", 2), ("mid", 3)]
    carrier = await stream_messages(js, "CARRIER")
    assert [pb.ThingShipped.FromString(m.data).thing_id for m in carrier] == ["head", "mid"]
    assert carrier[0].time <= order[3].time and carrier[1].time <= order[4].time
    await relay.stop()
    await db.close()


async def test_a_crash_between_acks_and_mark_sent_republishes_in_order_after_the_dedup_window(
    db_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    """Rows acked but not marked sent (what kill -9 before mark-sent leaves) are republished by
    the next relay; past JetStream's duplicate window the copies land again, after the originals
    and in the same per-aggregate order, and the consumer's inbox drops every copy."""
    js = nats_client.jetstream()
    await ensure_streams(js, StreamSettings(duplicate_window_seconds=1.0))
    db = open_db(db_url)
    ids = await db.run(produce, pb, [("a", 1), ("a", 2), ("b", 1), ("a", 3)])
    relay = OutboxRelay(db, nats_client, settings=FAST)
    assert await relay._ensure_leader()
    assert (await relay.publish_batch()).sent == 4
    await relay.stop()
    # The crash: the acks came back, the mark-sent transaction never committed.
    await db.run(lambda conn: conn.execute(text("UPDATE outbox SET sent_at = NULL")))
    await asyncio.sleep(2.5)  # past the duplicate window (JetStream purges it every window)

    restarted = OutboxRelay(db, nats_client, settings=FAST)
    assert await restarted.flush(10)
    await restarted.stop()

    messages = await stream_messages(js, "ORDER")
    first, copies = messages[:4], messages[4:]
    assert len(copies) == 4  # really republished, not deduplicated by JetStream
    for batch in (first, copies):
        assert [n for thing, n in _things(batch, pb) if thing == "a"] == [1, 2, 3]
    assert sorted(m.headers["ce-id"] for m in copies) == sorted(ids)

    consumer = EventConsumer(
        service="kittest",
        purpose="effects",
        stream="ORDER",
        registry=registry_for(pb, "kittest-effects"),
        db=db,
        nc=nats_client,
        settings=ConsumerSettings(fetch_timeout=0.3),
    )
    await consumer.ensure()
    await drain(consumer)
    applied = await db.run(read_effects)
    assert sorted(event_id for event_id, _, _ in applied) == sorted(ids)  # each exactly once
    assert [n for _, thing, n in applied if thing == "a"] == [1, 2, 3]
    await db.close()


async def test_nats_going_away_between_rounds_loses_and_reorders_nothing(
    sqlite_url: str, pb: ModuleType, nats_server_fn: NatsServer
) -> None:
    """The server dies as the second round starts: the first round's rows are marked sent, the
    second round's stay pending and go out after the restart, once each and in order."""
    nc = await connect(nats_server_fn.url, name="kittest")
    js = nc.jetstream()
    await ensure_streams(js)
    db = open_db(sqlite_url)
    ids = await db.run(produce, pb, [("a", 1), ("b", 1), ("a", 2), ("b", 2)])
    died: list[bool] = []

    @contextlib.contextmanager
    def server_dies_before(subject: str, headers: dict[str, str]) -> Iterator[dict[str, str]]:
        if headers["ce-id"] == ids[2] and not died:  # a2: the second round's first row
            nats_server_fn.stop()
            died.append(True)
        yield headers

    relay = OutboxRelay(
        db,
        nc,
        settings=RelaySettings(ack_timeout=1.0),
        publish_scope=server_dies_before,
    )
    assert await relay._ensure_leader()

    result = await relay.publish_batch()

    assert (result.sent, result.failed) == (2, 2)
    pending = await db.run(outbox.fetch_pending, 10)
    assert [row.event_id for row in pending] == ids[2:]

    nats_server_fn.start()
    assert await relay.flush(15)
    messages = await stream_messages(js, "ORDER")
    assert sorted(m.headers["ce-id"] for m in messages) == sorted(ids)  # each once
    things = _things(messages, pb)
    assert [n for thing, n in things if thing == "a"] == [1, 2]
    assert [n for thing, n in things if thing == "b"] == [1, 2]
    await relay.stop()
    await nc.close()
    await db.close()
