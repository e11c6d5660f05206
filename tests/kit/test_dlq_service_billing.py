"""A real service (billing, built by its own `setup`) serves DeadLetterService for its consumer.

start_events registers it: billing's consumer dead-letters an event it cannot decode, and the
service answers for that letter through its gRPC port (FAILED_AGAIN, the letter kept), refuses a
consumer that is not its own, and discards the letter.
"""

from __future__ import annotations

import grpc
import pytest
from crossdock.common.v1 import dead_letters_pb2 as dl
from crossdock.common.v1 import dead_letters_pb2_grpc as dl_grpc
from nats.aio.client import Client as NATS

from services.billing.config import BillingConfig
from services.billing.main import setup as billing_setup
from services.kit import faults
from services.kit.client import open_channel
from services.kit.dlq import list_dead_letters
from services.kit.server import ServiceServer
from tests.billing.service_support import delivered, order_placed, shipment
from tests.fixtures.events import publish_as_relay
from tests.fixtures.running import billing_env
from tests.kit.test_relay import wait_until

CONSUMER = "billing-events"


async def test_billing_serves_dead_letter_service_for_its_own_consumer(
    sqlite_url: str, nats_client: NATS, nats_server
) -> None:  # type: ignore[no-untyped-def]
    js = nats_client.jetstream()
    config = BillingConfig.from_env(billing_env(sqlite_url, nats_server.url))
    server = ServiceServer.from_config(config)
    await billing_setup(server, config)
    port = await server.start()
    channel = open_channel(f"127.0.0.1:{port}", default_timeout_seconds=10.0)
    try:
        stub = dl_grpc.DeadLetterServiceStub(channel)
        event = delivered(shipment("shp_1", "ord_1", "ptn_1"), None)
        event_id = await publish_as_relay(js, event, "shp_1", data=b"\xff\xff\xff")

        async def dead_lettered() -> bool:
            return len(await list_dead_letters(js, CONSUMER)) == 1

        await wait_until(dead_lettered)
        (letter,) = await list_dead_letters(js, CONSUMER)
        assert letter.event_id == event_id

        answer = await stub.RedriveDeadLetter(
            dl.RedriveDeadLetterRequest(sequence=letter.seq, consumer=CONSUMER, operator="ada")
        )
        assert answer.outcome == dl.REDRIVE_OUTCOME_FAILED_AGAIN
        assert answer.event_id == event_id
        assert answer.subject == "crossdock.shipment.delivered.v1"
        assert answer.reason.startswith("undecodable crossdock.events.v1.ShipmentDelivered")
        assert [kept.seq for kept in await list_dead_letters(js, CONSUMER)] == [letter.seq]

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.RedriveDeadLetter(
                dl.RedriveDeadLetterRequest(
                    sequence=letter.seq, consumer="inventory-events", operator="ada"
                )
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "inventory-events is not a consumer of billing" in (refused.value.details() or "")

        await stub.DiscardDeadLetter(
            dl.DiscardDeadLetterRequest(
                sequence=letter.seq, consumer=CONSUMER, operator="ada", reason="garbage bytes"
            )
        )
        assert await list_dead_letters(js, CONSUMER) == []
    finally:
        await channel.close()
        await server.shutdown()


async def test_a_poisoned_handler_dead_letters_and_redrive_applies_once_the_fault_is_lifted(
    sqlite_url: str,
    nats_client: NATS,
    nats_server,  # type: ignore[no-untyped-def]
    tmp_path,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fault seam's `poison` (read from a file, so it can be lifted from a running process)
    makes billing's delivered handler reject its event as a bug would; redriven while the fault
    holds it fails again, and once the file is gone the same letter applies, exactly once."""
    fault = tmp_path / "fault"
    fault.write_text(f"handle/{CONSUMER}/crossdock.shipment.delivered.v1:poison\n")
    monkeypatch.setenv(faults.FAULT_FILE_ENV, str(fault))
    js = nats_client.jetstream()
    config = BillingConfig.from_env(billing_env(sqlite_url, nats_server.url))
    server = ServiceServer.from_config(config)
    await billing_setup(server, config)
    port = await server.start()
    channel = open_channel(f"127.0.0.1:{port}", default_timeout_seconds=10.0)
    try:
        stub = dl_grpc.DeadLetterServiceStub(channel)
        await publish_as_relay(js, order_placed("ord_2", "ptn_1"), "ord_2")
        event_id = await publish_as_relay(
            js, delivered(shipment("shp_2", "ord_2", "ptn_1"), None), "shp_2"
        )

        async def dead_lettered() -> bool:
            return len(await list_dead_letters(js, CONSUMER)) == 1

        await wait_until(dead_lettered)
        (letter,) = await list_dead_letters(js, CONSUMER)
        assert letter.event_id == event_id
        assert "fault injected at handle/billing-events/" in letter.reason

        request = dl.RedriveDeadLetterRequest(
            sequence=letter.seq, consumer=CONSUMER, operator="ada"
        )
        again = await stub.RedriveDeadLetter(request)
        assert again.outcome == dl.REDRIVE_OUTCOME_FAILED_AGAIN

        fault.unlink()  # the fix is deployed
        applied = await stub.RedriveDeadLetter(request)
        assert applied.outcome == dl.REDRIVE_OUTCOME_APPLIED, applied
        assert applied.event_id == event_id
        assert await list_dead_letters(js, CONSUMER) == []
    finally:
        await channel.close()
        await server.shutdown()
