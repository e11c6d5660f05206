"""The gateway-webhooks durables take only the event types enabled subscriptions want.

Real nats-server, the real delivery worker and WebhookService servicer, on SQLite and on
PostgreSQL: events nobody subscribed to are never delivered to the gateway; a subscription gets
every event after its creation even while events flow; deletes and disables narrow the filter;
concurrent changes on two replicas end with the union; a create NATS cannot confirm fails whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import nats
import pytest
from crossdock.gateway.v1 import webhook_service_pb2 as svc
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sqlalchemy import Connection, func, select, update

from gateway.adapters.store import migrate
from gateway.adapters.store.webhook_tables import DELIVERED, webhook_deliveries
from gateway.adapters.store.webhook_tables import webhook_subscriptions as subs
from gateway.entrypoints.consumers import event_handlers, milestone_events
from gateway.entrypoints.webhook_runtime import DeliveryWorker
from gateway.webhooks.filters import lock as filter_lock
from gateway.webhooks.filters import stream_filters, wanted_event_types
from gateway.webhooks.intake import enqueue
from gateway.webhooks.payload import partner_path
from gateway.webhooks.servicer import WebhookApi
from gateway.webhooks.store import create_subscription
from services.kit import events as ev
from services.kit import inbox
from services.kit.db import Database
from services.kit.errors import Unavailable
from services.kit.metrics import ServiceMetrics
from tests.fixtures.events import publish_as_relay, stream_messages
from tests.fixtures.nats import NatsServer
from tests.fixtures.receiver import Receiver, running_receiver
from tests.gateway.webhook_helpers import PLACED, eventually, worker

PARTNER = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"
OTHER_PARTNER = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8Z"
CANCELLED = "crossdock.order.cancelled.v1"
ALLOCATED = "crossdock.order.allocated.v1"
DELIVERED_SHIPMENT = "crossdock.shipment.delivered.v1"
DURABLE = "gateway-webhooks"
CONSUMER = DURABLE
IDLE_ORDER = ["crossdock.order.no-subscriptions"]
MESSAGE_CLASSES = {event.subject: event.message_class for event in milestone_events()}


def milestone(subject: str, partner_id: str = PARTNER) -> Message:
    """An empty milestone event of `subject` owned by `partner_id`."""
    event = MESSAGE_CLASSES[subject]()
    descriptor: Descriptor = event.DESCRIPTOR  # type: ignore[assignment]
    path = partner_path(descriptor)
    assert path is not None
    owner: Message = event
    for name in path[:-1]:
        owner = getattr(owner, name)
    setattr(owner, path[-1], partner_id)
    return event


@dataclass
class Replica:
    """One gateway replica's webhook side: its database handle, worker and servicer."""

    db: Database
    worker: DeliveryWorker
    api: WebhookApi
    metrics: ServiceMetrics

    async def create(
        self,
        event_types: list[str],
        url: str = "https://example.com/hook",
        partner_id: str = PARTNER,
    ) -> str:
        request = svc.CreateWebhookSubscriptionRequest(
            partner_id=partner_id,
            subscription=svc.WebhookSubscriptionInput(url=url, event_types=event_types),
        )
        response = await self.api.CreateWebhookSubscription(request, None)
        return str(response.subscription.subscription_id)

    async def disable(self, subscription_id: str) -> None:
        request = svc.UpdateWebhookSubscriptionRequest(
            partner_id=PARTNER, subscription_id=subscription_id, enabled=False
        )
        await self.api.UpdateWebhookSubscription(request, None)

    async def change(self, subscription_id: str, **fields: Any) -> None:
        request = svc.UpdateWebhookSubscriptionRequest(
            partner_id=PARTNER, subscription_id=subscription_id, **fields
        )
        await self.api.UpdateWebhookSubscription(request, None)

    async def delete(self, subscription_id: str) -> None:
        request = svc.DeleteWebhookSubscriptionRequest(
            partner_id=PARTNER, subscription_id=subscription_id
        )
        await self.api.DeleteWebhookSubscription(request, None)

    def consumed_events(self) -> float:
        """Events the gateway's consumers took, by the gateway's own metrics."""
        return sum(
            sample.value
            for metric in self.metrics.registry.collect()
            if metric.name == "crossdock_consumer_events"
            for sample in metric.samples
            if sample.name.endswith("_total")
        )


@contextlib.asynccontextmanager
async def running_replica(
    url: str, nats_url: str, reconcile_seconds: float = 60.0
) -> AsyncIterator[Replica]:
    db = Database(url, service="gateway")
    running = worker(db, nats_url, follow_subscriptions=True, reconcile_seconds=reconcile_seconds)
    running.metrics = metrics = ServiceMetrics("gateway")
    running.start()
    try:
        await running.wait_started()
        yield Replica(db, running, WebhookApi(db, 3600.0, running.filters), metrics)
    finally:
        await running.stop()
        await db.close()


