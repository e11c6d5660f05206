"""The checker reads every message a stream holds, past a message deleted on its own."""

from __future__ import annotations

import pytest
from nats.aio.client import Client as NATS

from localmesh.chaos.history import DeadLetterRecord
from localmesh.chaos.streams import read_streams
from services.kit.dlq import Letter, publish_letters
from services.kit.streams import ensure_streams
from tests.fixtures.nats import NatsServer

pytestmark = pytest.mark.integration


async def test_a_deleted_message_leaves_a_hole_and_the_rest_is_still_read(
    nats_client: NATS, nats_server: NatsServer
) -> None:
    js = nats_client.jetstream()
    await js.add_stream(name="SHIPMENT", subjects=["crossdock.shipment.>"])
    for n in range(1, 6):
        await js.publish(
            "crossdock.shipment.delivered.v1", b"{}", headers={"Nats-Msg-Id": f"ev-{n}"}
        )
    await js.delete_msg("SHIPMENT", 2)  # an event lost in the middle
    await js.delete_msg("SHIPMENT", 3)

    read = await read_streams(nats_server.url, {"crossdock.shipment.delivered.v1"})

    (stream,) = read.streams
    assert stream.event_ids == ("ev-1", "ev-4", "ev-5")
    assert [m.seq for m in read.kept] == [1, 4, 5]


async def test_dead_letters_are_read_with_their_consumer_subject_and_reason(
    nats_client: NATS, nats_server: NatsServer
) -> None:
    js = nats_client.jetstream()
    await ensure_streams(js)
    letter = Letter(
        consumer="billing-events",
        subject="crossdock.shipment.delivered.v1",
        stream="SHIPMENT",
        stream_seq=7,
        num_delivered=5,
        reason="max_deliver (5) exhausted: batch failed",
        headers={"ce-id": "ev-7", "Nats-Msg-Id": "ev-7"},
        data=b"{}",
    )
    assert await publish_letters(js, [letter], timeout=5) == [True]

    read = await read_streams(nats_server.url, set())

    assert read.dead_letters == (
        DeadLetterRecord(
            "ev-7",
            "billing-events",
            "crossdock.shipment.delivered.v1",
            "max_deliver (5) exhausted: batch failed",
        ),
    )
