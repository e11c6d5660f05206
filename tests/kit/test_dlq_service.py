"""DeadLetterService: a service redrives its own consumers' dead letters in place, exactly once.

A real consumer on a real nats-server dead-letters a poison event; the service's gRPC
DeadLetterService (on a real server) then applies the letter through that consumer's own path
and inbox, on SQLite and on PostgreSQL, without publishing anything to the domain stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import ModuleType

import grpc
import pytest
from crossdock.common.v1 import dead_letters_pb2 as dl
from crossdock.common.v1 import dead_letters_pb2_grpc as pb_grpc
from google.rpc import error_details_pb2
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from services.kit.client import open_channel
from services.kit.consumer import ConsumerSettings, EventConsumer
from services.kit.db import Database
from services.kit.dlq import DeadLetter, Letter, list_dead_letters, publish_letters
from services.kit.dlq_service import SERVICE, DeadLetterApi
from services.kit.grpc_errors import details_of, status_from_error
from services.kit.metrics import ServiceMetrics
from services.kit.relay import OutboxRelay
from services.kit.streams import ensure_streams
from tests.fixtures.events import stream_messages
from tests.fixtures.kittest.harness import Switch, open_db, produce, registry_for
from tests.kit.server_support import serving
from tests.kit.test_dlq_cli import effects_of
from tests.kit.test_relay import FAST, wait_until

QUICK = ConsumerSettings(
    fetch_timeout=0.3, ack_wait=5, max_deliver=3, nak_base_delay=0.1, recreate_grace=0.5
)
CONSUMER = "kittest-effects"
SUBJECT = "crossdock.order.thing_happened.v1"


@dataclass
class Rig:
    """A kittest service: its database, relay, one consumer and its DeadLetterService."""

    db: Database
    js: JetStreamContext
    fix: Switch
    consumer: EventConsumer
    stub: pb_grpc.DeadLetterServiceStub
    events: ModuleType  # the kittest events module
    metrics: ServiceMetrics

    def dead_lettered(self, reason: str) -> float:
        """crossdock_dlq_events for the consumer and a reason kind."""
        value = self.metrics.registry.get_sample_value(
            "crossdock_dlq_events_total", {"consumer": CONSUMER, "reason": reason}
        )
        return value or 0.0

    async def letters(self) -> list[DeadLetter]:
        return await list_dead_letters(self.js, CONSUMER)

    async def effects(self) -> list[tuple[str, int]]:
        return await self.db.run(effects_of(CONSUMER))

    async def poison(self, thing_id: str = "t-1") -> tuple[str, DeadLetter]:
        """Publish a poison event through the outbox; returns its id and its dead letter."""
        (event_id,) = await self.db.run(produce, self.events, [(thing_id, 9)], "poison")

        async def dead_lettered() -> bool:
            return any(letter.event_id == event_id for letter in await self.letters())

        await wait_until(dead_lettered)
        (letter,) = [letter for letter in await self.letters() if letter.event_id == event_id]
        return event_id, letter


@asynccontextmanager
async def kittest_service(
    db_url: str, pb_module: ModuleType, nc: NATS, *, db: Database | None = None
) -> AsyncIterator[Rig]:
    """One replica of the kittest service (a second one may share `db`'s database URL)."""
    js = nc.jetstream()
    await ensure_streams(js)
    own_db = db is None
    database = db or open_db(db_url)
    relay = OutboxRelay(database, nc, settings=FAST)
    relay.start()
    fix = Switch()
    metrics = ServiceMetrics("kittest")
    consumer = EventConsumer(
        service="kittest",
        purpose="effects",
        stream="ORDER",
        registry=registry_for(pb_module, CONSUMER, fix),
        db=database,
        nc=nc,
        settings=QUICK,
        metrics=metrics,
    )
    consumer.start()
    api = DeadLetterApi("kittest", nc, [consumer])
    try:
        async with serving(
            (pb_grpc.add_DeadLetterServiceServicer_to_server, api, SERVICE), service="kittest"
        ) as server:
            channel = open_channel(f"127.0.0.1:{server.port}", default_timeout_seconds=10.0)
            try:
                stub = pb_grpc.DeadLetterServiceStub(channel)
                yield Rig(database, js, fix, consumer, stub, pb_module, metrics)
            finally:
                await channel.close()
    finally:
        await consumer.stop()
        await relay.stop()
        if own_db:
            await database.close()


def redrive(letter: DeadLetter, consumer: str = CONSUMER) -> dl.RedriveDeadLetterRequest:
    return dl.RedriveDeadLetterRequest(
        sequence=letter.seq, consumer=consumer, operator="ada@ops", reason="fix deployed"
    )


async def rpc_error(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def test_redrive_applies_the_fixed_event_once_and_removes_the_letter(
    db_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    async with kittest_service(db_url, pb, nats_client) as rig:
        (good,) = await rig.db.run(produce, pb, [("t-0", 1)])
        poison, letter = await rig.poison()
        await wait_until(lambda: _has_effects(rig, 1))
        stored_before = len(await stream_messages(rig.js, "ORDER"))

        # Still broken: FAILED_AGAIN, the letter stays where it was, nothing applied.
        failed = await rig.stub.RedriveDeadLetter(redrive(letter))
        assert failed.outcome == pb_outcome("FAILED_AGAIN")
        assert failed.reason == "handler rejected the event: poison note"
        assert (failed.event_id, failed.subject) == (poison, SUBJECT)
        assert [kept.seq for kept in await rig.letters()] == [letter.seq]
        assert await rig.effects() == [(good, 1)]
        assert rig.dead_lettered("handler") == 2  # dead-lettered, then failed again

        rig.fix.turn_on()  # the bug is fixed
        applied = await rig.stub.RedriveDeadLetter(redrive(letter))
        assert applied.outcome == pb_outcome("APPLIED")
        assert (applied.event_id, applied.subject) == (poison, SUBJECT)
        assert await rig.letters() == []
        assert await rig.effects() == [(good, 1), (poison, 9)]
        # Applied in place: nothing was republished to the domain stream.
        assert len(await stream_messages(rig.js, "ORDER")) == stored_before

        again = await rpc_error(rig.stub.RedriveDeadLetter(redrive(letter)))
        assert again.code() == grpc.StatusCode.NOT_FOUND
        assert "already redriven or discarded" in (again.details() or "")
        await asyncio.sleep(0.5)  # the running consumer has nothing left to apply either
        assert await rig.effects() == [(good, 1), (poison, 9)]


async def test_a_letter_the_inbox_already_has_is_a_duplicate_and_is_removed(
    db_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    async with kittest_service(db_url, pb, nats_client) as rig:
        poison, letter = await rig.poison()
        rig.fix.turn_on()
        # As if a redrive committed and then died before deleting the letter.
        msg = Msg(
            nats_client,
            subject=letter.original_subject,
            data=letter.data,
            headers=letter.delivered_headers,
        )
        first = await rig.consumer.apply_stored(msg, letter.original_seq, letter.num_delivered)
        assert first.outcome is not None and first.outcome.value == "applied"
        assert [kept.seq for kept in await rig.letters()] == [letter.seq]

        duplicate = await rig.stub.RedriveDeadLetter(redrive(letter))
        assert duplicate.outcome == pb_outcome("DUPLICATE")
        assert "nothing was applied again" in duplicate.reason
        assert await rig.letters() == []
        assert await rig.effects() == [(poison, 9)]


async def test_two_replicas_redriving_one_letter_at_once_apply_it_once(
    db_url: str, pb: ModuleType, nats_client: NATS, nats_server
) -> None:  # type: ignore[no-untyped-def]
    import nats

    second_nc = await nats.connect(nats_server.url, name="replica-2")
    second_db = open_db(db_url)
    try:
        async with (
            kittest_service(db_url, pb, nats_client) as one,
            kittest_service(db_url, pb, second_nc, db=second_db) as two,
        ):
            poison, letter = await one.poison()
            one.fix.turn_on()
            two.fix.turn_on()
            answers = await asyncio.gather(
                one.stub.RedriveDeadLetter(redrive(letter)),
                two.stub.RedriveDeadLetter(redrive(letter)),
                return_exceptions=True,
            )
            outcomes = sorted(
                "NOT_FOUND"
                if isinstance(answer, grpc.aio.AioRpcError)
                and answer.code() == grpc.StatusCode.NOT_FOUND
                else dl.RedriveOutcome.Name(answer.outcome)  # type: ignore[union-attr]
                for answer in answers
            )
            assert outcomes in (
                ["NOT_FOUND", "REDRIVE_OUTCOME_APPLIED"],
                ["REDRIVE_OUTCOME_APPLIED", "REDRIVE_OUTCOME_DUPLICATE"],
            ), answers
            assert await one.letters() == []
            assert await one.effects() == [(poison, 9)]
    finally:
        await second_db.close()
        await second_nc.close()


async def test_discard_removes_the_letter_unapplied(
    sqlite_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    async with kittest_service(sqlite_url, pb, nats_client) as rig:
        poison, letter = await rig.poison()
        discarded = await rig.stub.DiscardDeadLetter(
            dl.DiscardDeadLetterRequest(
                sequence=letter.seq,
                consumer=CONSUMER,
                operator="ada@ops",
                reason="test order, never to be applied",
            )
        )
        assert (discarded.event_id, discarded.subject) == (poison, SUBJECT)
        assert discarded.dead_letter_reason == "handler rejected the event: poison note"
        assert await rig.letters() == []
        rig.fix.turn_on()
        again = await rpc_error(rig.stub.RedriveDeadLetter(redrive(letter)))
        assert again.code() == grpc.StatusCode.NOT_FOUND
        assert await rig.effects() == []


async def test_another_consumers_letter_is_a_failed_precondition(
    sqlite_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    async with kittest_service(sqlite_url, pb, nats_client) as rig:
        _, letter = await rig.poison()
        # A letter of another consumer of this stream (another service's, in the mesh).
        (stored,) = await publish_letters(
            rig.js,
            [
                Letter(
                    consumer="billing-events",
                    subject=SUBJECT,
                    stream="ORDER",
                    stream_seq=letter.original_seq,
                    num_delivered=1,
                    reason="elsewhere",
                    headers=letter.delivered_headers,
                    data=letter.data,
                )
            ],
            timeout=5,
        )
        assert stored
        (foreign,) = await list_dead_letters(rig.js, "billing-events")
        rig.fix.turn_on()

        theirs = await rpc_error(rig.stub.RedriveDeadLetter(redrive(foreign)))
        assert theirs.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "billing-events" in (theirs.details() or "")
        assert _precondition_subjects(theirs) == ["billing-events"]

        not_ours = await rpc_error(rig.stub.RedriveDeadLetter(redrive(foreign, "billing-events")))
        assert not_ours.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "billing-events is not a consumer of kittest" in (not_ours.details() or "")

        discard_theirs = await rpc_error(
            rig.stub.DiscardDeadLetter(
                dl.DiscardDeadLetterRequest(
                    sequence=foreign.seq, consumer=CONSUMER, operator="ada", reason="no"
                )
            )
        )
        assert discard_theirs.code() == grpc.StatusCode.FAILED_PRECONDITION
        # Nothing was touched: both letters stay, and nothing was applied.
        assert len(await list_dead_letters(rig.js)) == 2
        assert await rig.effects() == []


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (dl.RedriveDeadLetterRequest(sequence=0, consumer=CONSUMER, operator="ada"), "sequence"),
        (dl.RedriveDeadLetterRequest(sequence=1, consumer="Bad_Name", operator="ada"), "consumer"),
        (dl.RedriveDeadLetterRequest(sequence=1, consumer=CONSUMER, operator=""), "operator"),
        (
            dl.RedriveDeadLetterRequest(
                sequence=1, consumer=CONSUMER, operator="ada", reason="two\nlines"
            ),
            "reason",
        ),
        (
            dl.DiscardDeadLetterRequest(sequence=1, consumer=CONSUMER, operator="ada", reason=""),
            "reason",
        ),
        (
            dl.DiscardDeadLetterRequest(
                sequence=1, consumer=CONSUMER, operator="x" * 129, reason="r"
            ),
            "operator",
        ),
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field(
    request_: object, field: str, sqlite_url: str, pb: ModuleType, nats_client: NATS
) -> None:
    async with kittest_service(sqlite_url, pb, nats_client) as rig:
        _, letter = await rig.poison()
        call = (
            rig.stub.RedriveDeadLetter
            if isinstance(request_, dl.RedriveDeadLetterRequest)
            else rig.stub.DiscardDeadLetter
        )
        error = await rpc_error(call(request_))  # type: ignore[operator]
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        status = status_from_error(error)
        assert status is not None
        (bad,) = details_of(status, error_details_pb2.BadRequest)
        assert [violation.field for violation in bad.field_violations] == [field]
        assert [kept.seq for kept in await rig.letters()] == [letter.seq]


def pb_outcome(name: str) -> int:
    return int(dl.RedriveOutcome.Value(f"REDRIVE_OUTCOME_{name}"))


def _precondition_subjects(error: grpc.aio.AioRpcError) -> list[str]:
    status = status_from_error(error)
    assert status is not None
    failures = details_of(status, error_details_pb2.PreconditionFailure)
    return [violation.subject for failure in failures for violation in failure.violations]


async def _has_effects(rig: Rig, n: int) -> bool:
    return len(await rig.effects()) == n
