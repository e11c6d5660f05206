"""The local nats-server config grants each service exactly deploy/gen_nats_auth.py's rules.

Checked twice: structurally against `permissions()` (the function that writes the Kubernetes
auth.conf), and on a real nats-server that must accept the file, let the admin user read
streams and refuse a service publishing another service's event.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import nats.errors
import pytest

from localmesh.mesh import find_nats_server
from localmesh.natsconf import ADMIN_USER, gen_nats_auth, nats_users, render_nats_config, user_url
from localmesh.probes import http_ok
from localmesh.procs import dying_with_parent
from localmesh.services import ALL_SERVICES
from services.kit.catalog import SERVICES
from services.kit.streams import ensure_streams
from tests.fixtures.ports import free_port

NAMES = sorted(spec.name for spec in ALL_SERVICES)
PASSWORDS = {name: f"pw-{name.replace('-', '')}" for name in [*NAMES, ADMIN_USER]}


def test_every_mesh_service_is_a_catalog_service() -> None:
    assert set(NAMES) == set(SERVICES)


def test_service_users_have_the_generated_permissions() -> None:
    users = {user.name: user for user in nats_users(NAMES, PASSWORDS)}
    assert set(users) == {*NAMES, ADMIN_USER}
    for name in NAMES:
        expected = gen_nats_auth().permissions(name)
        assert users[name].publish == tuple(expected.publish), name
        assert users[name].subscribe == tuple(expected.subscribe), name
    assert users[ADMIN_USER].publish is None and users[ADMIN_USER].subscribe is None


def test_rendered_config_lists_every_subject_of_every_user(tmp_path: Path) -> None:
    users = nats_users(NAMES, PASSWORDS)
    text = render_nats_config(
        host="127.0.0.1", client_port=1, monitor_port=2, store_dir=tmp_path, users=users
    )
    blocks = text.split("{ user: ")[1:]
    assert len(blocks) == len(users)
    for user, block in zip(users, blocks, strict=True):
        assert block.startswith(f'"{user.name}", password: "{PASSWORDS[user.name]}"')
        for subject in (*(user.publish or ()), *(user.subscribe or ())):
            assert f'"{subject}"' in block, (user.name, subject)


@pytest.fixture
def local_nats(tmp_path: Path) -> Iterator[str]:
    port, monitor = free_port(), free_port()
    config = tmp_path / "nats.conf"
    config.write_text(
        render_nats_config(
            host="127.0.0.1",
            client_port=port,
            monitor_port=monitor,
            store_dir=tmp_path / "js",
            users=nats_users(NAMES, PASSWORDS),
        )
    )
    binary = find_nats_server()
    checked = subprocess.run([binary, "-t", "-c", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    process = subprocess.Popen(
        dying_with_parent([binary, "-c", str(config)]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while not http_ok(f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true"):
            assert process.poll() is None and time.monotonic() < deadline, "nats-server down"
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=15)


async def test_real_server_enforces_the_local_users(local_nats: str) -> None:
    host, port = local_nats.split(":")
    violations: list[str] = []

    async def on_error(error: Exception) -> None:
        violations.append(str(error))

    def url(user: str) -> str:
        return user_url(host, int(port), user, PASSWORDS[user])

    order = await nats.connect(url("order"), error_cb=on_error)
    admin = await nats.connect(url(ADMIN_USER))
    try:
        await ensure_streams(order.jetstream())
        await order.jetstream().publish("crossdock.order.placed.v1", b"{}", timeout=5)
        with pytest.raises(nats.errors.TimeoutError):
            await order.jetstream().publish("crossdock.billing.invoice_posted.v1", b"{}", timeout=1)
        assert any("crossdock.billing.invoice_posted.v1" in v for v in violations)
        streams = {info.config.name: info for info in await admin.jetstream().streams_info()}
        assert streams["ORDER"].state.messages == 1
    finally:
        await order.close()
        await admin.close()
    with pytest.raises(nats.errors.Error, match=r"(?i)authorization"):
        await asyncio.wait_for(
            nats.connect(f"nats://order:wrong@{local_nats}", allow_reconnect=False), 10
        )


async def test_the_control_tower_reads_every_stream_and_may_publish_no_event(
    local_nats: str,
) -> None:
    host, port = local_nats.split(":")
    violations: list[str] = []

    async def on_error(error: Exception) -> None:
        violations.append(str(error))

    def url(user: str) -> str:
        return user_url(host, int(port), user, PASSWORDS[user])

    tower = await nats.connect(url("control-tower"), error_cb=on_error)
    order = await nats.connect(url("order"))
    try:
        await ensure_streams(tower.jetstream())
        await order.jetstream().publish("crossdock.order.placed.v1", b"{}", timeout=5)
        # Its durable on a domain stream: created, pulled and acked as its own user.
        pull = await tower.jetstream().pull_subscribe(
            "crossdock.order.placed.*", durable="control-tower-projections", stream="ORDER"
        )
        (message,) = await pull.fetch(1, timeout=5)
        await message.ack()
        assert not violations
        # Every domain's events are refused, its own included (it has none).
        refused = [
            "crossdock.order.placed.v1",
            "crossdock.inventory.reserved.v1",
            "crossdock.shipment.delivered.v1",
            "crossdock.billing.invoice_posted.v1",
            "crossdock.carrier.code_unmapped.v1",
            "crossdock.return.received.v1",
        ]
        for subject in refused:
            await tower.publish(subject, b"{}")
        await tower.flush()
        deadline = time.monotonic() + 5
        while len(violations) < len(refused) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for subject in refused:
            assert any(subject in v for v in violations), subject
    finally:
        await tower.close()
        await order.close()
