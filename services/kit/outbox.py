"""The transactional outbox: events are rows written in the same transaction as the state change.

`append()` runs inside a unit of work (`Database.run`) and never touches NATS. The relay
(`services.kit.relay`) publishes pending rows and marks them sent. Per-event statements go through
the raw DBAPI cursor (see `db.dbapi_cursor`) because they sit on every hot path.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.message import Message
from sqlalchemy import Connection

from services.kit import events as ev
from services.kit.db import OUTBOX_APPENDED_KEY, SERVICE_KEY, dbapi_cursor, dialect_sql
from services.kit.ids import new_event_id

_INSERT = (
    "INSERT INTO outbox (event_id, subject, aggregate_id, headers, payload, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


TraceHeadersProvider = Callable[[], Mapping[str, str]]
_trace_headers_provider: TraceHeadersProvider | None = None


def set_trace_headers_provider(provider: TraceHeadersProvider | None) -> None:
    """Install the one function that supplies `traceparent`/`tracestate` for new events.

    Telemetry installs it once at startup (it injects the current span's context); `append`
    then stores the trace of the request that caused every event without callers passing it.
    """
    global _trace_headers_provider
    _trace_headers_provider = provider


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One pending event as the relay sees it."""

    seq: int
    event_id: str
    subject: str
    aggregate_id: str
    headers: dict[str, str]
    payload: bytes
    created_at: float


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """What `crossdock outbox status` and the backlog metrics report."""

    pending: int
    oldest_pending_created_at: float | None
    sent: int
    last_sent_at: float | None

    def oldest_pending_age(self, now: float | None = None) -> float:
        if self.oldest_pending_created_at is None:
            return 0.0
        return max(0.0, (now or time.time()) - self.oldest_pending_created_at)


def rfc3339(epoch_seconds: float) -> str:
    """UTC RFC 3339 with microseconds and a `Z`, as CloudEvents `time` wants."""
    stamp = datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="microseconds")
    return stamp.replace("+00:00", "Z")


def build_headers(
    *,
    event_id: str,
    subject: str,
    source: str,
    aggregate_id: str,
    dataschema: str,
    correlation_id: str,
    created_at: float,
    traceparent: str | None = None,
    tracestate: str | None = None,
) -> dict[str, str]:
    """CloudEvents 1.0 binary-mode attributes plus trace and correlation context.

    `Nats-Msg-Id` is not stored: the relay adds it (= event id) at publish time, and a redrive
    replaces it, so the stored headers stay the event's own.
    """
    headers = {
        ev.CE_SPECVERSION: "1.0",
        ev.CE_ID: event_id,
        ev.CE_TYPE: subject,
        ev.CE_SOURCE: source,
        ev.CE_TIME: rfc3339(created_at),
        ev.CE_SUBJECT: aggregate_id,
        ev.CE_DATASCHEMA: dataschema,
        ev.CONTENT_TYPE: ev.PROTOBUF_CONTENT_TYPE,
        ev.CORRELATION_ID: correlation_id,
    }
    # The relay publishes these stored values verbatim, which is how the W3C trace context of the
    # request that caused the event reaches the consumer. Telemetry fills them at the call site.
    if traceparent:
        headers[ev.TRACEPARENT] = traceparent
    if tracestate:
        headers[ev.TRACESTATE] = tracestate
    return headers


def append(
    conn: Connection,
    event: Message,
    aggregate_id: str,
    *,
    correlation_id: str,
    traceparent: str | None = None,
    tracestate: str | None = None,
) -> str:
    """Append a business event (a generated message with the `event` option); returns its id.

    Must run inside `Database.run`: the row commits or rolls back with the caller's state change.
    Only the event's declared producer may append it.
    """
    spec = ev.event_spec(type(event))
    service = conn.info.get(SERVICE_KEY)
    if service is not None and service != spec.producer:
        raise ValueError(
            f"{service!r} may not publish {spec.subject}: its producer is {spec.producer!r}"
        )
    return append_raw(
        conn,
        subject=spec.subject,
        payload=event.SerializeToString(),
        aggregate_id=aggregate_id,
        correlation_id=correlation_id,
        dataschema=ev.dataschema_for(event.DESCRIPTOR.full_name),
        traceparent=traceparent,
        tracestate=tracestate,
    )


def append_raw(
    conn: Connection,
    *,
    subject: str,
    payload: bytes,
    aggregate_id: str,
    correlation_id: str,
    dataschema: str,
    traceparent: str | None = None,
    tracestate: str | None = None,
) -> str:
    """Low-level append for callers that already hold the subject and encoded bytes."""
    if not aggregate_id:
        raise ValueError("an event needs an aggregate id: it keys ordering and ce-subject")
    if traceparent is None and _trace_headers_provider is not None:
        context = _trace_headers_provider()
        traceparent, tracestate = context.get(ev.TRACEPARENT), context.get(ev.TRACESTATE)
    ev.domain_of(subject)  # validates the subject shape before it can block the relay
    event_id = new_event_id()
    now = time.time()
    service = conn.info.get(SERVICE_KEY) or "unknown"
    headers = build_headers(
        event_id=event_id,
        subject=subject,
        source=f"crossdock/{service}",
        aggregate_id=aggregate_id,
        dataschema=dataschema,
        correlation_id=correlation_id,
        created_at=now,
        traceparent=traceparent,
        tracestate=tracestate,
    )
    cursor = dbapi_cursor(conn)
    cursor.execute(
        dialect_sql(conn, _INSERT),
        (event_id, subject, aggregate_id, json.dumps(headers, separators=(",", ":")), payload, now),
    )
    # Tell Database.run to wake the relay once this transaction commits.
    conn.info[OUTBOX_APPENDED_KEY] = True
    return event_id


