"""A consumer whose database goes away (PostgreSQL restarting, this replica cut off from it) holds
the batch in hand until the database answers again: no event is dead-lettered over the outage,
however many deliveries `max_deliver` allows, and each is applied exactly once once it is back.

The cut is real: the consumer reaches PostgreSQL through a loopback TCP relay that the test
closes (every connection reset and refused, as a restart or a partition does) and reopens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection
from sqlalchemy.engine import make_url

from services.kit.bus import connect
from services.kit.consumer import ConsumerSettings, EventConsumer
from services.kit.db import Database, dbapi_cursor
from services.kit.handlers import HandlerRegistry
from services.kit.streams import DLQ_STREAM, ensure_streams
from tests.fixtures.events import stream_messages
from tests.fixtures.kittest.harness import (
    effect_handler,
    open_db,
    publish_event,
    read_effects,
    registry_for,
)
from tests.fixtures.nats import NatsServer
from tests.fixtures.tcp_relay import TcpRelay
from tests.kit.test_relay import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

EVENTS = 20


async def test_events_held_through_a_database_outage_are_applied_once_and_none_dead_lettered(
    postgres_url: str, pb: ModuleType, nats_server_fn: NatsServer
) -> None:
    url = make_url(postgres_url)
    relay = TcpRelay(url.host or "127.0.0.1", url.port or 5432)
    relay.start()
    db = open_db(url.set(port=relay.port).render_as_string(False))
    nc = await connect(nats_server_fn.url, name="kittest")
    js = nc.jetstream()
    await ensure_streams(js)
    consumer = EventConsumer(
        service="kittest",
        purpose="effects",
        stream="ORDER",
        registry=registry_for(pb, "kittest-effects"),
        db=db,
        nc=nc,
        # Without the hold, 2 deliveries 0.05 s apart would dead-letter every event in the
        # first second of the outage; ack_wait 1.5 s is shorter than the outage.
        settings=ConsumerSettings(
            fetch_timeout=0.3, max_deliver=2, nak_base_delay=0.05, ack_wait=1.5, batch_size=8
        ),
    )
    consumer.start()
    try:
        await publish_event(js, pb.ThingHappened(thing_id="t-0", n=0), event_id="ev-0")
        await wait_until(lambda: _applied(db, 1), timeout=20, interval=0.1)

        relay.cut()
        for n in range(1, EVENTS + 1):
            await publish_event(js, pb.ThingHappened(thing_id=f"t-{n}", n=n), event_id=f"ev-{n}")
        await asyncio.sleep(5)  # longer than ack_wait and every NAK delay together
        assert await stream_messages(js, DLQ_STREAM) == []
        info = await js.consumer_info("ORDER", consumer.name)
        # Held, not redelivered: each is on its first delivery (the batch in hand and the rest
        # of the open pull request), or not yet delivered.
        assert info.num_redelivered == 0, info
        relay.start()

        await wait_until(lambda: _applied(db, EVENTS + 1), timeout=30, interval=0.2)
        applied = [event_id for event_id, _, _ in await db.run(read_effects)]
        assert sorted(applied) == sorted(f"ev-{n}" for n in range(EVENTS + 1))
        assert await stream_messages(js, DLQ_STREAM) == []
    finally:
        await consumer.stop()
        await nc.close()
        await db.close()


async def _applied(db: Database, count: int) -> bool:
    try:
        return len(await db.run(read_effects)) >= count
    except Exception:
        return False


async def test_a_connection_the_server_drops_under_a_handler_is_replaced_not_dead_lettered(
    postgres_url: str, pb: ModuleType, nats_server_fn: NatsServer
) -> None:
    """A PostgreSQL restart kills every open connection, here in the middle of a batch: the
    handler's statement meets the dead connection (SQLAlchemy invalidates it), then the kit's
    own rollback to its savepoint, on a raw driver cursor, raises psycopg's error unwrapped.
    That batch is held and applied on a new connection: with one delivery allowed, a NAK would
    have dead-lettered it."""
    record = effect_handler("kittest-effects")
    dropped: list[int] = []

    def handle(event: Any, headers: Mapping[str, str], conn: Connection) -> None:
        if event.note == "drop" and not dropped:
            pid = dbapi_cursor(conn).execute("SELECT pg_backend_pid()").fetchone()[0]
            with psycopg.connect(_libpq_url(postgres_url), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            dropped.append(pid)
        record(event, headers, conn)

    registry = HandlerRegistry()
    registry.add(pb.ThingHappened, handle)
    db = open_db(postgres_url)
    nc = await connect(nats_server_fn.url, name="kittest")
    js = nc.jetstream()
    await ensure_streams(js)
    consumer = EventConsumer(
        service="kittest",
        purpose="effects",
        stream="ORDER",
        registry=registry,
        db=db,
        nc=nc,
        settings=ConsumerSettings(fetch_timeout=0.3, max_deliver=1, ack_wait=5, batch_size=8),
    )
    consumer.start()
    try:
        for n in range(EVENTS):
            note = "drop" if n == EVENTS // 2 else ""
            thing = pb.ThingHappened(thing_id=f"t-{n}", n=n, note=note)
            await publish_event(js, thing, event_id=f"ev-{n}")

        await wait_until(lambda: _applied(db, EVENTS), timeout=30, interval=0.2)
        assert len(dropped) == 1
        applied = [event_id for event_id, _, _ in await db.run(read_effects)]
        assert sorted(applied) == sorted(f"ev-{n}" for n in range(EVENTS))
        assert await stream_messages(js, DLQ_STREAM) == []
        info = await js.consumer_info("ORDER", consumer.name)
        assert info.num_redelivered == 0, info
    finally:
        await consumer.stop()
        await nc.close()
        await db.close()


def _libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(False)
