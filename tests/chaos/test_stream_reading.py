"""The checker reads every message a stream holds, past a message deleted on its own."""

from __future__ import annotations

import pytest
from nats.aio.client import Client as NATS

from localmesh.chaos.streams import read_streams
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
