"""EventLedgerService: a service answers for its own event records, for reconciliation.

What its outbox published (ListPublished; when asked, with the re-emitted rows waiting to go
out again), what it has not published yet (ListUnsent), what each of its consumers' inboxes
applied (CheckApplied), and re-emitting one event whose consumers lost it (Reemit:
outbox.reemit, same event id, so every inbox still applies it at most once).

Reads never take the SQLite writer: they run on a connection of their own in a plain deferred
read transaction (PostgreSQL: READ ONLY, REPEATABLE READ), outside `Database.run`, whose one
worker thread holds the write lock (BEGIN IMMEDIATE) for each unit of work. Reemit writes, so it
is a unit of work.

`retained_since` of ListPublished is the earlier of the retention horizon (now - the relay's
`retention_seconds`) and just after the oldest retained sent row: the purge deletes sent rows
older than the horizon oldest first (outbox.purge_sent), so every row sent since either of the
two is still there. Just after the oldest, not at it: one batch shares its sent_at, and a bounded
purge may have removed only part of a batch. It assumes every replica of the service has the
same retention.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

from crossdock.common.v1 import event_ledger_pb2 as pb
from crossdock.common.v1 import event_ledger_pb2_grpc as pb_grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Connection

from services.kit import inbox, outbox
from services.kit.consumer import EventConsumer
from services.kit.db import Database, dbapi_cursor, dialect_sql
from services.kit.dlq_service import ServicerRegistry
from services.kit.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PreconditionViolation,
)
from services.kit.paging import decode_token, encode_token, page_size
from services.kit.relay import OutboxRelay

log = logging.getLogger(__name__)

SERVICE: ServiceDescriptor = pb.DESCRIPTOR.services_by_name["EventLedgerService"]

DEFAULT_PAGE_SIZE = 500
# One batch shares its sent_at; see the module docstring.
_AFTER_OLDEST = 1e-6

P = ParamSpec("P")
T = TypeVar("T")


def add_event_ledger_service(
    server: ServicerRegistry,
    service: str,
    db: Database,
    relay: OutboxRelay,
    consumers: Sequence[EventConsumer],
) -> EventLedgerApi:
    """Serve EventLedgerService for the service's outbox and `consumers` (the runtime's list,
    read at every call)."""
    api = EventLedgerApi(service, db, relay, consumers)
    server.add_servicer(pb_grpc.add_EventLedgerServiceServicer_to_server, api, SERVICE)
    return api


class EventLedgerApi(pb_grpc.EventLedgerServiceServicer):
    """The ledger of one service's outbox and its consumers' inboxes."""

    def __init__(
        self,
        service: str,
        db: Database,
        relay: OutboxRelay,
        consumers: Sequence[EventConsumer],
    ) -> None:
        self._service = service
        self._db = db
        self._relay = relay
        # Read at call time: a service may start consumers after start_events.
        self._consumers = consumers

    async def ListPublished(self, request: pb.ListPublishedRequest, context: Any) -> Any:
        since, until = _seconds(request.since), _seconds(request.until)
        if until <= since:
            raise InvalidArgument.for_field("until", "must be after since", "until")
        size = page_size(request.page_size, DEFAULT_PAGE_SIZE)
        after = _decode_key(request.page_token)
        now = time.time()
        requeued: list[outbox.LedgerRow] = []
        if request.include_requeued and after is None:
            # Read before the page: a row the relay re-sends in between is then in one of the
            # two (its new send time sorts it last), never in neither.
            requeued = await _read(self._db, outbox.requeued_rows, request.subject, size)
        rows, oldest = await _read(
            self._db, outbox.published_page, request.subject, since, until, after, size + 1
        )
        token = ""
        if len(rows) > size:
            rows = rows[:size]
            last = rows[-1]
            token = _encode_key(last.sent_at or 0.0, last.event_id)
        horizon = now - self._relay.settings.retention_seconds
        retained = horizon if oldest is None else min(horizon, oldest + _AFTER_OLDEST)
        return pb.ListPublishedResponse(
            events=[_event(row) for row in rows],
            next_page_token=token,
            retained_since=_timestamp(retained),
            requeued=[_event(row) for row in requeued],
        )

    async def ListUnsent(self, request: pb.ListUnsentRequest, context: Any) -> Any:
        size = page_size(request.page_size, DEFAULT_PAGE_SIZE)
        rows, total = await _read(self._db, outbox.unsent_before, _seconds(request.before), size)
        return pb.ListUnsentResponse(events=[_event(row) for row in rows], total=total)

    async def CheckApplied(self, request: pb.CheckAppliedRequest, context: Any) -> Any:
        consumer = self._own_consumer(request.consumer)
        now = time.time()
        retained_since = _timestamp(now - consumer.settings.inbox_retention_seconds)
        # One durable name per stream: any of them may be the one with the subject's handler.
        if request.subject and not any(
            c.name == consumer.name and c.handles(request.subject) for c in self._consumers
        ):
            return pb.CheckAppliedResponse(retained_since=retained_since, handles_subject=False)
        ids = list(dict.fromkeys(request.event_ids))  # the IN list without repeats
        applied = await _read(self._db, inbox.applied_among, consumer.name, ids)
        return pb.CheckAppliedResponse(
            applied_event_ids=[event_id for event_id in ids if event_id in applied],
            retained_since=retained_since,
            handles_subject=True,
        )

    async def Reemit(self, request: pb.ReemitRequest, context: Any) -> Any:
        try:
            reemitted, subject = await self._db.run(_reemit, request.event_id)
        except LookupError:
            log.warning(
                "re-emit of %s refused: not in the outbox",
                request.event_id,
                extra={"event_id": request.event_id, "operator_reason": request.reason},
            )
            raise NotFound(
                f"event {request.event_id} is no longer in the outbox of {self._service} "
                "(retention), or was never published by it",
                resource_type="event",
                resource_name=request.event_id,
            ) from None
        log.info(
            "event %s (%s) %s: %s",
            request.event_id,
            subject,
            "queued to be published again" if reemitted else "still pending, nothing to do",
            request.reason or "no reason given",
            extra={
                "event_id": request.event_id,
                "subject": subject,
                "reemitted": reemitted,
                "operator_reason": request.reason,
            },
        )
        return pb.ReemitResponse(reemitted=reemitted, subject=subject)

    def _own_consumer(self, name: str) -> EventConsumer:
        for consumer in self._consumers:
            if consumer.name == name:
                return consumer
        ours = sorted({consumer.name for consumer in self._consumers})
        message = (
            f"{name} is not a consumer of {self._service} "
            f"(its consumers: {', '.join(ours) or 'none'})"
        )
        raise FailedPrecondition(
            message,
            violations=[PreconditionViolation("LEDGER_CONSUMER", name, message)],
            reason="CONSUMER_OF_ANOTHER_SERVICE",
            metadata={"consumer": name},
        )


def _reemit(conn: Connection, event_id: str) -> tuple[bool, str]:
    reemitted = outbox.reemit(conn, event_id)
    cursor = dbapi_cursor(conn)
    cursor.execute(dialect_sql(conn, "SELECT subject FROM outbox WHERE event_id = ?"), (event_id,))
    (subject,) = cursor.fetchone()
    return reemitted, str(subject)


async def _read(
    db: Database, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """`fn(conn, ...)` in a read-only transaction on a connection of its own (see the module
    docstring), in a thread: never queued behind, nor holding, the service's writer."""

    def work() -> T:
        with db.engine.connect() as conn:
            cursor = dbapi_cursor(conn)
            if conn.dialect.name == "sqlite":
                # The driver runs in autocommit mode (db.make_engine); a deferred BEGIN gives one
                # snapshot and takes no write lock. The engine's "begin" hook never fires here:
                # SQLAlchemy's own transaction is not begun.
                cursor.execute("BEGIN")
            else:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            try:
                return fn(conn, *args, **kwargs)
            finally:
                conn.connection.driver_connection.rollback()  # type: ignore[union-attr]

    return await asyncio.to_thread(work)


def _event(row: outbox.LedgerRow) -> pb.PublishedEvent:
    event = pb.PublishedEvent(
        event_id=row.event_id,
        subject=row.subject,
        aggregate_id=row.aggregate_id,
        create_time=_timestamp(row.created_at),
    )
    if row.sent_at is not None:
        event.send_time.CopyFrom(_timestamp(row.sent_at))
    return event


def _seconds(stamp: Timestamp) -> float:
    return stamp.seconds + stamp.nanos / 1e9


def _timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(round(seconds * 1e9))
    return stamp


def _encode_key(sent_at: float, event_id: str) -> str:
    # repr round-trips a float exactly, so the next page starts right after this row.
    return encode_token(f"{sent_at!r}/{event_id}")


def _decode_key(token: str) -> tuple[float, str] | None:
    key = decode_token(token, str)
    if key is None:
        return None
    sent_at, _, event_id = key.partition("/")
    try:
        return float(sent_at), _nonempty(event_id)
    except ValueError:
        raise InvalidArgument.for_field(
            "page_token", "not a token this service issued", "page_token"
        ) from None


def _nonempty(value: str) -> str:
    if not value:
        raise ValueError("empty key part")
    return value
