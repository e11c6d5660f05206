"""Sandbox webhooks: the signature, the verifier's refusals, parsing, and the pusher."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from services.carrier_adapter.adapters.carriers.sandbox import webhooks
from services.carrier_adapter.adapters.carriers.sandbox.connector import (
    SandboxConnector,
    SandboxSettings,
)
from services.carrier_adapter.adapters.carriers.sandbox.lifecycle import LifecycleRates
from services.carrier_adapter.adapters.carriers.sandbox.pusher import SandboxPusher
from services.carrier_adapter.adapters.carriers.tables import load_service_table, load_status_table
from services.carrier_adapter.domain.errors import WebhookMalformed, WebhookSignatureInvalid
from services.carrier_adapter.domain.model import (
    InboundWebhook,
    LabelRequest,
    Parcel,
    TrackingScan,
    TrackingStatus,
)
from services.carrier_adapter.domain.normalize import RawScan
from services.kit.values import Address
from tests.carrier_adapter.fakes import START, ManualClock

SECRET = "whsec_sandbox_test"
BODY = b'{"id":"evt_1","type":"tracking.updated"}'


def test_signature_verifies() -> None:
    headers = webhooks.sign(BODY, [SECRET], "evt_1", START)

    webhooks.verify(BODY, headers, [SECRET], START + timedelta(seconds=30))

    assert headers[webhooks.EVENT_ID_HEADER] == "evt_1"
    assert headers[webhooks.TIMESTAMP_HEADER] == str(int(START.timestamp()))
    assert headers[webhooks.SIGNATURE_HEADER].startswith("v1=")


def test_tampered_body_is_rejected() -> None:
    headers = webhooks.sign(BODY, [SECRET], "evt_1", START)
    with pytest.raises(WebhookSignatureInvalid, match="no signature matches"):
        webhooks.verify(BODY.replace(b"evt_1", b"evt_2"), headers, [SECRET], START)


def test_tampered_timestamp_is_rejected() -> None:
    headers = webhooks.sign(BODY, [SECRET], "evt_1", START)
    moved = {**headers, webhooks.TIMESTAMP_HEADER: str(int(START.timestamp()) + 60)}
    with pytest.raises(WebhookSignatureInvalid, match="no signature matches"):
        webhooks.verify(BODY, moved, [SECRET], START + timedelta(seconds=60))


@pytest.mark.parametrize("skew", [timedelta(minutes=6), -timedelta(minutes=6)])
def test_stale_or_future_timestamp_is_rejected(skew: timedelta) -> None:
    headers = webhooks.sign(BODY, [SECRET], "evt_1", START)
    with pytest.raises(WebhookSignatureInvalid, match="tolerance"):
        webhooks.verify(BODY, headers, [SECRET], START + skew)


def test_wrong_secret_and_missing_headers_are_rejected() -> None:
    headers = webhooks.sign(BODY, ["someone-else"], "evt_1", START)
    with pytest.raises(WebhookSignatureInvalid):
        webhooks.verify(BODY, headers, [SECRET], START)
    with pytest.raises(WebhookSignatureInvalid, match="missing"):
        webhooks.verify(BODY, {webhooks.TIMESTAMP_HEADER: "1"}, [SECRET], START)
    with pytest.raises(WebhookSignatureInvalid, match="unix seconds"):
        webhooks.verify(
            BODY,
            {webhooks.TIMESTAMP_HEADER: "soon", webhooks.SIGNATURE_HEADER: "v1=00"},
            [SECRET],
            START,
        )


def test_secret_rotation_accepts_old_and_new() -> None:
    signed_with_both = webhooks.sign(BODY, ["new-secret", "old-secret"], "evt_1", START)
    signed_with_old = webhooks.sign(BODY, ["old-secret"], "evt_1", START)

    webhooks.verify(BODY, signed_with_both, ["new-secret"], START)
    webhooks.verify(BODY, signed_with_old, ["new-secret", "old-secret"], START)
    with pytest.raises(WebhookSignatureInvalid):
        webhooks.verify(BODY, signed_with_old, ["new-secret"], START)


def test_header_names_are_matched_case_insensitively() -> None:
    headers = {k.upper(): v for k, v in webhooks.sign(BODY, [SECRET], "e", START).items()}
    webhooks.verify(BODY, headers, [SECRET], START)


def make_sandbox(clock: ManualClock, **overrides: object) -> SandboxConnector:
    settings = SandboxSettings(
        webhook_secrets=(SECRET,),
        seed=3,
        time_scale=3600.0,
        rates=LifecycleRates(exception=0.0, return_to_sender=0.0, weather_delay=0.0),
        **overrides,  # type: ignore[arg-type]
    )
    return SandboxConnector(
        "sandbox",
        settings,
        status_table=load_status_table("sandbox"),
        service_table=load_service_table("sandbox"),
        clock=clock,
    )


def test_parse_webhook_verifies_then_normalizes() -> None:
    clock = ManualClock()
    connector = make_sandbox(clock)
    body = webhooks.encode_push(
        "evt_42",
        "SBX000000000042",
        [
            RawScan("OFD", "Out for delivery", START),
            RawScan("DLV", "Delivered", START, signed_by="X"),
        ],
        START,
    )
    headers = webhooks.sign(body, [SECRET], "evt_42", clock.now())

    batch = connector.parse_webhook(InboundWebhook(body, headers))

    assert batch.event_id == "evt_42"
    [result] = batch.results
    assert [s.status for s in result.scans] == [
        TrackingStatus.OUT_FOR_DELIVERY,
        TrackingStatus.DELIVERED,
    ]
    with pytest.raises(WebhookSignatureInvalid):
        connector.parse_webhook(InboundWebhook(body + b" ", headers))


def test_signed_but_malformed_body_is_refused_as_malformed() -> None:
    clock = ManualClock()
    connector = make_sandbox(clock)
    for body in (b"not json", b'{"type":"tracking.updated","id":"e"}', b'{"type":"other"}'):
        headers = webhooks.sign(body, [SECRET], "e", clock.now())
        with pytest.raises(WebhookMalformed):
            connector.parse_webhook(InboundWebhook(body, headers))


async def book(connector: SandboxConnector, origin: Address, dest: Address, parcel: Parcel) -> str:
    label = await connector.book_label(
        LabelRequest("shp_push_1", "sandbox_standard", origin, dest, (parcel,))
    )
    return label.tracking_number


async def test_pusher_sends_each_scan_once_signed_and_parseable(
    us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    clock = ManualClock()
    connector = make_sandbox(clock)
    received: list[tuple[dict[str, str], bytes]] = []

    async def deliver(headers: dict[str, str], body: bytes) -> None:
        received.append((headers, body))

    pusher = SandboxPusher(connector, deliver, clock)
    number = await book(connector, us_origin, us_destination, box)

    for _ in range(100):  # a tick every simulated 2 hours, until well past delivery
        clock.advance(2 * 3600 / 3600.0)
        await pusher.run_once()

    scans: list[TrackingScan] = []
    for headers, body in received:
        batch = connector.parse_webhook(InboundWebhook(body, headers))
        scans.extend(batch.results[0].scans)
    assert [s.dedupe_key for s in scans] == [
        s.dedupe_key for s in (await connector.track(number)).scans
    ]
    assert scans[-1].status is TrackingStatus.DELIVERED
    last = json.loads(received[-1][1])
    assert last["data"]["final_charge"]["currency"] == "USD"
    assert len({h[webhooks.EVENT_ID_HEADER] for h, _ in received}) == len(received)


async def test_pusher_retries_a_failed_delivery(
    us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    clock = ManualClock()
    connector = make_sandbox(clock)
    attempts: list[bytes] = []

    async def flaky(headers: dict[str, str], body: bytes) -> None:
        attempts.append(body)
        if len(attempts) == 1:
            raise ConnectionError("webhook endpoint down")

    pusher = SandboxPusher(connector, flaky, clock)
    await book(connector, us_origin, us_destination, box)
    clock.advance(1)

    assert await pusher.run_once() == 0
    assert await pusher.run_once() == 1
    assert attempts[0] == attempts[1]


async def test_pusher_can_duplicate_and_reorder_for_e2e(
    us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    clock = ManualClock()
    connector = make_sandbox(clock, duplicate_webhook_rate=1.0)
    received: list[bytes] = []

    async def deliver(headers: dict[str, str], body: bytes) -> None:
        received.append(body)

    pusher = SandboxPusher(connector, deliver, clock)
    await book(connector, us_origin, us_destination, box)
    clock.advance(1)
    await pusher.run_once()

    assert len(received) == 2 and received[0] == received[1]

    late_clock = ManualClock()
    late = make_sandbox(late_clock, late_webhook_rate=1.0)
    held: list[bytes] = []

    async def keep(headers: dict[str, str], body: bytes) -> None:
        held.append(body)

    late_pusher = SandboxPusher(late, keep, late_clock)
    await book(late, us_origin, us_destination, box)
    late_clock.advance(1)
    await late_pusher.run_once()
    assert held == []  # held back this tick
    late_clock.advance(10)
    await late_pusher.run_once()
    assert len(held) == 1  # released after this tick's (also held) newer push was collected
