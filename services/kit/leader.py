"""Who may run the outbox relay: exactly one process per service database.

- SQLite: an exclusive `flock` on `<db file>.relay.lock`. The kernel drops it when the process
  dies (even by kill -9), so a restarted process takes over at once.
- PostgreSQL: a session-level advisory lock held on a dedicated connection. If that connection
  dies the server releases the lock and another replica takes over; the old leader notices on its
  next check and stops publishing. Between those two moments both may publish the same rows, which
  JetStream dedups by Nats-Msg-Id and the consumers' inbox dedups after that.
  A leader cut off the network (or frozen) leaves its session open on the server, lock held, with
  nobody behind it: the leader pings every few seconds, so the session is told to end when idle
  longer than `ghost_timeout_seconds` (`idle_session_timeout`) and to probe a silent client
  (TCP keepalives). The lock is then free for another replica within that timeout, instead of
  when the kernel gives up on the connection (hours).
  Its calls run on a thread of their own, not asyncio's shared default executor: there, carrier
  calls (carrier-adapter's karrio connectors) queued in a burst kept a standby from trying the
  lock for 26 s after the leader died.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Protocol, TypeVar

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from services.kit.db import Database

log = logging.getLogger(__name__)

T = TypeVar("T")


class Leadership(Protocol):
    async def acquire(self) -> bool:
        """Try to become leader without waiting; True when this process holds leadership."""

    async def still_leader(self) -> bool:
        """Re-check a held leadership (cheap; called every few seconds)."""

    async def release(self) -> None: ...


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for a name."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class FileLockLeadership:
    """flock-based leadership for SQLite; a memory database is always its own leader."""

    def __init__(self, db: Database) -> None:
        database = make_url(db.url).database or ""
        self._path = None if database in ("", ":memory:") else f"{database}.relay.lock"
        self._file: IO[bytes] | None = None

    async def acquire(self) -> bool:
        if self._path is None or self._file is not None:
            return True
        handle = open(self._path, "ab")  # noqa: SIM115 - held open while leader
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        self._file = handle
        return True

    async def still_leader(self) -> bool:
        return self._path is None or self._file is not None

    async def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class AdvisoryLockLeadership:
    """pg_try_advisory_lock on a dedicated autocommit connection."""

    def __init__(self, db: Database, name: str, *, ghost_timeout_seconds: float = 15.0) -> None:
        self._db = db
        self._key = lock_key(name)
        self._conn: Connection | None = None
        # Over the relay's leader check interval (5 s): a live leader is never idle that long.
        self._ghost_timeout_ms = int(ghost_timeout_seconds * 1000)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-leader")

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    async def acquire(self) -> bool:
        if self._conn is not None:
            return True
        return await self._run(self._acquire_sync)

    def _acquire_sync(self) -> bool:
        conn = self._db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = bool(
                conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}).scalar()
            )
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        try:
            # Session settings of this connection only; it never goes back to the pool.
            conn.execute(text(f"SET idle_session_timeout = {self._ghost_timeout_ms}"))
            conn.execute(text("SET tcp_keepalives_idle = 5"))
            conn.execute(text("SET tcp_keepalives_interval = 2"))
            conn.execute(text("SET tcp_keepalives_count = 3"))
        except Exception:
            conn.invalidate()
            raise
        self._conn = conn
        return True

    async def still_leader(self) -> bool:
        if self._conn is None:
            return False
        try:
            await self._run(self._ping)
            return True
        except Exception:
            log.warning("relay lost its leader-lock connection; stepping down")
            await self.release()
            return False

    def _ping(self) -> None:
        assert self._conn is not None
        self._conn.execute(text("SELECT 1"))

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return

        def _close() -> None:
            with contextlib.suppress(Exception):
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            with contextlib.suppress(Exception):
                # Dropped, not pooled: its idle_session_timeout would end a pooled session.
                conn.invalidate()
                conn.close()

        await self._run(_close)


def leadership_for(db: Database) -> Leadership:
    if db.is_sqlite:
        return FileLockLeadership(db)
    return AdvisoryLockLeadership(db, f"crossdock-relay:{db.service}")
