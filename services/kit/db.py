"""One database per service: engine setup and the unit of work.

`Database.run(fn, *args)` runs `fn(conn, *args)` inside ONE transaction on a dedicated DB worker
thread and returns its result: state changes, outbox rows and inbox rows commit or roll back
together. Why threads and not an async driver: async ORM on aiosqlite measured ~0.3k tx/s here,
while the plain driver in one worker thread does ~8k; one thread hop per unit of work (not per
statement) keeps the event loop free and the cost low.

- SQLite (embedded default): WAL, synchronous=FULL, busy_timeout, `BEGIN IMMEDIATE`, and exactly
  one worker thread, so this process is a single writer and never deadlocks on lock upgrades.
- PostgreSQL (psycopg 3): a few worker threads, each with its own connection.

The workers are plain threads fed by a queue (`_Workers`), not a ThreadPoolExecutor: a unit of
work then costs one asyncio future and one `call_soon_threadsafe` to come back to the loop, instead
of a concurrent future, its lock and callbacks, and the chaining of the two (~42 -> ~27 µs a hop).

Each worker thread keeps one SQLAlchemy Connection open across units of work and only begins and
commits on it: checking a connection out of the pool and back in (reset-on-return ROLLBACK,
pool events) cost ~100 µs per unit of work, about as much as the commit itself. A connection
the driver reports dead is invalidated by SQLAlchemy, and its next `begin()` reconnects; one
that died under a raw cursor (which SQLAlchemy does not see) is invalidated by `_run_tx`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import queue
import sqlite3
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

T = TypeVar("T")
P = ParamSpec("P")

# Keys in Connection.info. The info dict lives with the DBAPI connection across checkouts, so the
# per-transaction flag is reset at the start of every unit of work.
SERVICE_KEY = "crossdock.service"
OUTBOX_APPENDED_KEY = "crossdock.outbox_appended"
AFTER_COMMIT_KEY = "crossdock.after_commit"
# The service's EventMapper (services.kit.uow), for `UnitOfWork.of(conn)`; typed loosely here
# because uow imports this module.
EVENT_MAPPER_KEY = "crossdock.event_mapper"
UNIT_OF_WORK_KEY = "crossdock.unit_of_work"


def make_engine(url: str, *, pool_size: int = 4, busy_timeout_ms: int = 5000) -> Engine:
    """A SQLAlchemy engine configured the crossdock way for SQLite or PostgreSQL (psycopg)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        memory = database in ("", ":memory:")
        engine = create_engine(
            parsed,
            # The worker thread owns the writer connection; a couple of extras serve CLI reads.
            poolclass=StaticPool if memory else None,
            **({} if memory else {"pool_size": 1, "max_overflow": 4}),
            connect_args={"check_same_thread": False},
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transaction control away from the sqlite3 module (its legacy mode skips BEGIN
            # for SAVEPOINT and DDL); we emit BEGIN IMMEDIATE ourselves in "begin" below.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # IMMEDIATE takes the write lock up front: a reader-turned-writer can otherwise fail
            # with SQLITE_BUSY mid-transaction when another process writes.
            # On the driver's connection: SQLAlchemy's execution path costs more than the BEGIN.
            conn.connection.driver_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]

        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            parsed = parsed.set(drivername="postgresql+psycopg")
        # pool_size workers plus headroom for the relay's leader lock and short CLI reads.
        # No pre-ping: it costs a round trip per checkout; a dead connection fails the unit of
        # work, SQLAlchemy invalidates it, and callers retry.
        return create_engine(parsed, pool_size=pool_size + 2, max_overflow=4, pool_recycle=1800)
    raise ValueError(f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}")


class Database:
    """A service's database: its engine, its DB worker thread(s), and the unit of work."""

    def __init__(
        self,
        url: str,
        *,
        service: str,
        pool_size: int = 4,
        busy_timeout_ms: int = 5000,
        event_mapper: object | None = None,
    ) -> None:
        self.url = url
        self.service = service
        # The service's one EventMapper: `uow.publish(domain_event)` maps through it.
        self.event_mapper = event_mapper
        self.engine = make_engine(url, pool_size=pool_size, busy_timeout_ms=busy_timeout_ms)
        self.dialect = self.engine.dialect.name
        workers = 1 if self.is_sqlite else pool_size
        self._workers = _Workers(workers, name=f"db-{service}")
        self._commit_listeners: list[Callable[[], None]] = []
        self._local = threading.local()  # the calling thread's long-lived Connection
        # Bumped when a unit of work finds the database gone (a restart, a cut): every thread's
        # connection is then as dead as the one that failed, so each reconnects before its next
        # unit of work instead of failing it first.
        self._outages = 0
        self._connections: list[Connection] = []
        self._connections_lock = threading.Lock()

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def add_outbox_listener(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` on the event loop after each commit that appended outbox rows.

        The relay uses it to wake at once instead of waiting for its next poll. Returns a function
        that removes the listener.
        """
        self._commit_listeners.append(callback)
        return lambda: self._commit_listeners.remove(callback)

    async def run(self, fn: Callable[Concatenate[Connection, P], T], *args: Any) -> T:
        """Run `fn(conn, *args)` in one transaction on the DB worker; commit, return its result.

        Any exception rolls the whole transaction back and propagates. If the awaiting task is
        cancelled, a transaction already running still completes in the worker (a thread cannot be
        interrupted; the relay's polling then picks up any rows it appended), and one still queued
        is skipped.
        """
        done: tuple[T, bool, list[Callable[[], None]]]
        done = await self._workers.submit(self._run_tx, fn, *args)
        result, appended, after_commit = done
        if appended:
            for callback in tuple(self._commit_listeners):
                callback()
        for callback in after_commit:
            callback()
        return result

    def run_sync(self, fn: Callable[Concatenate[Connection, P], T], *args: Any) -> T:
        """The same unit of work in the caller's thread (CLI, scripts). Not for the event loop."""
        result, _, after_commit = self._run_tx(fn, *args)
        for callback in after_commit:
            callback()
        return result

    def _connection(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.outages != self._outages:
            conn.invalidate()  # reconnects on its next use
            self._local.outages = self._outages
        if conn is None or conn.closed:
            conn = self.engine.connect()
            self._local.conn = conn
            self._local.outages = self._outages
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    def _run_tx(self, fn: Callable[..., T], *args: Any) -> tuple[T, bool, list[Callable[[], None]]]:
        try:
            return self._run_tx_once(fn, *args)
        except Exception as error:
            if database_unavailable(error):
                self._outages += 1  # this thread's connection included
            raise

    def _run_tx_once(
        self, fn: Callable[..., T], *args: Any
    ) -> tuple[T, bool, list[Callable[[], None]]]:
        conn = self._connection()
        with conn.begin():
            info = conn.info  # one lookup: each `conn.info` walks Connection -> fairy -> record
            info[SERVICE_KEY] = self.service
            info[OUTBOX_APPENDED_KEY] = False
            info[AFTER_COMMIT_KEY] = []
            info[EVENT_MAPPER_KEY] = self.event_mapper
            info.pop(UNIT_OF_WORK_KEY, None)
            result = fn(conn, *args)
            appended = bool(info[OUTBOX_APPENDED_KEY])
            after_commit = list(info[AFTER_COMMIT_KEY])
        return result, appended, after_commit

    async def close(self) -> None:
        """Finish queued units of work, then release the pool."""
        await asyncio.to_thread(self._workers.shutdown)
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self.engine.dispose()


# A queued unit of work: (loop, the caller's future, the caller's context, function, arguments).
_Job = tuple[
    asyncio.AbstractEventLoop,
    "asyncio.Future[Any]",
    contextvars.Context,
    Callable[..., Any],
    tuple[Any, ...],
]


class _Workers:
    """The DB worker threads: they take units of work from one queue and hand each result back
    to the awaiting loop with one `call_soon_threadsafe`.

    Keeps ThreadPoolExecutor's guarantees that callers rely on: threads start on first use;
    `shutdown()` (and interpreter exit) runs every queued unit of work first; a unit of work
    whose caller was cancelled before it started is skipped, one already running completes.
    """

    def __init__(self, count: int, *, name: str) -> None:
        self._count = count
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        # At interpreter exit (or when the Database is dropped unclosed): finish queued work and
        # stop, as ThreadPoolExecutor's exit hook does. The threads are daemons so that an
        # unclosed Database never holds the interpreter open.
        self._finalizer = weakref.finalize(self, _stop_workers, self._jobs, self._threads)

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run `fn(*args)` on a worker under a copy of the caller's context (the worker then sees
        the current span and correlation id); the returned future holds its result."""
        if self._closed:
            raise RuntimeError("cannot run a unit of work after the database was closed")
        if len(self._threads) < self._count:
            self._start_threads()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, contextvars.copy_context(), fn, args))
        return future

    def _start_threads(self) -> None:
        with self._lock:
            while len(self._threads) < self._count:
                thread = threading.Thread(
                    target=_work,
                    args=(self._jobs,),
                    name=f"{self._name}_{len(self._threads)}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)

    def shutdown(self) -> None:
        """Run what is queued, then stop the threads and wait for them (blocks)."""
        self._closed = True
        self._finalizer()


def _stop_workers(jobs: queue.SimpleQueue[_Job | None], threads: list[threading.Thread]) -> None:
    for _ in threads:
        jobs.put(None)  # one stop mark per thread, behind every queued unit of work
    current = threading.current_thread()
    for thread in threads:
        if thread is not current:
            thread.join()


def _work(jobs: queue.SimpleQueue[_Job | None]) -> None:
    while (job := jobs.get()) is not None:
        loop, future, context, fn, args = job
        if future.cancelled():
            continue  # its caller stopped waiting before it started: skip it
        try:
            value, error = context.run(fn, *args), None
        except BaseException as exc:  # handed to the caller, as an executor does
            value, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_settle, future, value, error)
        del job, future, value, error  # drop references before blocking on the next job


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


def dbapi_cursor(conn: Connection) -> Any:
    """A raw DBAPI cursor in the unit of work's transaction, for the kit's hot-path statements.

    The kit's own per-event statements skip SQLAlchemy's statement machinery (measured 3-5x
    cheaper); handlers keep using SQLAlchemy Core on the same connection and transaction.
    """
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]


@functools.cache
def _to_format_style(sql: str) -> str:
    return sql.replace("?", "%s")


def dialect_sql(conn: Connection, sql: str) -> str:
    """Kit SQL is written with `?` placeholders (sqlite3); psycopg wants `%s`."""
    if conn.dialect.name == "sqlite":
        return sql
    return _to_format_style(sql)


# PostgreSQL refusing a connection for a reason that waiting does not fix: a wrong database
# name, role or password, or no pg_hba.conf entry for this client.
_POSTGRES_MISCONFIGURED = (
    "does not exist",
    "password authentication failed",
    "no pg_hba.conf entry",
    "authentication failed",
)

# SQLite's transient OperationalErrors; its others ("no such table") are bugs, not outages.
_SQLITE_TRANSIENT = ("database is locked", "database is busy", "disk i/o error")


def database_unavailable(error: BaseException) -> bool:
    """True when a database error means "not reachable now" rather than a bug: PostgreSQL's
    OperationalError (connection refused or lost, server starting or shutting down), a pool
    timeout, a lock SQLite gave up waiting for.

    Takes the driver's own errors too: the kit's hot-path statements run on raw DBAPI cursors
    (`dbapi_cursor`), so a connection lost under them raises psycopg's error unwrapped.
    """
    if isinstance(error, sa_exc.TimeoutError):
        return True
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        if not isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError):
            return False
        error = error.orig if error.orig is not None else error
    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        # A refused start names its cause only in the text (no SQLSTATE before the session).
        text = str(error)
        return not any(cause in text for cause in _POSTGRES_MISCONFIGURED)
    if isinstance(error, sqlite3.OperationalError):
        return any(text in str(error).lower() for text in _SQLITE_TRANSIENT)
    return False
