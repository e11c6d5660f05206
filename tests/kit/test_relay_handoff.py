"""The outbox handoff: committed rows reach the running relay in memory (SQLite), only rows that
really committed, and only where that cannot reorder or lose anything."""

from __future__ import annotations

import asyncio
from types import ModuleType

import pytest
from nats.aio.client import Client as NATS
from sqlalchemy import Connection, event

from services.kit import outbox
from services.kit.db import dbapi_cursor
from services.kit.relay import OutboxRelay, RelaySettings
from services.kit.streams import ensure_streams
from tests.fixtures.events import stream_messages
from tests.fixtures.kittest.harness import open_db, produce
from tests.fixtures.waiting import wait_for

# No poll within a test: only a commit (and its handoff) or the relay's own reads explain a publish.
NO_POLL = RelaySettings(poll_interval=600)


async def wait_until(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    if not await wait_for(predicate, bool, timeout=timeout, interval=0.02):
        raise AssertionError("condition not met in time")


def _append(conn: Connection, pb: ModuleType, thing_id: str, n: int) -> str:
    return outbox.append(
        conn, pb.ThingHappened(thing_id=thing_id, n=n), thing_id, correlation_id="c"
    )


async def test_only_rows_that_commit_are_handed_off(sqlite_url: str, pb: ModuleType) -> None:
    """A savepoint rolled back after an append removes that row (and SQLite gives its seq to the
    next row): neither it, nor anything of a rolled-back transaction, is handed off."""
    db = open_db(sqlite_url)
    handed: list[outbox.OutboxRow] = []
    remove = outbox.hand_off_commits(db.engine, handed.append)

    def reused_seq_and_rolled_back_tail(conn: Connection) -> list[str]:
        cursor = dbapi_cursor(conn)
        cursor.execute("SAVEPOINT item")
        _append(conn, pb, "t-1", 1)  # rolled back below; its seq is drawn again next
        cursor.execute("ROLLBACK TO SAVEPOINT item")
        cursor.execute("RELEASE SAVEPOINT item")
        kept = [_append(conn, pb, "t-2", 1), _append(conn, pb, "t-3", 1)]
        cursor.execute("SAVEPOINT tail")
        _append(conn, pb, "t-4", 1)  # rolled back, and nothing appended after it
        cursor.execute("ROLLBACK TO SAVEPOINT tail")
        cursor.execute("RELEASE SAVEPOINT tail")
        return kept

    kept = await db.run(reused_seq_and_rolled_back_tail)
    committed = await db.run(outbox.fetch_pending, 10)
    assert [row.event_id for row in committed] == kept
    assert handed == committed  # same seqs, ids, subjects, headers and payloads

    def rolled_back(conn: Connection) -> None:
        _append(conn, pb, "t-5", 1)
        raise RuntimeError("the use case failed")

    with pytest.raises(RuntimeError):
        await db.run(rolled_back)
    await db.run(lambda conn: None)  # a later commit must not deliver the rolled-back row
    assert handed == committed

    remove()
    await db.run(produce, pb, [("t-6", 1)])
    assert handed == committed  # removed: no longer handed off
    await db.close()


async def test_handoff_is_for_sqlite_only(db_url: str) -> None:
    db = open_db(db_url)
    if db.is_sqlite:
        outbox.hand_off_commits(db.engine, lambda row: None)()
    else:
        with pytest.raises(ValueError):
            outbox.hand_off_commits(db.engine, lambda row: None)
    await db.close()


async def test_a_woken_relay_publishes_handed_off_rows_in_one_transaction(
    sqlite_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    await ensure_streams(js)
    db = open_db(sqlite_url)
    await db.run(produce, pb, [("t-0", 1)])
    relay = OutboxRelay(db, nats_client, settings=NO_POLL)
    relay.start()

    async def published(count: int) -> bool:
        return (await js.stream_info("ORDER")).state.messages == count

    await wait_until(lambda: published(1))  # the backlog at start: read, publish, mark
    await asyncio.sleep(0.3)  # the relay is idle now
    commits: list[bool] = []

    def count_commit(_conn: Connection) -> None:
        commits.append(True)

    event.listen(db.engine, "commit", count_commit)
    for n in range(1, 4):
        ids = await db.run(produce, pb, [("t-1", n), ("t-2", n)])
        await wait_until(lambda n=n: published(1 + 2 * n))
        await asyncio.sleep(0.05)  # the mark-sent transaction follows the acks
    event.remove(db.engine, "commit", count_commit)

    # Each unit of work is one commit, and each woken batch only its mark-sent transaction.
    assert len(commits) == 3 + 3
    messages = await stream_messages(js, "ORDER")
    assert [m.headers["Nats-Msg-Id"] for m in messages[-2:]] == ids
    assert (await db.run(outbox.backlog))[0] == 0
    await relay.stop()
    await db.close()


async def test_a_row_committed_elsewhere_is_read_not_overtaken(
    sqlite_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    """Another process commits an aggregate's first event, this one its second: the gap in the
    handed-off seqs makes the relay read, so the first still goes out first."""
    js = nats_client.jetstream()
    await ensure_streams(js)
    db = open_db(sqlite_url)
    elsewhere = open_db(sqlite_url)  # another process's connection to the same file
    relay = OutboxRelay(db, nats_client, settings=NO_POLL)
    relay.start()
    await wait_until(lambda: relay.is_leader)
    await asyncio.sleep(0.3)  # idle, and knows the outbox is empty

    first = await elsewhere.run(produce, pb, [("a", 1)])  # no wake, no handoff here
    second = await db.run(produce, pb, [("a", 2)])

    async def published() -> bool:
        return (await js.stream_info("ORDER")).state.messages == 2

    await wait_until(published)
    messages = await stream_messages(js, "ORDER")
    assert [m.headers["Nats-Msg-Id"] for m in messages] == first + second
    await relay.stop()
    await db.close()
    await elsewhere.close()


async def test_a_replica_that_does_not_lead_publishes_nothing_handed_off(
    sqlite_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    await ensure_streams(js)
    leader_db, replica_db = open_db(sqlite_url), open_db(sqlite_url)
    leader = OutboxRelay(leader_db, nats_client, settings=NO_POLL)
    replica = OutboxRelay(replica_db, nats_client, settings=RelaySettings(poll_interval=0.1))
    leader.start()
    await wait_until(lambda: leader.is_leader)
    replica.start()
    await asyncio.sleep(0.3)
    assert not replica.is_leader

    ids = await replica_db.run(produce, pb, [("r", 1)])  # wakes and hands off to `replica`
    await asyncio.sleep(0.5)
    assert (await js.stream_info("ORDER")).state.messages == 0  # the replica stays silent
    assert await leader.flush(10)  # the leader's read finds the row
    messages = await stream_messages(js, "ORDER")
    assert [m.headers["Nats-Msg-Id"] for m in messages] == ids
    await replica.stop()
    await leader.stop()
    await leader_db.close()
    await replica_db.close()
