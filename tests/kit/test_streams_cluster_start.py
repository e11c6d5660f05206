"""A service starting while its JetStream cluster has no quorum yet waits for it, instead of
failing its start: the streams are created once the other nodes are up."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from localmesh.nats_binary import find_nats_server
from localmesh.natsconf import ADMIN_USER, ClusterNode, nats_users, render_nats_config
from services.kit.streams import DOMAIN_STREAMS, StreamSettings, ensure_streams
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.integration

PASSWORD = "pw-admin"


class Cluster:
    """Three nats-server nodes on loopback, started one by one."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.clients = [free_port() for _ in range(3)]
        self.routes = [free_port() for _ in range(3)]
        self.procs: list[subprocess.Popen[bytes]] = []

    def start_node(self, index: int) -> None:
        store = self.base / f"node-{index}"
        store.mkdir(parents=True, exist_ok=True)
        text = render_nats_config(
            host="127.0.0.1",
            client_port=self.clients[index],
            monitor_port=free_port(),
            store_dir=store / "jetstream",
            users=nats_users([], {ADMIN_USER: PASSWORD}),
            cluster=ClusterNode(
                f"test-node-{index}",
                self.routes[index],
                tuple(p for i, p in enumerate(self.routes) if i != index),
            ),
        )
        config = store / "nats.conf"
        config.write_text(text)
        self.procs.append(
            subprocess.Popen(
                [find_nats_server(), "-c", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    def url(self, index: int) -> str:
        return f"nats://{ADMIN_USER}:{PASSWORD}@127.0.0.1:{self.clients[index]}"

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(tmp_path)
    yield running
    running.stop()


async def test_streams_are_ensured_once_the_cluster_has_a_quorum(cluster: Cluster) -> None:
    cluster.start_node(0)
    await asyncio.sleep(0.5)
    client = await nats.connect(cluster.url(0), max_reconnect_attempts=-1)
    try:
        js = client.jetstream(timeout=2)
        ensuring = asyncio.create_task(
            ensure_streams(js, StreamSettings(replicas=3), patience_seconds=60)
        )
        await asyncio.sleep(3)
        assert not ensuring.done()  # one node of three: no meta leader, nothing can be created
        cluster.start_node(1)
        cluster.start_node(2)

        created = await asyncio.wait_for(ensuring, timeout=60)

        assert set(DOMAIN_STREAMS.values()) <= set(created)
        info = await js.stream_info(next(iter(DOMAIN_STREAMS.values())))
        assert info.config.num_replicas == 3
    finally:
        await client.close()
