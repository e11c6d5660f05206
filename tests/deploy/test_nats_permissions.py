"""The generated NATS users work against a real nats-server, and they deny what they should.

The server runs the committed auth.conf (JetStream, single node): a producer declares the
streams and publishes its own event but not another service's; a consumer creates its durable,
fetches and acks, dead-letters and reads the original message back - the calls the kit makes.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import nats.errors
import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from services.kit.streams import dlq_subject, ensure_streams
from tests.deploy.k8s import SERVICES, nats_auth
from tests.fixtures.nats import find_nats_server
from tests.fixtures.ports import free_port

PASSWORD = "pw"


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    (tmp_path / "auth.conf").write_text(nats_auth.AUTH_FILE.read_text())
    (tmp_path / "nats.conf").write_text(
        f"port: {port}\njetstream {{ store_dir: {tmp_path / 'js'} }}\ninclude ./auth.conf\n"
    )
    env = {nats_auth.password_env(service): PASSWORD for service in SERVICES}
    proc = subprocess.Popen(
        [find_nats_server(), "-c", str(tmp_path / "nats.conf")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("nats-server did not start") from None
                time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_generated_permissions_allow_the_kit_and_deny_the_rest(nats_url: str) -> None:
    violations: list[str] = []

    async def on_error(error: Exception) -> None:
        violations.append(str(error))

    def as_user(user: str) -> str:
        return nats_url.replace("nats://", f"nats://{user}:{PASSWORD}@")

    order = await nats.connect(as_user("order"), error_cb=on_error)
    inventory = await nats.connect(as_user("inventory"), error_cb=on_error)
    try:
        await ensure_streams(order.jetstream())
        await order.jetstream().publish("crossdock.order.placed.v1", b"{}", timeout=5)
        assert violations == []

        # nats-py reports a denied publish as a timeout (no ack), plus the error callback.
        with pytest.raises(nats.errors.TimeoutError):
            await order.jetstream().publish("crossdock.inventory.reserved.v1", b"{}", timeout=1)
        assert any("crossdock.inventory.reserved.v1" in v for v in violations)
        violations.clear()

        js = inventory.jetstream()
        await ensure_streams(js)
        durable = nats_auth.consumer_name("inventory")
        await js.add_consumer(
            "ORDER",
            ConsumerConfig(
                durable_name=durable,
                ack_policy=AckPolicy.EXPLICIT,
                filter_subject="crossdock.order.>",
            ),
        )
        await js.consumer_info("ORDER", durable)
        sub = await js.pull_subscribe_bind(durable=durable, stream="ORDER")
        (message,) = await sub.fetch(1, timeout=5)
        await message.ack_sync()
        await inventory.subscribe(f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.ORDER.{durable}")
        await js.publish(dlq_subject(durable), b"{}", timeout=5)
        assert (await js.get_msg("ORDER", seq=1)).subject == "crossdock.order.placed.v1"
        assert violations == []

        # Another service's durable is out of reach.
        with pytest.raises(nats.errors.TimeoutError):
            await js.consumer_info("ORDER", "order-inventory-events", timeout=1)
        assert violations
    finally:
        await order.close()
        await inventory.close()
