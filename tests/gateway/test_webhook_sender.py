"""The sender's POST against a real endpoint on a loopback port: the stored body byte for byte
with its signature and headers, no redirect followed, and a stalled endpoint recorded as a
timeout. (The whole delivery path, NATS included, is test_webhook_delivery.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from gateway.adapters.store import migrate
from gateway.webhooks.delivery_store import RetryPolicy, claim_due
from gateway.webhooks.intake import enqueue
from gateway.webhooks.sender import USER_AGENT, SenderSettings, WebhookSender
from gateway.webhooks.store import create_subscription, list_deliveries
from services.kit import events as ev
from services.kit.db import Database
from tests.fixtures.asgi_server import serving
from tests.gateway.webhook_helpers import PLACED, load_verifier, order_placed

pytestmark = pytest.mark.integration  # sockets on loopback

PARTNER = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"


class Endpoint:
    """Records each request (path, lower-cased headers, body) and answers `status` with
    `headers`; waits for `release` first when one is given."""

    def __init__(
        self,
        status: int = 200,
        headers: tuple[tuple[bytes, bytes], ...] = (),
        release: asyncio.Event | None = None,
    ) -> None:
        self.status, self.headers, self.release = status, headers, release
        self.requests: list[tuple[str, dict[str, str], bytes]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.requests.append((scope["path"], headers, body))
        if self.release is not None:
            await self.release.wait()
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": b""})


@contextlib.asynccontextmanager
async def one_delivery(tmp_path: Path, url: str) -> AsyncIterator[tuple[Database, str, str]]:
    """A gateway database holding one due delivery to `url`: (db, subscription id, secret)."""
    db_url = f"sqlite:///{tmp_path}/gw.db"
    migrate(db_url)
    db = Database(db_url, service="gateway")
    try:
        sub = await db.run(create_subscription, PARTNER, url, [PLACED], "", time.time() - 5)
        headers = {ev.CE_ID: "evt-1", ev.CE_TYPE: PLACED}
        assert await db.run(enqueue, order_placed(PARTNER), headers, 3600.0) == 1
        yield db, sub["id"], sub["secret"]
    finally:
        await db.close()


async def send_once(db: Database, settings: SenderSettings) -> None:
    sender = WebhookSender(db, RetryPolicy(), settings)
    try:
        assert await sender.run_once() == 1
    finally:
        await sender.stop()


async def only_attempt(db: Database, subscription_id: str) -> dict[str, Any]:
    rows, attempts, _ = await db.run(list_deliveries, PARTNER, subscription_id, None, 0, "")
    [row] = rows
    [attempt] = attempts[row["id"]]
    return dict(attempt)


async def test_the_post_carries_the_stored_body_signed_with_the_delivery_headers(
    tmp_path: Path,
) -> None:
    endpoint = Endpoint(204)
    async with serving(endpoint) as base, one_delivery(tmp_path, base + "/hooks") as found:
        db, subscription_id, secret = found
        [due] = await db.run(claim_due, time.time(), 10, 0.0)  # what the sender will send
        await send_once(db, SenderSettings(allow_private_networks=True))
        attempt = await only_attempt(db, subscription_id)

    [(path, headers, body)] = endpoint.requests
    assert path == "/hooks"
    assert body == due.body  # byte for byte
    assert headers["content-type"] == "application/json"
    assert headers["content-length"] == str(len(due.body))
    assert headers["user-agent"] == USER_AGENT
    assert headers["crossdock-delivery-id"] == due.delivery_id
    assert headers["crossdock-event-type"] == PLACED
    verified = load_verifier().verify_webhook(body, headers["crossdock-signature"], secret, set())
    assert verified["id"] == due.delivery_id
    assert attempt["status_code"] == 204 and attempt["error"] == ""


async def test_a_redirect_is_recorded_as_a_failure_and_not_followed(tmp_path: Path) -> None:
    endpoint = Endpoint(302, ((b"location", b"/elsewhere"),))
    async with serving(endpoint) as base, one_delivery(tmp_path, base + "/hooks") as found:
        db, subscription_id, _ = found
        await send_once(db, SenderSettings(allow_private_networks=True))
        attempt = await only_attempt(db, subscription_id)

    assert [path for path, _, _ in endpoint.requests] == ["/hooks"]
    assert attempt["status_code"] == 302
    assert attempt["error"] == "the endpoint answered HTTP 302"


async def test_an_endpoint_that_does_not_answer_in_time_is_a_timeout(tmp_path: Path) -> None:
    endpoint = Endpoint(200, release=asyncio.Event())
    async with serving(endpoint) as base, one_delivery(tmp_path, base + "/hooks") as found:
        db, subscription_id, _ = found
        settings = SenderSettings(timeout_seconds=0.2, allow_private_networks=True)
        try:
            await send_once(db, settings)
        finally:
            assert endpoint.release is not None
            endpoint.release.set()
        attempt = await only_attempt(db, subscription_id)

    assert attempt["status_code"] == 0
    assert attempt["error"] == "no answer within 0.2 s"


async def test_a_refused_connection_is_recorded_with_its_cause(tmp_path: Path) -> None:
    endpoint = Endpoint()
    async with serving(endpoint) as base:
        pass  # the port is free again: nothing listens there now
    async with one_delivery(tmp_path, base + "/hooks") as (db, subscription_id, _):
        await send_once(db, SenderSettings(allow_private_networks=True))
        attempt = await only_attempt(db, subscription_id)

    assert attempt["status_code"] == 0
    assert base.removeprefix("http://") in attempt["error"]  # which address refused
