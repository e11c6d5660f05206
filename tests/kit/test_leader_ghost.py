"""A relay leader cut off from PostgreSQL without the server noticing (a partition, a frozen
process) must not keep the relay leadership for hours: its session ends once idle past the ghost
timeout, and another replica takes the lock."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy.engine import make_url

from services.kit.db import Database
from services.kit.leader import AdvisoryLockLeadership
from tests.fixtures.tcp_relay import TcpRelay

pytestmark = pytest.mark.postgres


async def test_a_leader_cut_off_silently_loses_the_lock_to_another_replica(
    postgres_url: str,
) -> None:
    url = make_url(postgres_url)
    relay = TcpRelay(url.host or "127.0.0.1", url.port or 5432)
    relay.start()
    through_relay = Database(url.set(port=relay.port).render_as_string(False), service="kittest")
    direct = Database(postgres_url, service="kittest")
    leader = AdvisoryLockLeadership(
        through_relay, "crossdock-relay:kittest", ghost_timeout_seconds=2
    )
    other = AdvisoryLockLeadership(direct, "crossdock-relay:kittest", ghost_timeout_seconds=2)
    try:
        assert await leader.acquire()
        for _ in range(4):  # a live leader pings more often than the ghost timeout: it stays
            await asyncio.sleep(1)
            assert await leader.still_leader()
        assert not await other.acquire()

        relay.freeze()  # the leader's packets go nowhere; the server still sees a session
        started = time.monotonic()
        while not await other.acquire():
            assert time.monotonic() - started < 15, "the ghost session kept the lock"
            await asyncio.sleep(0.25)

        assert time.monotonic() - started >= 1.5  # not before the ghost timeout
    finally:
        await other.release()
        relay.cut()
        await asyncio.gather(through_relay.close(), direct.close())
