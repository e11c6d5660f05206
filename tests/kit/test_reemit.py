"""Re-emitting a sent outbox row (outbox.reemit) against a real nats-server, SQLite and PostgreSQL:
the event goes out again under its own ce-id but a transport id (Nats-Msg-Id) of its own, so
JetStream keeps it inside the duplicate window, and a consumer that has it drops it."""

from __future__ import annotations

from types import ModuleType

import pytest
from nats.aio.client import Client as NATS

from services.kit import outbox
from services.kit.consumer import EventConsumer, Outcome
from services.kit.relay import OutboxRelay
from services.kit.streams import ensure_streams
from tests.fixtures.events import stream_messages
from tests.fixtures.kittest.harness import open_db, produce, read_effects, registry_for
from tests.kit.test_consumer import QUICK, drain
from tests.kit.test_relay import FAST


async def test_reemitted_row_is_stored_again_and_applied_once(
    db_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    await ensure_streams(js)
    db = open_db(db_url)
    consumer = EventConsumer(
        service="kittest",
        purpose="effects",
        stream="ORDER",
        registry=registry_for(pb, "kittest-effects"),
        db=db,
        nc=nats_client,
        settings=QUICK,
    )
    await consumer.ensure()
    relay = OutboxRelay(db, nats_client, settings=FAST)
    [event_id] = await db.run(produce, pb, [("t-1", 1)])
    assert await relay.flush(10)
    [first] = await stream_messages(js, "ORDER")
    assert first.headers["Nats-Msg-Id"] == event_id
    assert await drain(consumer) == [Outcome.APPLIED]

    # The stream loses the message (an operator's purge); a plain republish under the same
    # Nats-Msg-Id would now be dropped as a duplicate: the window is 10 minutes.
    await js.delete_msg("ORDER", first.seq)
    assert await db.run(outbox.reemit, event_id) is True
    assert (await db.run(outbox.backlog))[0] == 1
    # Already pending: nothing to do.
    assert await db.run(outbox.reemit, event_id) is False
    assert await relay.flush(10)

    [again] = await stream_messages(js, "ORDER")
    assert again.seq > first.seq
    assert again.headers["ce-id"] == event_id
    assert again.headers["Nats-Msg-Id"] == f"{event_id}:reemit:1"
    assert pb.ThingHappened.FromString(again.data).n == 1
    # The consumer's inbox has the event id: the copy is acknowledged, not applied again.
    assert await drain(consumer) == [Outcome.DUPLICATE]
    assert await db.run(read_effects) == [(event_id, "t-1", 1)]

    # A second re-emit gets the next transport id (the first one is inside the window too).
    assert await db.run(outbox.reemit, event_id) is True
    assert await relay.flush(10)
    ids = [m.headers["Nats-Msg-Id"] for m in await stream_messages(js, "ORDER")]
    assert ids == [f"{event_id}:reemit:1", f"{event_id}:reemit:2"]
    assert await drain(consumer) == [Outcome.DUPLICATE]
    await relay.stop()
    await db.close()


async def test_reemit_of_an_event_not_in_the_outbox_is_refused(db_url: str, pb: ModuleType) -> None:
    db = open_db(db_url)
    [event_id] = await db.run(produce, pb, [("t-1", 1)])
    [row] = await db.run(outbox.fetch_pending, 10)
    await db.run(outbox.mark_sent, [row.seq], 0.0)
    # Gone with the retention, as an event never appended here would be.
    assert await db.run(outbox.purge_sent, 60.0) == 1
    with pytest.raises(LookupError, match=f"event {event_id} is not in the outbox"):
        await db.run(outbox.reemit, event_id)
    await db.close()
