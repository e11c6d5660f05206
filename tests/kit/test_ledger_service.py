"""A real service (billing, built by its own `setup`) serves EventLedgerService, on SQLite files
and PostgreSQL, with a real nats-server.

start_events registers it: billing's outbox answers for the invoices it posted (paged by send
time), its consumer's inbox for the events it applied, a row held back from the relay shows as
unsent, and a re-emitted invoice goes out again under its own ce-id.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from crossdock.common.v1 import event_ledger_pb2 as pb
from crossdock.common.v1 import event_ledger_pb2_grpc as pb_grpc
from google.protobuf.timestamp_pb2 import Timestamp
from nats.aio.client import Client as NATS

from services.billing.config import BillingConfig
from services.billing.main import setup as billing_setup
from services.kit import outbox
from services.kit.client import open_channel
from services.kit.db import Database
from services.kit.ids import new_event_id
from services.kit.leader import leadership_for
from services.kit.server import ServiceServer
from tests.billing.service_support import delivered, eur, ids, order_placed, shipment
from tests.fixtures.events import publish_as_relay, stream_messages
from tests.fixtures.nats import NatsServer
from tests.fixtures.running import billing_env
from tests.fixtures.waiting import wait_for

CONSUMER = "billing-events"
POSTED = "crossdock.billing.invoice_posted.v1"


def stamp(seconds: float) -> Timestamp:
    value = Timestamp()
    value.FromNanoseconds(round(seconds * 1e9))
    return value


def seconds(value: Timestamp) -> float:
    return value.seconds + value.nanos / 1e9


@contextlib.asynccontextmanager
async def serving_billing(
    db_url: str, nats_url: str
) -> AsyncIterator[pb_grpc.EventLedgerServiceStub]:
    config = BillingConfig.from_env(billing_env(db_url, nats_url))
    server = ServiceServer.from_config(config)
    await billing_setup(server, config)
    port = await server.start()
    channel = open_channel(f"127.0.0.1:{port}", default_timeout_seconds=10.0)
    try:
        yield pb_grpc.EventLedgerServiceStub(channel)
    finally:
        await channel.close()
        await server.shutdown()


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call  # type: ignore[misc]
    return error.value


async def test_billing_answers_for_what_it_published_and_applied(
    db_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    partner = ids("ptn")
    start = time.time()
    async with serving_billing(db_url, nats_server.url) as ledger:
        applied: list[str] = []
        for _ in range(3):
            order_id, shipment_id = ids("ord"), ids("shp")
            await publish_as_relay(js, order_placed(order_id, partner), order_id)
            ship = shipment(shipment_id, order_id, partner)
            applied.append(await publish_as_relay(js, delivered(ship, eur(6)), shipment_id))
        posted = await wait_for(
            lambda: stream_messages(js, "BILLING", POSTED), lambda got: len(got) == 3
        )
        assert len(posted) == 3
        posted_ids = {message.headers["ce-id"] for message in posted}

        # Paged by (send time, event id), two per page: the three invoices, each once.
        window = {"subject": POSTED, "since": stamp(start), "until": stamp(time.time() + 1)}
        first = await ledger.ListPublished(pb.ListPublishedRequest(**window, page_size=2))
        assert len(first.events) == 2 and first.next_page_token
        second = await ledger.ListPublished(
            pb.ListPublishedRequest(**window, page_size=2, page_token=first.next_page_token)
        )
        assert len(second.events) == 1 and not second.next_page_token
        events = [*first.events, *second.events]
        assert {event.event_id for event in events} == posted_ids
        keys = [(seconds(event.send_time), event.event_id) for event in events]
        assert keys == sorted(keys)
        assert all(event.subject == POSTED and event.aggregate_id for event in events)
        assert all(seconds(e.create_time) <= seconds(e.send_time) for e in events)
        # Nothing was purged: the retention horizon (24 h by default) is the answer.
        assert seconds(first.retained_since) < start - 23 * 3600
        # The window's end is exclusive, and another subject has none of them.
        before = await ledger.ListPublished(
            pb.ListPublishedRequest(subject=POSTED, since=stamp(start - 60), until=stamp(start))
        )
        assert list(before.events) == [] and not before.next_page_token
        other = await ledger.ListPublished(
            pb.ListPublishedRequest(**{**window, "subject": "crossdock.billing.other.v1"})
        )
        assert list(other.events) == []

        # The consumer's inbox holds the delivered events it applied, not an unknown id.
        unknown = new_event_id()
        checked = await ledger.CheckApplied(
            pb.CheckAppliedRequest(consumer=CONSUMER, event_ids=[unknown, *applied, applied[0]])
        )
        assert list(checked.applied_event_ids) == applied
        days_30 = 30 * 24 * 3600
        assert abs(seconds(checked.retained_since) - (time.time() - days_30)) < 60
        # Asked with a subject: billing handles shipment.delivered, not shipment.picked_up (the
        # catalog may name consumers that have no handler: their absence is no loss).
        handled = await ledger.CheckApplied(
            pb.CheckAppliedRequest(
                consumer=CONSUMER, event_ids=applied, subject="crossdock.shipment.delivered.v1"
            )
        )
        assert handled.handles_subject and list(handled.applied_event_ids) == applied
        unhandled = await ledger.CheckApplied(
            pb.CheckAppliedRequest(
                consumer=CONSUMER, event_ids=applied, subject="crossdock.shipment.picked_up.v1"
            )
        )
        assert (unhandled.handles_subject, list(unhandled.applied_event_ids)) == (False, [])

        # Re-emitted: the relay publishes the invoice again, same ce-id, a transport id of its own.
        target = events[0].event_id
        again = await ledger.Reemit(pb.ReemitRequest(event_id=target, reason="lost downstream"))
        assert again.reemitted and again.subject == POSTED

        async def copies() -> list[str]:
            found = await stream_messages(js, "BILLING", POSTED)
            return [m.headers["Nats-Msg-Id"] for m in found if m.headers["ce-id"] == target]

        assert await wait_for(copies, lambda got: len(got) == 2) == [
            target,
            f"{target}:reemit:1",
        ]

        missing = await refused(ledger.Reemit(pb.ReemitRequest(event_id=unknown)))
        assert missing.code() == grpc.StatusCode.NOT_FOUND
        assert "no longer in the outbox of billing (retention)" in (missing.details() or "")


async def test_billing_refuses_bad_requests_and_other_consumers(
    sqlite_url: str, nats_server: NatsServer
) -> None:
    now = time.time()
    async with serving_billing(sqlite_url, nats_server.url) as ledger:
        other = await refused(
            ledger.CheckApplied(
                pb.CheckAppliedRequest(consumer="inventory-events", event_ids=["evt_1"])
            )
        )
        assert other.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "inventory-events is not a consumer of billing (its consumers: billing-events)" in (
            other.details() or ""
        )

        bad = [
            ledger.CheckApplied(pb.CheckAppliedRequest(consumer=CONSUMER, event_ids=[])),
            ledger.CheckApplied(
                pb.CheckAppliedRequest(
                    consumer=CONSUMER, event_ids=[f"evt_{n}" for n in range(1001)]
                )
            ),
            ledger.ListPublished(
                pb.ListPublishedRequest(
                    subject="Crossdock.Billing", since=stamp(now - 60), until=stamp(now)
                )
            ),
            ledger.ListPublished(pb.ListPublishedRequest(subject=POSTED, since=stamp(now))),
            ledger.ListPublished(
                pb.ListPublishedRequest(subject=POSTED, since=stamp(now), until=stamp(now - 1))
            ),
            ledger.ListPublished(
                pb.ListPublishedRequest(
                    subject=POSTED, since=stamp(now - 1), until=stamp(now), page_token="garbage"
                )
            ),
            ledger.Reemit(pb.ReemitRequest(event_id="")),
        ]
        for call in bad:
            error = await refused(call)
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()


async def test_a_row_the_relay_has_not_published_is_listed_unsent(
    db_url: str, nats_server: NatsServer
) -> None:
    """The relay's leadership is held elsewhere, so billing's relay publishes nothing."""
    db = Database(db_url, service="billing")
    leadership = leadership_for(db)
    assert await leadership.acquire()
    try:
        async with serving_billing(db_url, nats_server.url) as ledger:
            event_id = await db.run(
                lambda conn: outbox.append_raw(
                    conn,
                    subject=POSTED,
                    payload=b"",
                    aggregate_id="inv_1",
                    correlation_id="c-1",
                    dataschema="",
                )
            )
            written = time.time()
            cut_off = written + 0.001

            unsent = await ledger.ListUnsent(pb.ListUnsentRequest(before=stamp(cut_off)))
            assert [event.event_id for event in unsent.events] == [event_id]
            assert unsent.total == 1
            (row,) = unsent.events
            assert row.subject == POSTED and row.aggregate_id == "inv_1"
            assert not row.HasField("send_time")

            earlier = await ledger.ListUnsent(pb.ListUnsentRequest(before=stamp(written - 60)))
            assert list(earlier.events) == [] and earlier.total == 0

            # Still pending: nothing to re-emit.
            pending = await ledger.Reemit(pb.ReemitRequest(event_id=event_id))
            assert not pending.reemitted and pending.subject == POSTED

            # A row sent before the retention horizon that no purge removed yet (purging is the
            # relay leader's): the outbox holds every row sent after it, so that is the answer.
            long_ago = written - 2 * 24 * 3600
            [seq] = await db.run(lambda conn: [row.seq for row in outbox.fetch_pending(conn, 10)])
            await db.run(outbox.mark_sent, [seq], long_ago)
            old = await ledger.ListPublished(
                pb.ListPublishedRequest(
                    subject=POSTED, since=stamp(long_ago - 1), until=stamp(written)
                )
            )
            assert [event.event_id for event in old.events] == [event_id]
            assert seconds(old.events[0].send_time) == pytest.approx(long_ago, abs=1e-6)
            assert seconds(old.retained_since) == pytest.approx(long_ago + 1e-6, abs=1e-6)
            assert seconds(old.retained_since) > long_ago
    finally:
        await leadership.release()
        await db.close()


async def test_reads_answer_while_another_writer_holds_the_sqlite_database(
    sqlite_url: str, nats_server: NatsServer
) -> None:
    """ListPublished, ListUnsent and CheckApplied read in a deferred transaction: a writer that
    holds the lock (here another connection's BEGIN IMMEDIATE) does not delay them, where a unit
    of work would wait for it (busy timeout 5 s)."""
    now = time.time()
    async with serving_billing(sqlite_url, nats_server.url) as ledger:
        writer = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        try:
            window = {"since": stamp(now - 60), "until": stamp(now + 60)}
            published = await ledger.ListPublished(
                pb.ListPublishedRequest(subject=POSTED, **window), timeout=2.0
            )
            unsent = await ledger.ListUnsent(pb.ListUnsentRequest(before=stamp(now)), timeout=2.0)
            checked = await ledger.CheckApplied(
                pb.CheckAppliedRequest(consumer=CONSUMER, event_ids=["evt_1"]), timeout=2.0
            )
        finally:
            writer.execute("ROLLBACK")
            writer.close()
        assert list(published.events) == [] and unsent.total == 0
        assert list(checked.applied_event_ids) == []
