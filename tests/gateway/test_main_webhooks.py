"""`python -m gateway.main` as a process: the WebhookService it serves itself, the delivery
worker on a real nats-server, and a clean exit on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from nats.aio.client import Client as NATS

from localmesh.procs import dying_with_parent
from tests.fixtures.events import publish_as_relay
from tests.fixtures.nats import NatsServer
from tests.fixtures.ports import free_port
from tests.fixtures.receiver import Receiver, running_receiver
from tests.gateway.webhook_helpers import PLACED, consumed, eventually, order_placed

ADMIN = "main-admin-token"


@pytest.fixture
def gateway_process(
    tmp_path: Path, nats_server: NatsServer, nats_client: NATS
) -> Iterator[tuple[str, str]]:
    """The gateway process, started after nats_client wiped the streams (it declares them)."""
    http_port, admin_port = free_port(), free_port()
    env = {
        **os.environ,
        "CROSSDOCK_GATEWAY_ADMIN_TOKEN": ADMIN,
        "CROSSDOCK_GATEWAY_DB_URL": f"sqlite:///{tmp_path}/gateway.db",
        "CROSSDOCK_GATEWAY_NATS_URL": nats_server.url,
        "CROSSDOCK_GATEWAY_HTTP_HOST": "127.0.0.1",
        "CROSSDOCK_GATEWAY_HTTP_PORT": str(http_port),
        "CROSSDOCK_GATEWAY_ADMIN_PORT": str(admin_port),
        "CROSSDOCK_GATEWAY_WEBHOOK_POLL_INTERVAL_SECONDS": "0.05",
        "CROSSDOCK_GATEWAY_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        "CROSSDOCK_GATEWAY_SHUTDOWN_GRACE_SECONDS": "2",
    }
    log = (tmp_path / "gateway.log").open("wb")
    process = subprocess.Popen(
        dying_with_parent([sys.executable, "-m", "gateway.main"]),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base, admin = f"http://127.0.0.1:{http_port}", f"http://127.0.0.1:{admin_port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(base + "/healthz").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError((tmp_path / "gateway.log").read_text()[-3000:])
        time.sleep(0.1)
    try:
        yield base, admin
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, (tmp_path / "gateway.log").read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


async def test_the_gateway_process_serves_subscriptions_and_delivers(
    gateway_process: tuple[str, str], nats_client: NATS, receiver: Receiver
) -> None:
    base, admin = gateway_process
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        partner = (await client.post(admin + "/admin/partners", json={"name": "p"})).json()
        partner_id = partner["partner_id"]
        issued = await client.post(f"{admin}/admin/partners/{partner_id}/keys", json={})
        key = issued.json()["api_key"]
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}) as api:
        created = await api.post(
            "/v1/webhooks/subscriptions", json={"url": receiver.url, "eventTypes": [PLACED]}
        )
        assert created.status_code == 201, created.text
        js = nats_client.jetstream()

        async def durable_ready() -> bool:
            try:
                return await consumed(js)
            except Exception:
                return False

        await eventually(durable_ready, bool)  # the worker made its durable on ORDER
        await publish_as_relay(js, order_placed(partner_id), "ord_a")

        async def arrived() -> int:
            return len(receiver.received)

        await eventually(arrived, lambda count: count == 1)
        assert receiver.received[0].headers["crossdock-signature"].startswith("t=")
