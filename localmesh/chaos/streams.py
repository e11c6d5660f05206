"""Read every JetStream stream of a mesh, message by message, as the admin user.

Each stream becomes a StreamRecord (its event ids, first kept sequence and its time); the
messages whose payload the checker needs are kept as StreamMessage for the history's other
parts (stock movements, labels). Reading is one `STREAM.MSG.GET` per message: slow for huge
streams, but it reads exactly what the stream holds, with no consumer left behind.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import nats
from nats.js.errors import NotFoundError

from localmesh.chaos.history import DeadLetterRecord, StreamRecord
from services.kit.dlq import list_dead_letters
from services.kit.streams import DLQ_STREAM

CE_ID = "ce-id"
NATS_MSG_ID = "Nats-Msg-Id"


@dataclass(frozen=True)
class StreamMessage:
    stream: str
    seq: int
    subject: str
    event_id: str
    data: bytes


@dataclass(frozen=True)
class StreamsRead:
    streams: tuple[StreamRecord, ...]
    # Payloads of the messages whose subject was asked for, in stream order.
    kept: tuple[StreamMessage, ...]
    # The DLQ stream's messages, with the headers that say who gave up on what and why.
    dead_letters: tuple[DeadLetterRecord, ...] = ()


async def read_streams(nats_url: str, keep_subjects: Collection[str]) -> StreamsRead:
    client = await nats.connect(nats_url)
    try:
        jsm = client.jsm()
        records: list[StreamRecord] = []
        kept: list[StreamMessage] = []
        for info in await jsm.streams_info():
            name = info.config.name or ""
            state = info.state
            event_ids: list[str] = []
            first_time: float | None = None
            seq = state.first_seq
            while state.messages and seq <= state.last_seq:
                try:
                    msg = await jsm.get_msg(name, seq, next=True)
                except NotFoundError:
                    # A message deleted on its own (an operator's `nats stream rmm`, a test's
                    # lost event) leaves a hole: read on after it, up to the last sequence.
                    seq += 1
                    continue
                seq = (msg.seq or seq) + 1
                if first_time is None and msg.time is not None:
                    first_time = msg.time.timestamp()
                headers = msg.headers or {}
                # ce-id is the event's own id; a redrive gives a new Nats-Msg-Id but keeps it.
                event_id = headers.get(CE_ID) or headers.get(NATS_MSG_ID) or ""
                event_ids.append(event_id)
                if msg.subject and msg.subject in keep_subjects:
                    kept.append(
                        StreamMessage(
                            name, msg.seq or 0, msg.subject or "", event_id, msg.data or b""
                        )
                    )
            records.append(
                StreamRecord(
                    name=name,
                    subjects=tuple(info.config.subjects or ()),
                    first_seq=state.first_seq,
                    first_time=first_time,
                    event_ids=tuple(event_ids),
                )
            )
        dead_letters: tuple[DeadLetterRecord, ...] = ()
        if any(record.name == DLQ_STREAM for record in records):
            dead_letters = tuple(
                DeadLetterRecord(
                    letter.event_id, letter.consumer, letter.original_subject, letter.reason
                )
                for letter in await list_dead_letters(client.jetstream())
            )
        return StreamsRead(tuple(records), tuple(kept), dead_letters)
    finally:
        await client.close()


async def last_seq(nats_url: str, subject: str) -> int:
    """The last sequence of the stream that holds `subject` (0 when empty)."""
    client = await nats.connect(nats_url)
    try:
        jsm = client.jsm()
        info = await jsm.stream_info(await jsm.find_stream_name_by_subject(subject))
        return int(info.state.last_seq)
    finally:
        await client.close()


def stream_for(subject: str, streams: Collection[StreamRecord]) -> str:
    """The stream whose subject filters match `subject` (NATS `*` and `>`), or "" if none."""
    for stream in streams:
        if any(subject_matches(pattern, subject) for pattern in stream.subjects):
            return stream.name
    return ""


def subject_matches(pattern: str, subject: str) -> bool:
    want, got = pattern.split("."), subject.split(".")
    for index, token in enumerate(want):
        if token == ">":
            return len(got) > index
        if index >= len(got) or (token != "*" and token != got[index]):
            return False
    return len(want) == len(got)
