"""Webhook pieces without a network: the event list in the contract, event owners, backoff,
the signature header, and the SSRF guard."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path

import pytest
from buf.validate import validate_pb2
from crossdock.gateway.v1 import webhook_service_pb2 as svc

from gateway.adapters.store import migrate
from gateway.entrypoints.consumers import event_handlers, milestone_events
from gateway.webhooks.delivery_store import RetryPolicy, claim_due
from gateway.webhooks.intake import enqueue
from gateway.webhooks.payload import partner_of, partner_path, signature_header
from gateway.webhooks.sender import (
    DestinationRefused,
    SenderSettings,
    WebhookSender,
    check_destination,
)
from gateway.webhooks.store import (
    SubscriptionChange,
    create_subscription,
    list_deliveries,
    purge_log,
    redrive,
    rotate_secret,
    update_subscription,
)
from services.kit import events as ev
from services.kit.db import Database
from services.kit.outbox import rfc3339
from tests.gateway.webhook_helpers import PLACED, order_placed


def contract_event_types(message: type, field: str) -> set[str]:
    options = message.DESCRIPTOR.fields_by_name[field].GetOptions()
    rules = options.Extensions[validate_pb2.field]
    return set(getattr(rules.repeated.items.string, "in"))


def test_the_contract_offers_exactly_the_catalogs_milestones() -> None:
    milestones = {event.subject for event in milestone_events()}
    assert milestones  # order, shipment, invoice (and return, credit note) milestones
    assert contract_event_types(svc.WebhookSubscriptionInput, "event_types") == milestones
    assert contract_event_types(svc.UpdateWebhookSubscriptionRequest, "event_types") == milestones


def test_every_milestone_names_its_partner_and_the_gateway_consumes_it() -> None:
    for event in milestone_events():
        assert partner_path(event.message_class.DESCRIPTOR) is not None, event.subject
        # The gateway's NATS permissions come from `consumers`: it must be listed there.
        assert "gateway" in event.consumers, event.subject
    registry = event_handlers(60.0)
    assert set(registry.subjects()) == {event.subject for event in milestone_events()}
    assert registry.streams() == {"ORDER", "RETURN", "SHIPMENT", "BILLING"}


def test_partner_of_reads_nested_and_top_level_owners() -> None:
    from crossdock.events.v1 import order_events_pb2

    assert partner_of(order_placed("ptn_A")) == "ptn_A"
    assert partner_of(order_events_pb2.OrderCancelled(partner_id="ptn_B")) == "ptn_B"


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    policy = RetryPolicy(base_delay_seconds=10, max_delay_seconds=300)
    for attempt, ceiling in ((1, 10), (2, 20), (3, 40), (6, 300), (40, 300)):
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # jitter spreads over the whole range


def test_the_signature_header_is_stripes_scheme_with_one_v1_per_secret() -> None:
    body = b'{"id":"whd_1"}'
    header = signature_header(["whsec_new", "whsec_old"], 1_700_000_000, body)
    t, new, old = header.split(",")
    assert t == "t=1700000000"
    for part, secret in ((new, "whsec_new"), (old, "whsec_old")):
        expected = hmac.new(secret.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
        assert part == f"v1={expected}"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/x",
        "http://localhost/x",
        "https://10.0.0.8/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/x",
        "https://192.168.1.1/",
    ],
)
async def test_private_destinations_are_refused(url: str) -> None:
    with pytest.raises(DestinationRefused):
        await check_destination(url)


@pytest.mark.parametrize("url", ["https://hooks.example.com:https/x", "https:///no-host"])
async def test_urls_without_a_usable_host_are_refused(url: str) -> None:
    # Refused like a private address, so the attempt is recorded instead of failing the batch.
    with pytest.raises(DestinationRefused):
        await check_destination(url)


async def test_a_public_ip_literal_is_allowed() -> None:
    await check_destination("https://93.184.215.14/hook")


async def test_the_sender_logs_a_refused_destination_as_a_failed_attempt(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/gw.db"
    migrate(url)
    db = Database(url, service="gateway")
    partner = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"
    sender = WebhookSender(db, RetryPolicy(), SenderSettings(allow_private_networks=False))
    try:
        sub = await db.run(
            create_subscription,
            partner,
            "http://127.0.0.1:9/hook",
            ["crossdock.order.placed.v1"],
            "",
            time.time(),
        )
        headers = {ev.CE_ID: "evt-1", ev.CE_TYPE: "crossdock.order.placed.v1"}
        assert await db.run(enqueue, order_placed(partner), headers, 3600.0) == 1
        assert await db.run(enqueue, order_placed(partner), headers, 3600.0) == 0  # once
        assert await sender.run_once() == 1
        rows, attempts, _ = await db.run(list_deliveries, partner, sub["id"], None, 0, "")
        [row] = rows
        [attempt] = attempts[row["id"]]
        assert row["status"] == "pending" and row["attempt_count"] == 1
        assert attempt["status_code"] == 0
        assert "non-public address" in attempt["error"]
        assert row["next_attempt_at"] >= attempt["attempted_at"]
    finally:
        await sender.stop()
        await db.close()


def test_the_docs_ship_the_tested_verifier_verbatim() -> None:
    """docs/webhooks.md shows docs/examples/verify_webhook.py byte for byte, so neither rots."""
    root = Path(__file__).resolve().parents[2]
    markdown = (root / "docs" / "webhooks.md").read_text()
    block = markdown.split("<!-- verifier:begin -->\n```python\n", 1)[1]
    block = block.split("```\n<!-- verifier:end -->", 1)[0]
    assert block == (root / "docs" / "examples" / "verify_webhook.py").read_text()


def test_the_docs_list_every_subscribable_event_type() -> None:
    markdown = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
    for event in milestone_events():
        assert f"`{event.subject}`" in markdown


async def test_a_subscription_gets_only_events_after_its_creation(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/gw.db"
    migrate(url)
    db = Database(url, service="gateway")
    partner = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"
    try:
        await db.run(
            create_subscription,
            partner,
            "https://hooks.example.com",
            ["crossdock.order.placed.v1"],
            "",
            time.time(),
        )
        old = {
            ev.CE_ID: "evt-old",
            ev.CE_TYPE: "crossdock.order.placed.v1",
            ev.CE_TIME: "2026-01-01T00:00:00.000000Z",
        }
        assert await db.run(enqueue, order_placed(partner), old, 3600.0) == 0
        new = {**old, ev.CE_ID: "evt-new", ev.CE_TIME: rfc3339(time.time() + 1)}
        assert await db.run(enqueue, order_placed(partner), new, 3600.0) == 1
        other = {**new, ev.CE_ID: "evt-other", ev.CE_TYPE: "crossdock.order.cancelled.v1"}
        assert await db.run(enqueue, order_placed(partner), other, 3600.0) == 0
        assert await db.run(enqueue, order_placed("ptn_someone_else"), new, 3600.0) == 0
    finally:
        await db.close()


async def test_rotation_signs_with_both_secrets_for_the_grace_period(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/gw.db"
    migrate(url)
    db = Database(url, service="gateway")
    partner = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"
    try:
        sub = await db.run(
            create_subscription, partner, "https://h.example.com", [PLACED], "", time.time() - 5
        )
        headers = {ev.CE_ID: "evt-1", ev.CE_TYPE: PLACED}
        await db.run(enqueue, order_placed(partner), headers, 3600.0)
        rotated = await db.run(rotate_secret, partner, sub["id"], 60, time.time())
        [due] = await db.run(claim_due, time.time(), 10, 60.0)
        assert due.secrets == (rotated["secret"], sub["secret"])
        # Past the grace period only the new secret signs.
        [due] = await db.run(claim_due, time.time() + 3600, 10, 60.0)
        assert due.secrets == (rotated["secret"],)
        # Settled deliveries leave the log after the retention; pending ones stay.
        assert await db.run(purge_log, time.time() + 10) == 0
        await db.run(redrive, partner, sub["id"], "", time.time(), 60.0)  # nothing failed
        assert await db.run(
            update_subscription, partner, sub["id"], SubscriptionChange(enabled=False), time.time()
        )
        assert await db.run(purge_log, time.time() + 10) == 1
    finally:
        await db.close()
