"""The dead-letter queue: where consumers put events they can never apply, and how operators
inspect, redrive or discard them.

A dead letter keeps the original payload and ALL original headers (CloudEvents attributes,
traceparent, correlation id), plus `crossdock-dlq-*` headers saying why, where from and for whom.
Only `Nats-Msg-Id` is replaced (the original is kept in `crossdock-dlq-original-msg-id`): two
consumers may dead-letter the same event, and the DLQ stream must keep both.

Redrive republishes to the original subject with a NEW Nats-Msg-Id (so JetStream's duplicate
window cannot swallow it) and the SAME ce-id (so the consumer's inbox still applies it at most
once). It is addressed to the consumer that failed (`crossdock-redrive-consumer`); other consumers
of the subject ack and skip it. That path needs the right to publish the domain subject (the
admin user's); each consuming service also redrives its own consumers' letters in place, without
publishing anything, through its DeadLetterService (services.kit.dlq_service).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import NotFoundError

from services.kit import events as ev
from services.kit.outbox import rfc3339
from services.kit.streams import DLQ_STREAM, DLQ_SUBJECT_PREFIX, dlq_subject

DLQ_HEADER_PREFIX = "crossdock-dlq-"
DLQ_REASON = "crossdock-dlq-reason"
DLQ_CONSUMER = "crossdock-dlq-consumer"
DLQ_ORIGINAL_SUBJECT = "crossdock-dlq-original-subject"
DLQ_ORIGINAL_STREAM = "crossdock-dlq-original-stream"
DLQ_ORIGINAL_SEQ = "crossdock-dlq-original-stream-seq"
DLQ_ORIGINAL_MSG_ID = "crossdock-dlq-original-msg-id"
DLQ_NUM_DELIVERED = "crossdock-dlq-num-delivered"
DLQ_TIME = "crossdock-dlq-time"
REDRIVE_CONSUMER = "crossdock-redrive-consumer"
REDRIVE_OF = "crossdock-redrive-of"

_MAX_REASON = 1000
MAX_DELIVERIES_ADVISORY = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Letter:
    """A dead letter about to be published by a consumer."""

    consumer: str
    subject: str
    stream: str
    stream_seq: int
    num_delivered: int
    reason: str
    headers: Mapping[str, str]
    data: bytes

    def dlq_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        original_msg_id = headers.pop(ev.NATS_MSG_ID, None)
        # Deterministic per (consumer, stream position): a retried DLQ publish is deduplicated.
        headers[ev.NATS_MSG_ID] = f"dlq:{self.consumer}:{self.stream}:{self.stream_seq}"
        if original_msg_id:
            headers[DLQ_ORIGINAL_MSG_ID] = original_msg_id
        headers[DLQ_REASON] = _one_line(self.reason)[:_MAX_REASON]
        headers[DLQ_CONSUMER] = self.consumer
        headers[DLQ_ORIGINAL_SUBJECT] = self.subject
        headers[DLQ_ORIGINAL_STREAM] = self.stream
        headers[DLQ_ORIGINAL_SEQ] = str(self.stream_seq)
        headers[DLQ_NUM_DELIVERED] = str(self.num_delivered)
        headers[DLQ_TIME] = rfc3339(time.time())
        return headers


def _one_line(text: str) -> str:
    # NATS header values cannot carry CR/LF.
    return " ".join(text.split())


async def publish_letters(
    js: JetStreamContext, letters: list[Letter], timeout: float
) -> list[bool]:
    """Publish dead letters together; result[i] is True when letters[i] is safely stored."""
    futures = [
        await js.publish_async(
            dlq_subject(letter.consumer), letter.data, headers=letter.dlq_headers()
        )
        for letter in letters
    ]
    if not futures:
        return []
    _, pending = await asyncio.wait(futures, timeout=timeout)
    for future in pending:
        future.cancel()
    return [f.done() and not f.cancelled() and f.exception() is None for f in futures]


async def watch_max_deliveries(
    nc: NATS, stream: str, consumer: str, timeout: float = 5.0
) -> Subscription:
    """Dead-letter messages JetStream gave up on after max_deliver unanswered deliveries.

    The consumer dead-letters on the final delivery itself; this covers a final delivery that
    was never answered (the process died mid-batch). JetStream then drops the message and only
    announces it by an advisory, which every running replica receives; the deterministic DLQ
    Nats-Msg-Id makes the replicas' copies (and a late in-band one) collapse into one.
    """
    js = nc.jetstream()

    async def on_advisory(msg: Msg) -> None:
        try:
            advisory = json.loads(msg.data)
            seq = int(advisory["stream_seq"])
            raw = await js.get_msg(stream, seq)
        except NotFoundError:
            return  # already gone from the stream (max age): nothing left to save
        except Exception as exc:
            log.error("max-deliveries advisory for %s not handled: %r", consumer, exc)
            return
        letter = Letter(
            consumer=consumer,
            subject=raw.subject or "",
            stream=stream,
            stream_seq=seq,
            num_delivered=int(advisory.get("deliveries", 0)),
            reason="max_deliver exhausted: the final delivery was never acknowledged",
            headers=dict(raw.headers or {}),
            data=raw.data or b"",
        )
        stored = await publish_letters(js, [letter], timeout)
        log.error(
            "dead-lettered %s seq %d for %s after max deliveries (stored=%s)",
            stream,
            seq,
            consumer,
            stored[0],
        )

    return await nc.subscribe(f"{MAX_DELIVERIES_ADVISORY}.{stream}.{consumer}", cb=on_advisory)


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter as stored in the DLQ stream."""

    seq: int
    consumer: str
    original_subject: str
    original_stream: str
    original_seq: int
    reason: str
    event_id: str
    headers: dict[str, str]
    data: bytes

    @property
    def original_headers(self) -> dict[str, str]:
        """The event's own headers, without the DLQ bookkeeping and the DLQ's Nats-Msg-Id."""
        return {
            k: v
            for k, v in self.headers.items()
            if not k.lower().startswith(DLQ_HEADER_PREFIX) and k != ev.NATS_MSG_ID
        }

    @property
    def num_delivered(self) -> int:
        """How many deliveries the consumer had made when it gave up."""
        try:
            return int(self.headers.get(DLQ_NUM_DELIVERED, "0") or 0)
        except ValueError:
            return 0

    @property
    def delivered_headers(self) -> dict[str, str]:
        """The headers the consumer was delivered: the event's own, its Nats-Msg-Id included."""
        headers = self.original_headers
        original_msg_id = self.headers.get(DLQ_ORIGINAL_MSG_ID)
        if original_msg_id:
            headers[ev.NATS_MSG_ID] = original_msg_id
        return headers


