"""A relay leader cut off from PostgreSQL without the server noticing (a partition, a frozen
process) must not keep the relay leadership for hours: its session ends once idle past the ghost
timeout, and another replica takes the lock. A standby's tries run on a thread of their own."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

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


async def test_a_standby_takes_the_lock_while_the_default_executor_is_busy(
    postgres_url: str,
) -> None:
    """asyncio's default executor full of slow work (carrier-adapter's karrio calls in a burst)
    must not delay a standby's try for the lock its dead leader left."""
    leader_db, standby_db = (Database(postgres_url, service="kittest") for _ in range(2))
    leader = AdvisoryLockLeadership(leader_db, "crossdock-relay:kittest")
    standby = AdvisoryLockLeadership(standby_db, "crossdock-relay:kittest")
    assert await leader.acquire()
    assert not await standby.acquire()
    await leader.release()  # the leader is gone
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
    release = threading.Event()
    blocking = loop.run_in_executor(None, release.wait, 30)  # the only default thread, taken
    try:
        assert await asyncio.wait_for(standby.acquire(), timeout=5)
    finally:
        release.set()
        await blocking
        await standby.release()
        await asyncio.gather(leader_db.close(), standby_db.close())
