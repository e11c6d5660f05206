"""The consumers' continuous pull on a real nats-server: one open request, lost ones renewed."""

from __future__ import annotations

import asyncio
import time
from types import ModuleType

from nats.aio.client import Client as NATS
from nats.js.api import AckPolicy, ConsumerConfig

from services.kit.bus import connect
from services.kit.pull import PullGone, PullLost, PullStream
from services.kit.streams import ensure_streams
from tests.fixtures.kittest.harness import publish_event
from tests.fixtures.nats import NatsServer

DURABLE = "kittest-pull"


async def _durable(nc: NATS) -> None:
    js = nc.jetstream()
    await ensure_streams(js)
    await js.add_consumer(
        "ORDER",
        ConsumerConfig(durable_name=DURABLE, ack_policy=AckPolicy.EXPLICIT, ack_wait=30),
    )


async def _publish(nc: NATS, pb: ModuleType, *ids: str) -> None:
    js = nc.jetstream()
    for event_id in ids:
        await publish_event(js, pb.ThingHappened(thing_id=event_id, n=1), event_id=event_id)


def _ids(msgs: list) -> list[str]:  # type: ignore[type-arg]
    return [m.headers["ce-id"] for m in msgs]


async def test_one_open_request_serves_batch_after_batch(nats_client: NATS, pb: ModuleType) -> None:
    await _durable(nats_client)
    pull = PullStream(nats_client, "ORDER", DURABLE, batch=10, expires=5.0)
    await pull.open()
    try:
        await _publish(nats_client, pb, "e-1")
        first = await pull.next_batch()
        # Messages that arrive while the consumer is busy wait in the buffer and come as one
        # batch, in stream order, on the same request.
        await _publish(nats_client, pb, "e-2", "e-3", "e-4")
        await asyncio.sleep(0.2)
        second = await pull.next_batch()
        assert (_ids(first), _ids(second)) == (["e-1"], ["e-2", "e-3", "e-4"])
        assert pull.requests_sent == 1
        for msg in first + second:
            await msg.ack()
    finally:
        await pull.close()


async def test_a_batch_never_exceeds_its_size_and_a_used_up_request_is_renewed(
    nats_client: NATS, pb: ModuleType
) -> None:
    await _durable(nats_client)
    await _publish(nats_client, pb, *(f"e-{i}" for i in range(7)))
    pull = PullStream(nats_client, "ORDER", DURABLE, batch=3, expires=5.0)
    await pull.open()
    try:
        # A batch is what has arrived, up to its size: how the seven split depends on when they
        # land, but no batch holds more than three, none is lost or repeated, and a request is
        # renewed only once its three are used up (3 + 3 + 1: three requests).
        batches: list[list[str]] = []
        while sum(len(b) for b in batches) < 7:
            batches.append(_ids(await asyncio.wait_for(pull.next_batch(), 5)))
        assert all(1 <= len(b) <= 3 for b in batches), batches
        assert [i for b in batches for i in b] == [f"e-{i}" for i in range(7)]
        assert pull.requests_sent == 3
    finally:
        await pull.close()


async def test_an_expired_request_returns_empty_then_a_new_one_delivers(
    nats_client: NATS, pb: ModuleType
) -> None:
    await _durable(nats_client)
    pull = PullStream(nats_client, "ORDER", DURABLE, batch=10, expires=0.3)
    await pull.open()
    try:
        started = time.monotonic()
        assert await asyncio.wait_for(pull.next_batch(), 3) == []  # 408: the caller looks around
        assert time.monotonic() - started >= 0.25  # it waited for the request to expire
        await _publish(nats_client, pb, "late")
        assert _ids(await asyncio.wait_for(pull.next_batch(), 3)) == ["late"]
        assert pull.requests_sent == 2
    finally:
        await pull.close()


async def test_draining_sends_no_new_request(nats_client: NATS, pb: ModuleType) -> None:
    await _durable(nats_client)
    pull = PullStream(nats_client, "ORDER", DURABLE, batch=10, expires=0.3)
    await pull.open()
    try:
        assert await pull.next_batch(request_more=False) == []
        assert pull.requests_sent == 0
    finally:
        await pull.close()


async def test_a_deleted_durable_is_reported(nats_client: NATS) -> None:
    await _durable(nats_client)
    pull = PullStream(nats_client, "ORDER", DURABLE, batch=10, expires=5.0)
    await pull.open()
    try:
        waiting = asyncio.create_task(pull.next_batch())
        await asyncio.sleep(0.2)
        await nats_client.jetstream().delete_consumer("ORDER", DURABLE)
        try:
            await asyncio.wait_for(waiting, 3)
        except PullGone as exc:
            assert "409" in str(exc) or "503" in str(exc)
        else:  # pragma: no cover - the assertion below explains
            raise AssertionError("a deleted durable must raise PullGone")
        # A pull on the missing durable: nats-server 2.10+ answers 503 (no responders), 2.9
        # leaves it unanswered; either way the consumer hears of it and looks at the durable.
        try:
            await asyncio.wait_for(pull.next_batch(), 15)
        except (PullGone, PullLost):
            pass
        else:  # pragma: no cover
            raise AssertionError("a pull on a missing durable must raise")
    finally:
        await pull.close()


async def test_a_request_lost_in_a_restart_is_renewed(
    nats_server_fn: NatsServer, pb: ModuleType
) -> None:
    nc = await connect(nats_server_fn.url, name="kittest")
    try:
        await _durable(nc)
        pull = PullStream(nc, "ORDER", DURABLE, batch=10, expires=0.5)
        await pull.open()
        waiting = asyncio.create_task(pull.next_batch())
        await asyncio.sleep(0.1)
        # The server crashes and forgets the open request: no status will ever come for it.
        assert nats_server_fn._proc is not None
        nats_server_fn._proc.kill()
        await asyncio.to_thread(nats_server_fn.restart)
        try:
            await asyncio.wait_for(waiting, 5)
        except PullLost:
            pass
        else:  # pragma: no cover
            raise AssertionError("a request lost in a restart must raise PullLost")
        for _ in range(50):
            if nc.is_connected:
                break
            await asyncio.sleep(0.1)
        await _publish(nc, pb, "after-restart")
        batch: list = []  # type: ignore[type-arg]
        for _ in range(10):
            batch = await asyncio.wait_for(pull.next_batch(), 5)
            if batch:
                break
        assert _ids(batch) == ["after-restart"]
        await pull.close()
    finally:
        await nc.close()
