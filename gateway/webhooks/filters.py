"""The `gateway-webhooks` durables take only the event types some enabled subscription wants.

Most milestone events concern no subscription; each one delivered cost the gateway a consumer
transaction share, an inbox row, a subscription probe and an ack. So each durable's filter
subjects follow the union of the event types of enabled subscriptions (over all partners), and
nats-server never delivers the rest.

The rules, and why:
- **The lock.** Every change of the durables' filters runs in a unit of work holding the filter
  lock: on PostgreSQL `pg_advisory_xact_lock(FILTER_LOCK)`, on SQLite the transaction itself
  (`BEGIN IMMEDIATE` holds the database's write lock). Reading the union from the table and
  updating the durables happen under it, so two replicas never interleave and the durables never
  filter on less than the committed table wants.
- **Widen before visible.** A change that may add types (create, an update of types or
  `enabled`, a redrive) runs inside `widening()`: under the lock, after its write and before its
  commit, the durables get what the table wanted before and after the change (a rollback then
  leaves them wider, which is harmless). If nats-server does not confirm, the change fails with
  UNAVAILABLE and rolls back. A create's effective start (`created_at`, from which intake hands
  it events) is taken only after nats-server confirmed: a filter update keeps the durable's
  position, so a message stored before the update at a sequence the durable had passed is never
  delivered; every event that occurs after `created_at` is stored after the update and matches
  (with the producers' clocks in step with the gateway's: `ce-time` is stamped by the producer,
  which intake's `created_at` check assumed already).
- **Narrow lazily.** A delete or a disable commits without touching NATS; then `sync()` (and the
  runtime's periodic reconcile, and start-up) recomputes the union under the lock and applies it
  exactly. Narrowing inside the change's own transaction could leave the filter narrower than the
  table if the commit then failed. Nothing is sent while disconnected (nats-py would buffer it
  and could send it after a newer update); an update sent but not confirmed in time may still
  land later, so a failure makes the runtime recompute within seconds (`resync_wanted`), and the
  periodic reconcile bounds what is left of that window.
- **Intake on PostgreSQL** takes the lock shared before reading subscriptions
  (`hold_shared_lock`): READ COMMITTED would otherwise let an event consumed while a subscription
  is being created read the table without it, though the event occurred after `created_at`.
- **No subscription for a stream:** its durable filters on `crossdock.<domain>.no-subscriptions`,
  a subject no event uses (event subjects have four tokens). JetStream needs a filter, and keeping
  the durable keeps its position and its inbox history; it costs one idle pull request per
  `fetch_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import TimeoutError as FutureTimeout

from nats.aio.client import Client as NATS
from sqlalchemy import Connection, select

from gateway.adapters.store.webhook_tables import webhook_subscriptions
from services.kit import events as ev
from services.kit.consumer import EventConsumer
from services.kit.db import Database, dbapi_cursor
from services.kit.errors import Unavailable
from services.kit.handlers import HandlerRegistry
from services.kit.leader import lock_key

log = logging.getLogger(__name__)

FILTER_LOCK = lock_key("gateway-webhooks.filters")
IDLE_TOKEN = "no-subscriptions"
# Marks, in Connection.info, the transaction (and savepoint) that already holds the shared lock.
_SHARED_LOCK_SCOPE = "gateway.webhooks.filter_lock_shared"

subs = webhook_subscriptions


def lock(conn: Connection) -> None:
    """Take the filter lock for the rest of this unit of work (SQLite: already held)."""
    if conn.dialect.name == "postgresql":
        dbapi_cursor(conn).execute("SELECT pg_advisory_xact_lock(%s)", (FILTER_LOCK,))
    elif conn.dialect.name != "sqlite":
        raise RuntimeError(f"no filter lock for {conn.dialect.name}")


def hold_shared_lock(conn: Connection) -> None:
    """Intake's side of the lock on PostgreSQL: wait for a subscription change in flight.

    Taken once per transaction (again in a new savepoint: rolling one back releases it).
    """
    if conn.dialect.name != "postgresql":
        return
    scope = (conn.get_transaction(), conn.get_nested_transaction())
    held = conn.info.get(_SHARED_LOCK_SCOPE)
    if held is not None and held[0] is scope[0] and held[1] is scope[1]:
        return
    dbapi_cursor(conn).execute("SELECT pg_advisory_xact_lock_shared(%s)", (FILTER_LOCK,))
    conn.info[_SHARED_LOCK_SCOPE] = scope


def wanted_event_types(conn: Connection) -> set[str]:
    """Every event type some enabled subscription wants, over all partners."""
    rows = conn.execute(select(subs.c.event_types).where(subs.c.enabled.is_(True)).distinct())
    return {event_type for (types,) in rows for event_type in types.split()}


def idle_subject(stream_subjects: Iterable[str]) -> str:
    """The filter of a durable nobody wants anything from: in its stream, matching no event."""
    domains = {ev.domain_of(subject) for subject in stream_subjects}
    if len(domains) != 1:
        raise ValueError(f"expected the subjects of one domain, got {sorted(domains)}")
    return f"{ev.SUBJECT_ROOT}.{domains.pop()}.{IDLE_TOKEN}"


def stream_filters(registry: HandlerRegistry, wanted: set[str]) -> dict[str, list[str]]:
    """Per stream, the filter subjects that take exactly the wanted handled events.

    Any version of a wanted event, as the kit's consumers filter: a version without a handler
    still arrives and is dead-lettered as unknown rather than skipped unseen.
    """
    filters: dict[str, list[str]] = {}
    for stream in sorted(registry.streams()):
        handled = registry.subjects_in(stream)
        taken = {f"{ev.event_name_of(s)}.*" for s in handled if s in wanted}
        filters[stream] = sorted(taken) or [idle_subject(handled)]
    return filters


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class SubscriptionFilters:
    """Keeps the gateway-webhooks durables' filters on what enabled subscriptions want.

    `widening()` and `apply()` run inside a unit of work, on the DB worker thread: they wait
    there (at most `timeout` seconds) for the durables' update, which runs on the event loop.
    """

    def __init__(self, db: Database, *, timeout: float = 2.0) -> None:
        self._db = db
        self._timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._nc: NATS | None = None
        self._registry: HandlerRegistry | None = None
        self._consumers: dict[str, EventConsumer] = {}
        # Set once attached: a change made while the worker is still connecting waits for it.
        self._attached = threading.Event()
        self._resync = asyncio.Event()

    def attach(
        self, nc: NATS, registry: HandlerRegistry, consumers: Sequence[EventConsumer]
    ) -> None:
        """Start managing these consumers' durables (call on the event loop)."""
        self._loop = asyncio.get_running_loop()
        self._nc = nc
        self._registry = registry
        self._consumers = {consumer.stream: consumer for consumer in consumers}
        self._resync = asyncio.Event()
        self._attached.set()

    def detach(self) -> None:
        self._attached.clear()
        self._loop, self._nc, self._registry, self._consumers = None, None, None, {}

    async def resync_wanted(self) -> None:
        """Returns once an update failed: the reconcile then runs early (cleared on return)."""
        await self._resync.wait()
        self._resync.clear()

    async def sync(self) -> None:
        """Apply exactly what the table wants, under the lock (start-up, reconcile, narrowing)."""
        await self._db.run(self._sync)

    def _sync(self, conn: Connection) -> None:
        lock(conn)
        self.apply(wanted_event_types(conn))

    @contextlib.contextmanager
    def widening(self, conn: Connection) -> Iterator[None]:
        """Around a change that may add event types, inside its unit of work.

        On a clean exit the durables take what the table wanted before and after the change;
        raises Unavailable (and so rolls the change back) when nats-server does not confirm.
        """
        lock(conn)
        before = wanted_event_types(conn)
        yield
        self.apply(before | wanted_event_types(conn))

    def apply(self, wanted: set[str]) -> None:
        """Set every durable's filter to `wanted` and wait for nats-server to confirm."""
        if _running_loop() is not None:
            raise RuntimeError("apply() blocks: call it on the DB worker, not the event loop")
        self._attached.wait(self._timeout)  # the gateway may be starting
        loop, nc, registry = self._loop, self._nc, self._registry
        if loop is None or nc is None or registry is None or not nc.is_connected:
            # Not even sent: a request buffered across a reconnect could land after a newer one.
            raise self._unavailable("the gateway is not connected to NATS")
        update = asyncio.run_coroutine_threadsafe(
            self._set_filters(stream_filters(registry, wanted)), loop
        )
        try:
            update.result(self._timeout)
        except Exception as exc:
            # An unconfirmed request may still land later, even after a newer one: recompute
            # from the table soon rather than at the next reconcile.
            loop.call_soon_threadsafe(self._resync.set)
            if isinstance(exc, FutureTimeout):
                update.cancel()
                raise self._unavailable("NATS did not confirm in time") from None
            raise self._unavailable(f"NATS refused the update: {exc}") from exc

    async def _set_filters(self, filters: dict[str, list[str]]) -> None:
        # Together: the lock (on SQLite the whole database) is held until all have answered.
        await asyncio.gather(
            *(
                consumer.set_filter_subjects(filters[stream])
                for stream, consumer in self._consumers.items()
                if stream in filters
            )
        )

    def _unavailable(self, cause: str) -> Unavailable:
        log.warning("webhook event filters not updated: %s", cause)
        return Unavailable(
            "webhook subscriptions cannot be changed right now: the event stream did not "
            "confirm the new event filter, so nothing was changed; retry later",
            reason="WEBHOOK_EVENT_FILTER_UNAVAILABLE",
            retry_after_seconds=5.0,
        )
