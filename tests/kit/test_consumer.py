"""Idempotent consumers against a real nats-server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from types import ModuleType
from typing import Any

from nats.aio.client import Client as NATS
from sqlalchemy import Connection

from services.kit.consumer import ConsumerSettings, EventConsumer, Outcome
from services.kit.dlq import list_dead_letters
from services.kit.handlers import HandlerRegistry, PermanentError
from services.kit.metrics import ServiceMetrics
from services.kit.streams import ensure_streams
from services.kit.uow import UnitOfWork
from tests.fixtures.kittest.harness import (
    effect_handler,
    open_db,
    publish_event,
    read_effects,
    registry_for,
)
from tests.fixtures.kittest.service.tables import effects

QUICK = ConsumerSettings(
    fetch_timeout=0.3, ack_wait=2, max_deliver=3, nak_base_delay=0.1, recreate_grace=0.5
)


async def drain(consumer: EventConsumer, rounds: int = 100) -> list[Outcome]:
    """Fetch and process (as the consumer's loop would) until the durable has nothing left:
    nothing pending and nothing awaiting an ack (NAKed messages come back and are processed)."""
    js = consumer._js
    sub = await js.pull_subscribe_bind(durable=consumer.name, stream=consumer.stream)
    outcomes: list[Outcome] = []
    for _ in range(rounds):
        try:
            msgs = await sub.fetch(100, timeout=0.3)
        except TimeoutError:
            info = await js.consumer_info(consumer.stream, consumer.name)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                break
            continue
        outcomes += await consumer.process(msgs)
    await sub.unsubscribe()
    return outcomes


async def test_duplicate_deliveries_apply_once(
    db_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    await ensure_streams(js)
    db = open_db(db_url)
    metrics = ServiceMetrics("kittest")
    consumer = EventConsumer(
        service="kittest",
        purpose="effects",
        stream="ORDER",
        registry=registry_for(pb, "kittest-effects"),
        db=db,
        nc=nats_client,
        settings=QUICK,
        metrics=metrics,
    )
    await consumer.ensure()
    event = pb.ThingHappened(thing_id="t-1", n=1)
    # The same event (same ce-id) published twice with different Nats-Msg-Ids, as a republish
    # after the duplicate window would be: both copies land in the stream...
    await publish_event(js, event, event_id="ev-1", msg_id="m-1")
    await publish_event(js, event, event_id="ev-1", msg_id="m-2")
    assert sorted(await drain(consumer), key=str) == sorted(
        [Outcome.APPLIED, Outcome.DUPLICATE], key=str
    )
    # ...and a third copy arriving in a later batch is skipped too.
    await publish_event(js, event, event_id="ev-1", msg_id="m-3")
    assert await drain(consumer) == [Outcome.DUPLICATE]
    assert await db.run(read_effects) == [("ev-1", "t-1", 1)]
    assert (
        metrics.registry.get_sample_value(
            "crossdock_consumer_events_total",
            {"consumer": "kittest-effects", "outcome": "duplicate"},
        )
        == 2
    )
    # Three messages in (at least) two batches: the first two together at most.
    batches = {"consumer": "kittest-effects"}
    sample = metrics.registry.get_sample_value
    assert sample("crossdock_consumer_batch_size_sum", batches) == 3
    assert 2 <= (sample("crossdock_consumer_batch_size_count", batches) or 0) <= 3
    info = await js.consumer_info("ORDER", "kittest-effects")
    assert info.num_ack_pending == 0 and info.num_pending == 0  # everything acked
    await db.close()


async def test_transient_failure_is_retried_then_applied_once(
    db_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    await ensure_streams(js)
    db = open_db(db_url)
    # Two failures: the batch's fast path (one savepoint for all) and then the per-message retry
    # of the same delivery; the redelivery then succeeds.
    failures = {"left": 2}

    def flaky(event: object) -> bool:
        if event.n == 2 and failures["left"] > 0:
            failures["left"] -= 1
            return True
        return False

    consumer = EventConsumer(
        service="kittest",
        purpose="effects",
        stream="ORDER",
        registry=registry_for(pb, "kittest-effects", fail=flaky),
        db=db,
        nc=nats_client,
        settings=QUICK,
    )
    await consumer.ensure()
    for n in (1, 2, 3):
        await publish_event(js, pb.ThingHappened(thing_id=f"t-{n}", n=n), event_id=f"ev-{n}")
    first = await drain(consumer)
    # One bad message costs only itself: 1 and 3 commit in the same batch, 2 is NAKed.
    assert Outcome.RETRY in first and first.count(Outcome.APPLIED) >= 2
    effects = await db.run(read_effects)
    assert sorted(e[0] for e in effects) == ["ev-1", "ev-2", "ev-3"]
    assert len(effects) == 3
    await db.close()


async def test_failure_holds_back_later_events_of_the_same_aggregate(
    sqlite_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    await ensure_streams(js)
    db = open_db(sqlite_url)
    failures = {"left": 2}  # fast path + per-message path of the first delivery

    def flaky(event: object) -> bool:
        if event.n == 1 and failures["left"] > 0:
            failures["left"] -= 1
            return True
        return False

    consumer = EventConsumer(
        service="kittest",
        purpose="effects",
        stream="ORDER",
        registry=registry_for(pb, "kittest-effects", fail=flaky),
        db=db,
        nc=nats_client,
        settings=QUICK,
    )
    await consumer.ensure()
    for n in (1, 2):
        await publish_event(js, pb.ThingHappened(thing_id="t-1", n=n), event_id=f"ev-{n}")
    await publish_event(js, pb.ThingHappened(thing_id="t-2", n=1), event_id="ev-other")
    sub = await js.pull_subscribe_bind(durable=consumer.name, stream="ORDER")
    msgs = await sub.fetch(10, timeout=2)
    assert len(msgs) == 3
    assert await consumer.process(msgs) == [Outcome.RETRY, Outcome.HELD, Outcome.APPLIED]
    await drain(consumer)
    assert [(e[1], e[2]) for e in await db.run(read_effects)] == [
        ("t-2", 1),
        ("t-1", 1),
        ("t-1", 2),
    ]
    await db.close()


async def test_exhausting_max_deliver_dead_letters_on_the_final_delivery(
    db_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    await ensure_streams(js)
    db = open_db(db_url)
    consumer = EventConsumer(
        service="kittest",
        purpose="effects",
        stream="ORDER",
        registry=registry_for(pb, "kittest-effects", fail=lambda e: True),
        db=db,
        nc=nats_client,
        settings=QUICK,
    )
    await consumer.ensure()
    await publish_event(js, pb.ThingHappened(thing_id="t-1", n=1), event_id="ev-1")
    outcomes = await drain(consumer)
    assert outcomes == [Outcome.RETRY, Outcome.RETRY, Outcome.DEAD]  # max_deliver=3
    (letter,) = await list_dead_letters(js, "kittest-effects")
    assert letter.event_id == "ev-1"
    assert letter.reason.startswith("max_deliver (3) exhausted")
    assert letter.headers["crossdock-dlq-num-delivered"] == "3"
    assert await db.run(read_effects) == []
    await db.close()


async def test_undecodable_invalid_and_unknown_version_go_to_the_dlq(
    sqlite_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    await ensure_streams(js)
    db = open_db(sqlite_url)
    registry = registry_for(pb, "kittest-effects")
    # Two handled events: the consumer filters on each, in any version.
    registry.add_subject(
        "crossdock.order.other_thing.v1", pb.ThingHappened, effect_handler("kittest-effects")
    )
    consumer = EventConsumer(
        service="kittest",
        purpose="effects",
        stream="ORDER",
        registry=registry,
        db=db,
        nc=nats_client,
        settings=QUICK,
    )
    assert consumer.filter_subjects == [
        "crossdock.order.other_thing.*",
        "crossdock.order.thing_happened.*",
    ]
    await consumer.ensure()
    good = pb.ThingHappened(thing_id="t-1", n=1)
    await publish_event(js, good, event_id="ev-bytes", data=b"\xff\xff\xff")
    await publish_event(js, pb.ThingHappened(thing_id="", n=1), event_id="ev-invalid")
    await publish_event(js, pb.ThingHappenedV2(thing_id="t-1"), event_id="ev-v2")
    await publish_event(js, good, event_id="ev-unrelated", subject="crossdock.order.unrelated.v1")
    await publish_event(js, good, event_id="ev-good")
    outcomes = await drain(consumer)
    # The event nobody here handles never reaches the consumer; the unknown version does.
    assert outcomes == [Outcome.DEAD, Outcome.DEAD, Outcome.DEAD, Outcome.APPLIED]
    letters = {letter.event_id: letter for letter in await list_dead_letters(js)}
    assert set(letters) == {"ev-bytes", "ev-invalid", "ev-v2"}
    assert letters["ev-bytes"].reason.startswith("undecodable kittest.v1.ThingHappened")
    assert letters["ev-invalid"].reason.startswith("invalid kittest.v1.ThingHappened")
    assert "unknown version" in letters["ev-v2"].reason
    assert await db.run(read_effects) == [("ev-good", "t-1", 1)]
    await db.close()


async def test_running_consumer_loop_applies_and_stops_cleanly(
    db_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    await ensure_streams(js)
    db = open_db(db_url)
    registry: HandlerRegistry = registry_for(pb, "kittest-effects")
    consumer = EventConsumer(
        service="kittest",
        purpose="effects",
        stream="ORDER",
        registry=registry,
        db=db,
        nc=nats_client,
        settings=QUICK,
    )
    consumer.start()
    for n in range(1, 251):
        await publish_event(js, pb.ThingHappened(thing_id=f"t-{n % 5}", n=n), event_id=f"ev-{n}")
    for _ in range(200):
        if len(await db.run(read_effects)) == 250:
            break
        await asyncio.sleep(0.05)
    await consumer.stop()
    assert len(await db.run(read_effects)) == 250
    info = await js.consumer_info("ORDER", "kittest-effects")
    assert info.num_ack_pending == 0
    await db.close()


async def test_a_lingering_consumer_applies_events_arriving_meanwhile_in_one_batch(
    db_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    await ensure_streams(js)
    db = open_db(db_url)
    metrics = ServiceMetrics("kittest")
    consumer = EventConsumer(
        service="kittest",
        purpose="effects",
        stream="ORDER",
        registry=registry_for(pb, "kittest-effects"),
        db=db,
        nc=nats_client,
        settings=ConsumerSettings(fetch_timeout=5, linger=0.5),
        metrics=metrics,
    )
    consumer.start()
    await asyncio.sleep(0.5)  # the consumer waits on its open pull request
    await publish_event(js, pb.ThingHappened(thing_id="t-1", n=1), event_id="ev-1")
    await asyncio.sleep(0.2)  # the first event is in hand; the consumer lingers...
    for n in range(2, 5):
        await publish_event(js, pb.ThingHappened(thing_id="t-1", n=n), event_id=f"ev-{n}")
    for _ in range(100):
        if len(await db.run(read_effects)) == 4:
            break
        await asyncio.sleep(0.05)
    await consumer.stop()
    assert len(await db.run(read_effects)) == 4
    # ...so all four went into one transaction.
    batches = {"consumer": "kittest-effects"}
    sample = metrics.registry.get_sample_value
    assert sample("crossdock_consumer_batch_size_count", batches) == 1
    assert sample("crossdock_consumer_batch_size_sum", batches) == 4
    await db.close()


async def test_batch_handler_gets_runs_and_isolates_a_poison_event(
    db_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    await ensure_streams(js)
    db = open_db(db_url)
    calls: list[int] = []

    def project(events: Sequence[tuple[Any, Mapping[str, str]]], conn: Connection) -> None:
        calls.append(len(events))
        if any(event.note == "poison" for event, _ in events):
            raise PermanentError("poison in batch")
        conn.execute(
            effects.insert(),
            [
                {"event_id": h["ce-id"], "thing_id": e.thing_id, "n": e.n, "consumer": "x"}
                for e, h in events
            ],
        )

    registry = HandlerRegistry()
    registry.add_batch(pb.ThingHappened, project)
    consumer = EventConsumer(
        service="kittest",
        purpose="effects",
        stream="ORDER",
        registry=registry,
        db=db,
        nc=nats_client,
        settings=QUICK,
    )
    await consumer.ensure()
    for n in range(1, 6):
        note = "poison" if n == 3 else ""
        await publish_event(
            js, pb.ThingHappened(thing_id=f"t-{n}", n=n, note=note), event_id=f"ev-{n}"
        )
    outcomes = await drain(consumer)
    assert outcomes == [
        Outcome.APPLIED,
        Outcome.APPLIED,
        Outcome.DEAD,
        Outcome.APPLIED,
        Outcome.APPLIED,
    ]
    # One call for the whole run; it failed, so then one call per event.
    assert calls == [5, 1, 1, 1, 1, 1]
    assert sorted(e[2] for e in await db.run(read_effects)) == [1, 2, 4, 5]
    await db.close()


async def test_after_commit_callbacks_of_rolled_back_events_never_run(
    db_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    """A handler announces its work after commit (a worker woken, an item handed over). When a
    batch falls back to one savepoint per event, only the events that stayed committed announce:
    the failed batch attempt and the rolled-back poison event announce nothing."""
    js = nats_client.jetstream()
    await ensure_streams(js)
    db = open_db(db_url)
    announced: list[int] = []

    def handle(event: Any, headers: Mapping[str, str], conn: Connection) -> None:
        UnitOfWork.of(conn).after_commit(lambda n=event.n: announced.append(n))
        if event.note == "poison":
            raise PermanentError("poison")

    registry = HandlerRegistry()
    registry.add(pb.ThingHappened, handle)
    consumer = EventConsumer(
        service="kittest",
        purpose="effects",
        stream="ORDER",
        registry=registry,
        db=db,
        nc=nats_client,
        settings=QUICK,
    )
    await consumer.ensure()
    for n in range(1, 5):
        note = "poison" if n == 3 else ""
        await publish_event(
            js, pb.ThingHappened(thing_id=f"t-{n}", n=n, note=note), event_id=f"ev-{n}"
        )
    outcomes = await drain(consumer)
    await asyncio.sleep(0.05)  # after-commit callbacks run on the loop, after the commit
    assert outcomes == [Outcome.APPLIED, Outcome.APPLIED, Outcome.DEAD, Outcome.APPLIED]
    assert sorted(announced) == [1, 2, 4]
    await db.close()


async def test_batch_handlers_run_inside_the_handler_scope(
    db_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    """The scope (tracing span, correlation id) wraps batch handlers too: one scope per call,
    entered with the first event's headers."""
    js = nats_client.jetstream()
    await ensure_streams(js)
    db = open_db(db_url)
    entered: list[tuple[str, str]] = []
    inside: list[bool] = []
    depth = [0]

    @contextlib.contextmanager
    def scope(subject: str, headers: Mapping[str, str]) -> Iterator[None]:
        entered.append((subject, headers["ce-id"]))
        depth[0] += 1
        try:
            yield
        finally:
            depth[0] -= 1

    def project(events: Sequence[tuple[Any, Mapping[str, str]]], conn: Connection) -> None:
        inside.append(depth[0] == 1)

    registry = HandlerRegistry()
    registry.add_batch(pb.ThingHappened, project)
    consumer = EventConsumer(
        service="kittest",
        purpose="effects",
        stream="ORDER",
        registry=registry,
        db=db,
        nc=nats_client,
        settings=QUICK,
        handler_scope=scope,
    )
    await consumer.ensure()
    for n in range(1, 4):
        await publish_event(js, pb.ThingHappened(thing_id=f"t-{n}", n=n), event_id=f"ev-{n}")
    assert await drain(consumer) == [Outcome.APPLIED] * 3
    assert inside and all(inside)
    assert len(entered) == len(inside)  # one scope per handler call
    assert entered[0] == ("crossdock.order.thing_happened.v1", "ev-1")
    await db.close()
