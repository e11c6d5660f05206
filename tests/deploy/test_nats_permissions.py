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
from nats.js.errors import NotFoundError

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


async def test_a_consuming_service_reads_and_deletes_dead_letters_but_publishes_nothing_new(
    nats_url: str,
) -> None:
    """What DeadLetterService needs (services.kit.dlq_service): get and delete a DLQ message."""
    violations: list[str] = []

    async def on_error(error: Exception) -> None:
        violations.append(str(error))

    billing = await nats.connect(
        nats_url.replace("nats://", f"nats://billing:{PASSWORD}@"), error_cb=on_error
    )
    try:
        js = billing.jetstream()
        await ensure_streams(js)
        own = dlq_subject(nats_auth.consumer_name("billing"))
        ack = await js.publish(own, b"letter", timeout=5)
        assert ack.stream == "DLQ"
        assert (await js.get_msg("DLQ", ack.seq)).data == b"letter"
        assert await js.delete_msg("DLQ", ack.seq)
        with pytest.raises(NotFoundError):
            await js.get_msg("DLQ", ack.seq)
        assert violations == []

        # Still no domain subject but its own, and no other consumer's DLQ subject.
        refused = [
            "crossdock.shipment.delivered.v1",
            "crossdock.order.placed.v1",
            dlq_subject(nats_auth.consumer_name("order")),
        ]
        for subject in refused:
            with pytest.raises(nats.errors.TimeoutError):
                await js.publish(subject, b"{}", timeout=1)
            assert any(subject in v for v in violations), subject
        # Nor can it empty the DLQ wholesale.
        with pytest.raises(nats.errors.TimeoutError):
            await js.purge_stream("DLQ")
    finally:
        await billing.close()