def fetch_pending(conn: Connection, limit: int) -> list[OutboxRow]:
    """The oldest `limit` unsent rows in seq order."""
    cursor = dbapi_cursor(conn)
    cursor.execute(
        dialect_sql(
            conn,
            "SELECT seq, event_id, subject, aggregate_id, headers, payload, created_at "
            "FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT ?",
        ),
        (limit,),
    )
    loads = json.loads
    return [
        OutboxRow(seq, event_id, subject, aggregate_id, loads(headers), bytes(payload), created)
        for seq, event_id, subject, aggregate_id, headers, payload, created in cursor.fetchall()
    ]


def mark_sent(conn: Connection, seqs: Sequence[int], sent_at: float | None = None) -> int:
    """Mark rows sent in ONE statement; returns how many rows changed."""
    if not seqs:
        return 0
    stamp = sent_at if sent_at is not None else time.time()
    cursor = dbapi_cursor(conn)
    if conn.dialect.name == "sqlite":
        marks = ",".join("?" * len(seqs))
        cursor.execute(
            f"UPDATE outbox SET sent_at = ? WHERE sent_at IS NULL AND seq IN ({marks})",
            (stamp, *seqs),
        )
    else:
        cursor.execute(
            "UPDATE outbox SET sent_at = %s WHERE sent_at IS NULL AND seq = ANY(%s)",
            (stamp, list(seqs)),
        )
    return int(cursor.rowcount)


def mark_sent_and_fetch(conn: Connection, seqs: Sequence[int], limit: int) -> list[OutboxRow]:
    """Mark `seqs` sent and read the next pending rows, in one unit of work (the relay's loop:
    one transaction per batch instead of two)."""
    mark_sent(conn, seqs)
    return fetch_pending(conn, limit)


def backlog(conn: Connection) -> tuple[int, float | None]:
    """(pending rows, created_at of the oldest pending row): cheap, via the partial index."""
    cursor = dbapi_cursor(conn)
    cursor.execute("SELECT COUNT(*), MIN(created_at) FROM outbox WHERE sent_at IS NULL")
    pending, oldest = cursor.fetchone()
    return int(pending), oldest


def stats(conn: Connection) -> OutboxStats:
    """Full status for operators (counts every retained sent row: not for hot paths)."""
    cursor = dbapi_cursor(conn)
    cursor.execute("SELECT COUNT(*), MIN(created_at) FROM outbox WHERE sent_at IS NULL")
    pending, oldest = cursor.fetchone()
    cursor.execute("SELECT COUNT(*), MAX(sent_at) FROM outbox WHERE sent_at IS NOT NULL")
    sent, last_sent = cursor.fetchone()
    return OutboxStats(int(pending), oldest, int(sent), last_sent)


def purge_sent(conn: Connection, older_than_seconds: float, limit: int = 5000) -> int:
    """Delete up to `limit` rows sent more than `older_than_seconds` ago; returns the count.

    Bounded so a retention pass never holds the (single) SQLite writer lock for long.
    """
    cutoff = time.time() - older_than_seconds
    cursor = dbapi_cursor(conn)
    cursor.execute(
        dialect_sql(
            conn,
            "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox "
            "WHERE sent_at IS NOT NULL AND sent_at < ? ORDER BY sent_at LIMIT ?)",
        ),
        (cutoff, limit),
    )
    return int(cursor.rowcount)


def headers_for_publish(row: OutboxRow) -> dict[str, str]:
    """The NATS headers for a row: its stored headers plus Nats-Msg-Id = event id (dedup key)."""
    headers = dict(row.headers)
    headers[ev.NATS_MSG_ID] = row.event_id
    return headers


def first_per_aggregate(rows: Iterable[OutboxRow]) -> list[OutboxRow]:
    """Keep only the oldest pending row of each aggregate (see the relay's ordering note)."""
    seen: set[str] = set()
    heads: list[OutboxRow] = []
    for row in rows:
        if row.aggregate_id not in seen:
            seen.add(row.aggregate_id)
            heads.append(row)
    return heads


def as_mapping(row: OutboxRow) -> Mapping[str, object]:
    """A JSON-friendly view of a row for the CLI."""
    return {
        "seq": row.seq,
        "event_id": row.event_id,
        "subject": row.subject,
        "aggregate_id": row.aggregate_id,
        "created_at": rfc3339(row.created_at),
        "size": len(row.payload),
    }
