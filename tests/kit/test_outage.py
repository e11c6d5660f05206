"""NATS goes away for 10 s while a service keeps producing: nothing is lost, the backlog drains."""

from __future__ import annotations

import asyncio
import time
from types import ModuleType

import pytest

from services.kit import outbox
from services.kit.bus import connect
from services.kit.consumer import ConsumerSettings, EventConsumer
from services.kit.metrics import ServiceMetrics
from services.kit.relay import OutboxRelay, RelaySettings
from services.kit.streams import ensure_streams
from tests.fixtures.events import stream_messages
from tests.fixtures.kittest.harness import open_db, produce, read_effects, registry_for
from tests.fixtures.nats import NatsServer
from tests.kit.test_relay import wait_until

pytestmark = pytest.mark.slow


async def test_nats_outage_loses_nothing_and_backlog_drains(
    sqlite_url: str, pb: ModuleType, nats_server_fn: NatsServer
) -> None:
    nc = await connect(nats_server_fn.url, name="kittest")
    js = nc.jetstream()
    await ensure_streams(js)
    db = open_db(sqlite_url)
    metrics = ServiceMetrics("kittest")
    relay = OutboxRelay(
        db,
        nc,
        metrics=metrics,
        settings=RelaySettings(
            poll_interval=0.2, ack_timeout=1.0, backoff_max=1.0, stats_interval=0.2
        ),
    )
    consumer = EventConsumer(
        service="kittest",
        purpose="effects",
        stream="ORDER",
        registry=registry_for(pb, "kittest-effects"),
        db=db,
        nc=nc,
        settings=ConsumerSettings(fetch_timeout=0.5),
        metrics=metrics,
    )
    relay.start()
    consumer.start()

    produced: list[str] = []
    backlog_during_outage: list[int] = []
    stop_producing = asyncio.Event()

    async def producer() -> None:
        n = 0
        while not stop_producing.is_set():
            n += 1
            produced.extend(await db.run(produce, pb, [(f"t-{n % 10}", n)]))
            await asyncio.sleep(0.02)

    producing = asyncio.create_task(producer())
    await asyncio.sleep(1.5)
    nats_server_fn.stop()
    outage_started = time.monotonic()
    while time.monotonic() - outage_started < 10:
        await asyncio.sleep(0.5)
        backlog_during_outage.append((await db.run(outbox.backlog))[0])
    nats_server_fn.start()
    await asyncio.sleep(1.5)
    stop_producing.set()
    await producing

    async def drained() -> bool:
        return (await db.run(outbox.backlog))[0] == 0 and len(await db.run(read_effects)) >= len(
            produced
        )

    await wait_until(drained, timeout=60, interval=0.2)
    # The backlog really built up while NATS was away...
    assert max(backlog_during_outage) > 100
    assert backlog_during_outage == sorted(backlog_during_outage)  # and only grew
    # ...and after the restart every event is in the stream exactly once, applied exactly once.
    ids = [m.headers["ce-id"] for m in await stream_messages(js, "ORDER")]
    assert sorted(ids) == sorted(produced) and len(set(ids)) == len(produced)
    applied = [e[0] for e in await db.run(read_effects)]
    assert sorted(applied) == sorted(produced)
    await relay.refresh_backlog_metrics()
    assert metrics.registry.get_sample_value("crossdock_outbox_backlog") == 0
    await consumer.stop()
    await relay.stop()
    await nc.close()
    await db.close()