@contextlib.contextmanager
def publishing_in_a_thread(nats_url: str, subjects: Sequence[str]) -> Iterator[dict[str, str]]:
    """Publish milestones of `subjects` in turn, as fast as acks come, from a thread of its own
    (its own loop and connection: the gateway's loop does not pace it); yields event id ->
    subject, complete once the block exits."""
    published: dict[str, str] = {}
    stop = threading.Event()

    async def publish() -> None:
        nc = await nats.connect(nats_url, name="publisher")
        js = nc.jetstream()
        n = 0
        while not stop.is_set():
            subject = subjects[n % len(subjects)]
            published[await publish_as_relay(js, milestone(subject), f"agg_{n}")] = subject
            n += 1
        await nc.close()

    thread = threading.Thread(target=asyncio.run, args=(publish(),), daemon=True)
    thread.start()
    try:
        yield published
    finally:
        stop.set()
        thread.join(timeout=10)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


async def filters_of(js: JetStreamContext, stream: str) -> list[str]:
    config = (await js.consumer_info(stream, DURABLE)).config
    return sorted(config.filter_subjects or [config.filter_subject or ""])


async def filters_follow_table(js: JetStreamContext, db: Database) -> bool:
    """True when every durable filters on exactly what the table wants."""
    wanted = stream_filters(event_handlers(3600.0), await db.run(wanted_event_types))
    for stream, subjects in wanted.items():
        try:
            if await filters_of(js, stream) != subjects:
                return False
        except Exception:
            return False
    return True


async def in_inbox(db: Database, event_id: str) -> bool:
    return bool(await db.run(inbox.contains, CONSUMER, event_id))


def occurred_at(message: object) -> float:
    headers = getattr(message, "headers", None) or {}
    return datetime.fromisoformat(headers[ev.CE_TIME]).timestamp()


@pytest.fixture
def gateway_db(new_db_url: object) -> str:
    url = new_db_url("gateway")  # type: ignore[operator]
    migrate(url)
    return str(url)


