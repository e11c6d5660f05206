"""The seams other work plugs into: trace context in and out, and the max-deliveries net."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from types import ModuleType

from nats.aio.client import Client as NATS
from nats.js.api import AckPolicy, ConsumerConfig

from services.kit import outbox
from services.kit.consumer import ConsumerSettings, EventConsumer
from services.kit.dlq import list_dead_letters, watch_max_deliveries
from services.kit.relay import OutboxRelay
from services.kit.streams import ensure_streams
from tests.fixtures.kittest.harness import open_db, produce, publish_event, registry_for
from tests.kit.test_consumer import drain
from tests.kit.test_relay import FAST, wait_until

REQUEST_TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
PUBLISH_TRACE = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"


async def test_trace_context_flows_from_append_through_relay_to_the_handler(
    sqlite_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    await ensure_streams(js)
    db = open_db(sqlite_url)
    published: list[str] = []
    handled: list[tuple[str, str]] = []

    @contextlib.contextmanager
    def publish_scope(subject: str, headers: dict[str, str]) -> Iterator[dict[str, str]]:
        published.append(headers["traceparent"])  # the request's context, from the row
        yield {**headers, "traceparent": PUBLISH_TRACE}  # a PRODUCER span would re-point it

    @contextlib.contextmanager
    def handler_scope(subject: str, headers: Mapping[str, str]) -> Iterator[None]:
        handled.append((subject, headers["traceparent"]))
        yield

    outbox.set_trace_headers_provider(lambda: {"traceparent": REQUEST_TRACE})
    try:
        await db.run(produce, pb, [("t-1", 1)])
    finally:
        outbox.set_trace_headers_provider(None)
    (row,) = await db.run(outbox.fetch_pending, 10)
    assert row.headers["traceparent"] == REQUEST_TRACE

    assert await OutboxRelay(db, nats_client, settings=FAST, publish_scope=publish_scope).flush(10)
    consumer = EventConsumer(
        service="kittest",
        purpose="effects",
        stream="ORDER",
        registry=registry_for(pb, "kittest-effects"),
        db=db,
        nc=nats_client,
        settings=ConsumerSettings(fetch_timeout=0.3),
        handler_scope=handler_scope,
    )
    await consumer.ensure()
    await drain(consumer)
    assert published == [REQUEST_TRACE]
    assert handled == [("crossdock.order.thing_happened.v1", PUBLISH_TRACE)]
    await db.close()


async def test_unanswered_final_delivery_is_dead_lettered_from_the_advisory(
    pb: ModuleType, nats_client: NATS
) -> None:
    """A consumer process that dies on the final delivery never answers it; JetStream drops
    the message with only an advisory, which a running replica turns into a dead letter."""
    js = nats_client.jetstream()
    await ensure_streams(js)
    await js.add_consumer(
        "ORDER",
        ConsumerConfig(
            durable_name="kittest-effects",
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=0.5,
            max_deliver=2,
        ),
    )
    watcher = await watch_max_deliveries(nats_client, "ORDER", "kittest-effects")
    await publish_event(js, pb.ThingHappened(thing_id="t-1", n=1), event_id="ev-lost")
    crashed = await js.pull_subscribe_bind(durable="kittest-effects", stream="ORDER")
    for _ in range(2):  # two deliveries that a crashing process never acknowledges
        assert len(await crashed.fetch(1, timeout=3)) == 1

    async def dead_lettered() -> bool:
        with contextlib.suppress(Exception):
            await crashed.fetch(1, timeout=0.3)  # JetStream notices on the next pull
        return len(await list_dead_letters(js, "kittest-effects")) == 1

    await wait_until(dead_lettered, timeout=15)
    (letter,) = await list_dead_letters(js, "kittest-effects")
    assert letter.event_id == "ev-lost" and letter.original_seq == 1
    assert letter.reason.startswith("max_deliver exhausted")
    assert letter.headers["ce-subject"] == "t-1"
    await watcher.unsubscribe()
    await asyncio.sleep(0)
