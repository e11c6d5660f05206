"""The delivery worker end to end: real nats-server, real SQLite (and PostgreSQL), a real
receiver. Milestone events in JetStream become signed deliveries, exactly once; failures are
retried with backoff, logged, disable the subscription, and a redrive delivers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import pytest
from crossdock.events.v1 import order_events_pb2
from nats.aio.client import Client as NATS

from gateway.webhooks.payload import signature_header
from services.kit.ids import new_event_id
from tests.fixtures.events import publish_as_relay
from tests.fixtures.nats import NatsServer
from tests.fixtures.receiver import Receiver, running_receiver
from tests.gateway.conftest import Stack, StackFactory, bearer
from tests.gateway.webhook_helpers import (
    PLACED,
    as_json,
    consumed,
    eventually,
    load_verifier,
    order_placed,
    worker,
)

BASE = "/v1/webhooks/subscriptions"
verify_webhook = load_verifier().verify_webhook


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture
async def delivering(
    stack: Stack, nats_server: NatsServer, nats_client: NATS
) -> AsyncIterator[Stack]:
    running = worker(stack.db, nats_server.url, disable_after=3)
    running.start()
    await running.wait_started()
    yield stack
    await running.stop()


async def subscribe(stack: Stack, key: str, url: str, types: list[str]) -> tuple[str, str]:
    created = as_json(
        await stack.client.post(BASE, json={"url": url, "eventTypes": types}, headers=bearer(key))
    )
    return created["subscription"]["subscriptionId"], created["secret"]


async def deliveries(stack: Stack, key: str, subscription_id: str) -> list[dict]:
    response = await stack.client.get(f"{BASE}/{subscription_id}/deliveries", headers=bearer(key))
    return as_json(response)["deliveries"]


async def test_a_milestone_event_is_delivered_signed_exactly_once(
    delivering: Stack, nats_client: NATS, receiver: Receiver
) -> None:
    stack = delivering
    js = nats_client.jetstream()
    sub_a, secret = await subscribe(stack, stack.key_a, receiver.url, [PLACED])
    # B subscribes too, to events it does not own: it must receive nothing of A's.
    await subscribe(stack, stack.key_b, receiver.url + "?b", [PLACED])
    event_id = await publish_as_relay(js, order_placed(stack.partner_a), "ord_a")
    # Redelivered: the same event under a fresh Nats-Msg-Id, which JetStream does not de-duplicate.
    await publish_as_relay(
        js, order_placed(stack.partner_a), "ord_a", event_id=event_id, msg_id=new_event_id()
    )
    # A's cancellation is not subscribed to; an event of a partner without subscriptions neither.
    cancelled = order_events_pb2.OrderCancelled(order_id="ord_a", partner_id=stack.partner_a)
    await publish_as_relay(js, cancelled, "ord_a")
    await publish_as_relay(js, order_placed("ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8Z"), "ord_z")
    await eventually(lambda: consumed(js), bool)
    logged = await eventually(
        lambda: deliveries(stack, stack.key_a, sub_a),
        lambda found: bool(found) and found[0]["status"] == "WEBHOOK_DELIVERY_STATUS_DELIVERED",
    )
    assert len(logged) == 1
    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got.headers["content-type"] == "application/json"
    delivery = verify_webhook(got.body, got.headers["crossdock-signature"], secret, set())
    assert delivery["id"] == got.headers["crossdock-delivery-id"] == logged[0]["deliveryId"]
    assert delivery["type"] == PLACED
    assert delivery["data"]["order"]["partnerId"] == stack.partner_a
    assert logged[0]["eventId"] == event_id
    assert logged[0]["attempts"][0]["responseStatusCode"] == 200


async def test_failures_back_off_disable_the_subscription_and_redrive_delivers(
    delivering: Stack, nats_client: NATS, receiver: Receiver
) -> None:
    stack = delivering
    receiver.always(503)
    sub, secret = await subscribe(stack, stack.key_a, receiver.url, [PLACED])
    await publish_as_relay(nats_client.jetstream(), order_placed(stack.partner_a), "ord_a")
    target = f"{BASE}/{sub}"

    async def subscription() -> dict:
        return as_json(await stack.client.get(target, headers=bearer(stack.key_a)))["subscription"]

    disabled = await eventually(subscription, lambda s: not s["enabled"])
    assert "3 consecutive failed delivery attempts" in disabled["disabledReason"]
    [failed] = await deliveries(stack, stack.key_a, sub)
    assert failed["status"] == "WEBHOOK_DELIVERY_STATUS_FAILED"
    assert failed["attemptCount"] == 3
    attempts = failed["attempts"]
    assert [a["attemptNumber"] for a in attempts] == [1, 2, 3]
    assert {a["responseStatusCode"] for a in attempts} == {503}
    assert all("503" in a["error"] for a in attempts)
    times = [a["attemptTime"] for a in attempts]
    assert times == sorted(times) and len(set(times)) == 3
    # Every retry carried the same delivery id, in the signed body and the header.
    ids = {json.loads(r.body)["id"] for r in receiver.received}
    ids |= {r.headers["crossdock-delivery-id"] for r in receiver.received}
    assert ids == {failed["deliveryId"]}
    assert len(receiver.received) == 3

    filtered = await stack.client.get(
        f"{target}/deliveries",
        params={"status": "WEBHOOK_DELIVERY_STATUS_DELIVERED"},
        headers=bearer(stack.key_a),
    )
    assert as_json(filtered)["deliveries"] == []

    receiver.always(200)
    redriven = as_json(
        await stack.client.post(f"{target}:redrive", json={}, headers=bearer(stack.key_a))
    )
    assert redriven["requeuedCount"] == 1
    assert redriven["subscription"]["enabled"] is True
    [delivered] = await eventually(
        lambda: deliveries(stack, stack.key_a, sub),
        lambda found: found[0]["status"] == "WEBHOOK_DELIVERY_STATUS_DELIVERED",
    )
    assert delivered["deliveryId"] == failed["deliveryId"]
    assert delivered["attemptCount"] == 4
    last = receiver.received[-1]
    body = verify_webhook(last.body, last.headers["crossdock-signature"], secret, set())
    assert body["id"] == failed["deliveryId"]
    assert (await subscription())["consecutiveFailures"] == 0


async def test_an_endpoint_that_recovers_gets_the_retry(
    delivering: Stack, nats_client: NATS, receiver: Receiver
) -> None:
    stack = delivering
    receiver.statuses = [500, 200]
    sub, _ = await subscribe(stack, stack.key_a, receiver.url, [PLACED])
    await publish_as_relay(nats_client.jetstream(), order_placed(stack.partner_a), "ord_a")
    [done] = await eventually(
        lambda: deliveries(stack, stack.key_a, sub),
        lambda found: bool(found) and found[0]["status"] == "WEBHOOK_DELIVERY_STATUS_DELIVERED",
    )
    assert [a["responseStatusCode"] for a in done["attempts"]] == [500, 200]
    assert done["deliverTime"]


@pytest.mark.postgres
async def test_two_replicas_share_deliveries_on_postgres(
    make_stack: StackFactory,
    postgres_url: str,
    nats_server: NatsServer,
    nats_client: NATS,
    receiver: Receiver,
) -> None:
    stack = await make_stack(db_url=postgres_url)
    sub, _ = await subscribe(stack, stack.key_a, receiver.url, [PLACED])
    # Two workers (two gateway replicas) on one database and one durable per stream.
    replicas = [worker(stack.db, nats_server.url), worker(stack.db, nats_server.url)]
    for replica in replicas:
        replica.start()
    try:
        for replica in replicas:
            await replica.wait_started()
        js = nats_client.jetstream()
        for n in range(20):
            await publish_as_relay(js, order_placed(stack.partner_a, f"ord_{n:026d}"), f"ord_{n}")
        await eventually(lambda: consumed(js), bool)

        async def delivered() -> int:
            found = await deliveries(stack, stack.key_a, sub)
            return sum(d["status"] == "WEBHOOK_DELIVERY_STATUS_DELIVERED" for d in found)

        await eventually(delivered, lambda count: count == 20)
    finally:
        for replica in replicas:
            await replica.stop()
    ids = [json.loads(r.body)["id"] for r in receiver.received]
    assert len(ids) == len(set(ids)) == 20


async def test_the_sample_verifier_rejects_tampering_staleness_and_replays(
    delivering: Stack, nats_client: NATS, receiver: Receiver
) -> None:
    """The acceptance check: a receiver using only the documented algorithm (the verifier
    shipped in docs/examples) accepts a real delivery and rejects each kind of forgery."""
    verifier = load_verifier()
    stack = delivering
    _, secret = await subscribe(stack, stack.key_a, receiver.url, [PLACED])
    await publish_as_relay(nats_client.jetstream(), order_placed(stack.partner_a), "ord_a")

    async def arrived() -> int:
        return len(receiver.received)

    await eventually(arrived, bool)
    got = receiver.received[0]
    header = got.headers["crossdock-signature"]
    seen: set[str] = set()
    assert verifier.verify_webhook(got.body, header, secret, seen)["type"] == PLACED

    tampered = got.body.replace(b'"type":"', b'"type":"x')
    assert tampered != got.body
    with pytest.raises(verifier.WebhookRejected, match="signature"):
        verifier.verify_webhook(tampered, header, secret, set())
    with pytest.raises(verifier.WebhookRejected, match="signature"):
        verifier.verify_webhook(got.body, header, "whsec_wrong", set())

    timestamp = int(header.split(",")[0].removeprefix("t="))
    stale_t = timestamp - verifier.TOLERANCE_SECONDS - 60
    # Correctly signed, but long ago: a captured delivery replayed later.
    stale_header = signature_header([secret], stale_t, got.body)
    with pytest.raises(verifier.WebhookRejected, match="tolerance"):
        verifier.verify_webhook(got.body, stale_header, secret, set())
    # Moving t forward without re-signing breaks the signature.
    forged = header.replace(f"t={timestamp}", f"t={timestamp + 1}")
    with pytest.raises(verifier.WebhookRejected, match="signature"):
        verifier.verify_webhook(got.body, forged, secret, set())

    with pytest.raises(verifier.DuplicateDelivery):
        verifier.verify_webhook(got.body, header, secret, seen)
    with pytest.raises(verifier.WebhookRejected, match="malformed"):
        verifier.verify_webhook(got.body, "v1=abc", secret, set())