async def test_without_subscriptions_no_milestone_reaches_the_gateway(
    gateway_db: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    async with running_replica(gateway_db, nats_server.url) as replica:
        await eventually(lambda: filters_follow_table(js, replica.db), bool)
        assert await filters_of(js, "ORDER") == IDLE_ORDER
        published = [
            await publish_as_relay(js, milestone(subject), "agg_1")
            for subject in (PLACED, CANCELLED, DELIVERED_SHIPMENT, PLACED)
        ]
        assert len(await stream_messages(js, "ORDER")) == 3
        await asyncio.sleep(0.5)  # several pull expiries: time enough to deliver, had it matched
        for stream in ("ORDER", "SHIPMENT"):
            info = await js.consumer_info(stream, DURABLE)
            assert (info.num_pending, info.num_ack_pending) == (0, 0)
            assert (info.delivered.consumer_seq, info.delivered.stream_seq) == (0, 0)
        assert replica.consumed_events() == 0
        assert not any([await in_inbox(replica.db, event_id) for event_id in published])


async def test_a_widened_durable_skips_what_it_had_passed_and_takes_what_follows(
    gateway_db: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    """The nats-server behaviour the ordering rule rests on: a filter update keeps the durable's
    position and ack floor, so an event stored at a sequence it had passed never arrives, and
    every event stored after the update does."""
    js = nats_client.jetstream()
    async with running_replica(gateway_db, nats_server.url) as replica:
        await replica.create([CANCELLED])
        passed = await publish_as_relay(js, milestone(PLACED), "agg_1")  # stream seq 1
        cancelled = await publish_as_relay(js, milestone(CANCELLED), "agg_1")  # seq 2
        await eventually(lambda: in_inbox(replica.db, cancelled), bool)
        order_durable = functools.partial(js.consumer_info, "ORDER", DURABLE)
        await eventually(order_durable, lambda info: info.ack_floor.stream_seq == 2)

        await replica.create([PLACED])
        after = await publish_as_relay(js, milestone(PLACED), "agg_1")  # seq 3
        await eventually(lambda: in_inbox(replica.db, after), bool)
        info = await eventually(order_durable, lambda info: info.ack_floor.stream_seq == 3)
        assert info.delivered.consumer_seq == 2  # the cancellation, then `after`: nothing else
        assert not await in_inbox(replica.db, passed)
        assert info.num_pending == 0


async def test_a_subscription_created_while_events_flow_gets_every_later_event(
    gateway_db: str, nats_server: NatsServer, nats_client: NATS, receiver: Receiver
) -> None:
    js = nats_client.jetstream()
    async with running_replica(gateway_db, nats_server.url) as replica:
        # Another partner's subscription keeps cancellations flowing to the durable, so its
        # position moves past the placed events it does not take yet (the case that would lose
        # an event if the subscription started before the filter took its type).
        await replica.create([CANCELLED], receiver.url + "?other", partner_id=OTHER_PARTNER)
        with publishing_in_a_thread(nats_server.url, (PLACED, CANCELLED, ALLOCATED)) as ids:
            await asyncio.sleep(0.2)
            subscription_id = await replica.create([PLACED], receiver.url)
            await asyncio.sleep(0.2)

        created_at = await replica.db.run(
            lambda conn: conn.execute(
                select(subs.c.created_at).where(subs.c.id == subscription_id)
            ).scalar_one()
        )
        messages = await stream_messages(js, "ORDER")
        later = {
            message.headers[ev.CE_ID]
            for message in messages
            if message.subject == PLACED and occurred_at(message) >= created_at
        }
        earlier = {m.headers[ev.CE_ID] for m in messages if occurred_at(m) < created_at}
        assert later and earlier  # events flowed on both sides of the creation

        async def delivered() -> set[str]:
            query = select(webhook_deliveries.c.event_id).where(
                webhook_deliveries.c.subscription_id == subscription_id,
                webhook_deliveries.c.status == DELIVERED,
            )
            return {row.event_id for row in await replica.db.run(lambda c: list(c.execute(query)))}

        got = await eventually(delivered, lambda found: later <= found)
        assert got == later
        assert len(receiver.received) == len(later)
        # Allocations are wanted by nobody: not one was delivered to the gateway.
        allocated = [event_id for event_id, subject in ids.items() if subject == ALLOCATED]
        assert not any([await in_inbox(replica.db, event_id) for event_id in allocated])
        assert await filters_of(js, "ORDER") == [
            "crossdock.order.cancelled.*",
            "crossdock.order.placed.*",
        ]


async def test_deletes_and_disables_narrow_the_filter(
    gateway_db: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    async with running_replica(gateway_db, nats_server.url, reconcile_seconds=1.0) as replica:
        first = await replica.create([PLACED])
        second = await replica.create([PLACED, CANCELLED, DELIVERED_SHIPMENT])
        assert await filters_of(js, "ORDER") == [
            "crossdock.order.cancelled.*",
            "crossdock.order.placed.*",
        ]
        assert await filters_of(js, "SHIPMENT") == ["crossdock.shipment.delivered.*"]

        await replica.disable(second)  # the partner's disable narrows when it returns
        assert await filters_of(js, "ORDER") == ["crossdock.order.placed.*"]
        assert await filters_of(js, "SHIPMENT") == ["crossdock.shipment.no-subscriptions"]

        # Enabling again, and changing types, widen before they return (and narrow after).
        await replica.change(second, enabled=True)
        assert await filters_of(js, "SHIPMENT") == ["crossdock.shipment.delivered.*"]
        await replica.change(second, event_types=[DELIVERED_SHIPMENT])
        assert await filters_of(js, "ORDER") == ["crossdock.order.placed.*"]
        await replica.change(first, event_types=[CANCELLED])
        assert await filters_of(js, "ORDER") == ["crossdock.order.cancelled.*"]
        await replica.delete(second)
        assert await filters_of(js, "SHIPMENT") == ["crossdock.shipment.no-subscriptions"]

        await replica.delete(first)
        assert await filters_of(js, "ORDER") == IDLE_ORDER

        # The sender disables a failing subscription without the lock: the reconcile narrows.
        third = await replica.create([CANCELLED])
        assert await filters_of(js, "ORDER") == ["crossdock.order.cancelled.*"]
        disable = update(subs).where(subs.c.id == third).values(enabled=False)
        await replica.db.run(lambda conn: conn.execute(disable))
        await eventually(lambda: filters_of(js, "ORDER"), lambda found: found == IDLE_ORDER)


async def test_concurrent_changes_on_two_replicas_end_with_the_union(
    gateway_db: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    async with (
        running_replica(gateway_db, nats_server.url) as one,
        running_replica(gateway_db, nats_server.url) as two,
    ):
        await eventually(lambda: filters_follow_table(js, one.db), bool)
        ids = await asyncio.gather(
            one.create([PLACED]), two.create([CANCELLED]), two.create([DELIVERED_SHIPMENT])
        )
        made = list(zip(ids, [PLACED, CANCELLED, DELIVERED_SHIPMENT], strict=True))
        assert await filters_of(js, "ORDER") == [
            "crossdock.order.cancelled.*",
            "crossdock.order.placed.*",
        ]
        assert await filters_of(js, "SHIPMENT") == ["crossdock.shipment.delivered.*"]
        # Creates racing deletes of the same types, replica against replica.
        for _ in range(5):
            placed = [s for s, t in made if t == PLACED]
            results = await asyncio.gather(
                one.delete(placed[0]), two.create([PLACED]), one.create([CANCELLED])
            )
            made = [(s, t) for s, t in made if s != placed[0]]
            made += [(results[1], PLACED), (results[2], CANCELLED)]
            assert await filters_follow_table(js, one.db)
        assert await filters_of(js, "ORDER") == [
            "crossdock.order.cancelled.*",
            "crossdock.order.placed.*",
        ]


async def test_a_create_nats_cannot_confirm_fails_and_leaves_nothing(
    gateway_db: str, nats_server_fn: NatsServer
) -> None:
    async with running_replica(gateway_db, nats_server_fn.url) as replica:
        await replica.create([PLACED])
        nats_server_fn.stop()
        with pytest.raises(Unavailable) as refused:
            await replica.create([CANCELLED])
        assert refused.value.reason == "WEBHOOK_EVENT_FILTER_UNAVAILABLE"
        count = select(func.count()).select_from(subs)
        assert await replica.db.run(lambda conn: conn.execute(count).scalar_one()) == 1
        nats_server_fn.start()

        async def create_again() -> str | None:
            try:
                return await replica.create([CANCELLED])
            except Unavailable:
                return None

        assert await eventually(create_again, bool)
        assert await replica.db.run(lambda conn: conn.execute(count).scalar_one()) == 2
        assert await replica.db.run(wanted_event_types) == {PLACED, CANCELLED}


def server_time(rfc3339: str) -> float:
    """nats-server's nanosecond RFC 3339 time as epoch seconds (microseconds kept)."""
    head, _, fraction = rfc3339.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{fraction[:6].ljust(6, '0')}+00:00").timestamp()


async def test_the_effective_start_is_taken_after_nats_server_took_the_request(
    gateway_db: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    """By nats-server's own API audit: the widening's requests for ORDER were handled before
    the subscription's `created_at` (were it taken first, an event stored in between at a
    sequence the durable passed would be lost; the test above shows such events exist)."""
    audit: list[dict[str, str]] = []

    async def record(msg: Msg) -> None:
        audit.append(json.loads(msg.data))

    watch = await nats_client.subscribe("$JS.EVENT.ADVISORY.API", cb=record)
    async with running_replica(gateway_db, nats_server.url) as replica:
        await eventually(lambda: filters_follow_table(nats_client.jetstream(), replica.db), bool)
        audit.clear()
        subscription_id = await replica.create([PLACED])
        created_at = await replica.db.run(
            lambda conn: conn.execute(
                select(subs.c.created_at).where(subs.c.id == subscription_id)
            ).scalar_one()
        )
        await nats_client.flush()
    await watch.unsubscribe()
    order_requests = [entry for entry in audit if f".ORDER.{DURABLE}" in entry["subject"]]
    widening = [
        index
        for index, entry in enumerate(order_requests)
        if ".CREATE." in entry["subject"] and "crossdock.order.placed.*" in entry["request"]
    ]
    assert len(widening) == 1, [entry["subject"] for entry in audit]
    # The durable's info request that began the widening, and any before it.
    asked = [server_time(entry["timestamp"]) for entry in order_requests[: widening[0]]]
    assert asked and all(at < created_at for at in asked)


@pytest.mark.postgres
async def test_on_postgres_intake_waits_for_a_subscription_being_created(
    postgres_url: str,
) -> None:
    """READ COMMITTED alone would let intake read the table without a subscription whose
    creation holds the filter lock, and drop an event that occurred after its `created_at`."""
    migrate(postgres_url)
    db = Database(postgres_url, service="gateway")
    committing = threading.Event()

    def create_and_hold(conn: Connection) -> None:
        filter_lock(conn)
        create_subscription(conn, PARTNER, "https://example.com", [PLACED], "", time.time() - 5)
        committing.wait(timeout=10)

    try:
        creating = asyncio.create_task(db.run(create_and_hold))
        await asyncio.sleep(0.2)  # the lock is held
        headers = {ev.CE_ID: "evt-1", ev.CE_TYPE: PLACED}
        intake = asyncio.create_task(db.run(enqueue, milestone(PLACED), headers, 3600.0))
        await asyncio.sleep(0.3)
        assert not intake.done()  # waiting for the creation to commit
        committing.set()
        await creating
        assert await intake == 1
    finally:
        committing.set()
        await db.close()