def _to_dead_letter(seq: int, headers: Mapping[str, str] | None, data: bytes | None) -> DeadLetter:
    hdrs = dict(headers or {})
    return DeadLetter(
        seq=seq,
        consumer=hdrs.get(DLQ_CONSUMER, ""),
        original_subject=hdrs.get(DLQ_ORIGINAL_SUBJECT, ""),
        original_stream=hdrs.get(DLQ_ORIGINAL_STREAM, ""),
        original_seq=int(hdrs.get(DLQ_ORIGINAL_SEQ, "0") or 0),
        reason=hdrs.get(DLQ_REASON, ""),
        event_id=hdrs.get(ev.CE_ID, ""),
        headers=hdrs,
        data=data or b"",
    )


async def get_dead_letter(js: JetStreamContext, seq: int) -> DeadLetter:
    """One dead letter by its DLQ stream sequence (NotFoundError if gone)."""
    raw = await js.get_msg(DLQ_STREAM, seq)
    assert raw.seq is not None
    return _to_dead_letter(raw.seq, raw.headers, raw.data)


async def list_dead_letters(
    js: JetStreamContext, consumer: str | None = None, limit: int | None = None
) -> list[DeadLetter]:
    """Dead letters in DLQ order, optionally only one consumer's."""
    subject = dlq_subject(consumer) if consumer else f"{DLQ_SUBJECT_PREFIX}.>"
    letters: list[DeadLetter] = []
    seq = 1
    while limit is None or len(letters) < limit:
        try:
            raw = await js.get_msg(DLQ_STREAM, seq=seq, subject=subject, next=True)
        except NotFoundError:
            break
        assert raw.seq is not None
        letters.append(_to_dead_letter(raw.seq, raw.headers, raw.data))
        seq = raw.seq + 1
    return letters


async def redrive(js: JetStreamContext, letter: DeadLetter) -> PubAck:
    """Republish a dead letter to its original subject for its consumer, then remove it.

    Crash-safe: if we die between the publish and the delete, a second redrive republishes with
    the same Nats-Msg-Id (deduplicated by JetStream) and the inbox keeps it exactly-once anyway.
    """
    if not letter.original_subject or not letter.event_id:
        raise ValueError(f"dead letter {letter.seq} lacks its original subject or ce-id")
    headers = letter.original_headers
    headers[ev.NATS_MSG_ID] = f"{letter.event_id}:redrive:{letter.seq}"
    headers[REDRIVE_CONSUMER] = letter.consumer
    headers[REDRIVE_OF] = str(letter.seq)
    ack = await js.publish(
        letter.original_subject,
        letter.data,
        headers=headers,
        stream=letter.original_stream or None,
    )
    await discard(js, letter.seq)
    return ack


async def discard(js: JetStreamContext, seq: int) -> bool:
    """Delete a dead letter for good; False if it was already gone."""
    try:
        return bool(await js.delete_msg(DLQ_STREAM, seq))
    except NotFoundError:
        return False
