"""The transactional outbox: events are rows written in the same transaction as the state change.

`append()` runs inside a unit of work (`Database.run`) and never touches NATS. The relay
(`services.kit.relay`) publishes pending rows and marks them sent. Per-event statements go through
the raw DBAPI cursor (see `db.dbapi_cursor`) because they sit on every hot path.

Handoff (SQLite): a running relay also receives, in memory, the rows each unit of work of this
process committed (`hand_off_commits`), so that a relay woken by a commit can publish them without
first reading them back in a transaction of its own. The rows are read back inside the committing
transaction, just before COMMIT, because a savepoint rolled back after `append` removes its row
(and SQLite then gives the next row the same seq): only rows that really commit are handed off.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from google.protobuf.message import Message
from sqlalchemy import Connection, Engine, event

from services.kit import events as ev
from services.kit.db import (
    AFTER_COMMIT_KEY,
    OUTBOX_APPENDED_KEY,
    SERVICE_KEY,
    dbapi_cursor,
    dialect_sql,
)
from services.kit.ids import new_event_id

log = logging.getLogger(__name__)

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
class PendingRows:
    """What one read of the outbox found."""

    # The oldest pending rows, in seq order (at most the read's limit).
    rows: list[OutboxRow]
    # Every row with a seq up to this one was sent or is in `rows`, and every row committed later
    # gets a higher seq. None when that is not known: the read hit its limit, or PostgreSQL,
    # where a seq is drawn at INSERT and a lower one can still commit after the read.
    complete_through: int | None


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
    replaces it, so the stored headers stay the event's own. Only `reemit` stores one.
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
    # orjson: the same compact JSON as json.dumps (non-ASCII as UTF-8 rather than \u escapes,
    # which every JSON reader takes the same), at a tenth of the CPU on every appended event.
    stored_headers = orjson.dumps(headers).decode()
    cursor.execute(
        dialect_sql(conn, _INSERT),
        (event_id, subject, aggregate_id, stored_headers, payload, now),
    )
    # Tell Database.run to wake the relay once this transaction commits.
    conn.info[OUTBOX_APPENDED_KEY] = True
    sinks = _handoff_sinks.get(conn.engine)
    if sinks:
        row = OutboxRow(
            cursor.lastrowid, event_id, subject, aggregate_id, headers, bytes(payload), now
        )
        _stage(conn, sinks, row)
    return event_id


# --- handoff: committed rows to this process's relay, in memory (see the module docstring) ----

HandoffSink = Callable[[OutboxRow], None]
# The running relays of each SQLite engine in this process (one, outside tests).
_handoff_sinks: dict[Engine, list[HandoffSink]] = {}
# Connection.info key: the rows the current transaction appended (a _StagedRows).
_STAGED_KEY = "crossdock.outbox_staged"


class _StagedRows:
    """The rows one transaction appended; at its COMMIT, the (seq, event id) of those that are
    really in the table."""

    __slots__ = ("after_commit", "committed", "rows")

    def __init__(self, after_commit: list[Callable[[], None]]) -> None:
        # The transaction's after-commit list (Database.run makes a new one per transaction):
        # tells a stale _StagedRows of an earlier, rolled-back transaction from the current one.
        self.after_commit = after_commit
        self.rows: list[OutboxRow] = []
        self.committed: dict[int, str] = {}


def hand_off_commits(engine: Engine, sink: HandoffSink) -> Callable[[], None]:
    """Call `sink(row)` for every outbox row that a unit of work (`Database.run`) on `engine`
    commits from now on, right after its commit (on the event loop; in the caller's thread for
    `run_sync`); returns the remover.

    SQLite only: there one writer at a time draws seqs, so rows commit in seq order and a gap in
    the seqs handed off means a row committed elsewhere (another process), which the relay must
    then read. `sink` must be cheap and may not block.
    """
    if engine.dialect.name != "sqlite":
        raise ValueError("outbox handoff needs SQLite (see PendingRows.complete_through)")
    sinks = _handoff_sinks.setdefault(engine, [])
    if not sinks:
        event.listen(engine, "commit", _confirm_staged)
    sinks.append(sink)

    def remove() -> None:
        if sink in sinks:
            sinks.remove(sink)
        if not sinks and _handoff_sinks.get(engine) is sinks:
            del _handoff_sinks[engine]
            event.remove(engine, "commit", _confirm_staged)

    return remove


def _stage(conn: Connection, sinks: list[HandoffSink], row: OutboxRow) -> None:
    after_commit = conn.info.get(AFTER_COMMIT_KEY)
    if after_commit is None:
        return  # not inside Database.run: nothing runs after the commit; the relay reads it
    staged = conn.info.get(_STAGED_KEY)
    if staged is None or staged.after_commit is not after_commit:
        staged = _StagedRows(after_commit)
        conn.info[_STAGED_KEY] = staged
    staged.rows.append(row)
    # One callback per row: a unit of work's batch that rolls an item back drops that item's
    # after-commit callbacks (uow._batch), and this row's delivery with them.
    after_commit.append(functools.partial(_deliver, tuple(sinks), staged, row))


def _confirm_staged(conn: Connection) -> None:
    """At COMMIT (SQLAlchemy's commit event, inside the transaction): which staged rows are
    really committing. A savepoint rolled back after an append removed that row."""
    staged = conn.info.pop(_STAGED_KEY, None)
    if staged is None or staged.after_commit is not conn.info.get(AFTER_COMMIT_KEY):
        return
    try:
        cursor = dbapi_cursor(conn)
        cursor.execute(
            "SELECT seq, event_id FROM outbox WHERE seq >= ?", (min(r.seq for r in staged.rows),)
        )
        staged.committed = dict(cursor.fetchall())
    except Exception:
        # Never fail a commit over an optimization: nothing is handed off, the relay reads.
        log.exception("outbox handoff: could not read back the committing rows")


def _deliver(sinks: tuple[HandoffSink, ...], staged: _StagedRows, row: OutboxRow) -> None:
    if staged.committed.get(row.seq) == row.event_id:
        for sink in sinks:
            sink(row)


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
    loads = orjson.loads
    return [
        OutboxRow(seq, event_id, subject, aggregate_id, loads(headers), bytes(payload), created)
        for seq, event_id, subject, aggregate_id, headers, payload, created in cursor.fetchall()
    ]


def read_pending(conn: Connection, limit: int) -> PendingRows:
    """The oldest `limit` unsent rows, and how far they are known to be complete."""
    rows = fetch_pending(conn, limit)
    if len(rows) >= limit or conn.dialect.name != "sqlite":
        return PendingRows(rows, None)
    # SQLite has one writer at a time, and a writer draws seqs above every committed row: so
    # every row up to the highest seq is committed (sent, or among `rows`), and any row that
    # commits after this read gets a higher seq.
    cursor = dbapi_cursor(conn)
    cursor.execute("SELECT MAX(seq) FROM outbox")
    (highest,) = cursor.fetchone()
    return PendingRows(rows, int(highest or 0))


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


def mark_sent_and_read(conn: Connection, seqs: Sequence[int], limit: int) -> PendingRows:
    """Mark `seqs` sent and read the next pending rows, in one unit of work (the relay's loop:
    one transaction per batch instead of two)."""
    mark_sent(conn, seqs)
    return read_pending(conn, limit)


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


def event_ids_of(conn: Connection, aggregate_id: str, subject: str) -> list[str]:
    """The ids of the retained rows (pending or sent, not yet purged) of one aggregate and subject,
    oldest first. Scans the outbox unless the service indexes aggregate_id: for rare lookups."""
    cursor = dbapi_cursor(conn)
    cursor.execute(
        dialect_sql(
            conn,
            "SELECT event_id FROM outbox WHERE aggregate_id = ? AND subject = ? ORDER BY seq",
        ),
        (aggregate_id, subject),
    )
    return [event_id for (event_id,) in cursor.fetchall()]


def reemit(conn: Connection, event_id: str) -> bool:
    """Make a sent row pending again, so the relay publishes the event once more under its own
    event id (ce-id): every consumer's inbox still keeps it exactly once. Returns False when the
    row is still pending (nothing to do); raises LookupError when it is not in the outbox (never
    appended here, or purged by the retention: `purge_sent`).

    JetStream drops a message whose Nats-Msg-Id it saw within the stream's duplicate window, even
    if that message was deleted since; so the row gets a transport id of its own,
    `<event id>:reemit:<n>`, stored in its headers, which `headers_for_publish` keeps. Must run
    inside `Database.run` (it wakes the relay at commit).
    """
    cursor = dbapi_cursor(conn)
    cursor.execute(
        dialect_sql(conn, "SELECT seq, headers, sent_at FROM outbox WHERE event_id = ?"),
        (event_id,),
    )
    found = cursor.fetchone()
    if found is None:
        raise LookupError(f"event {event_id} is not in the outbox")
    seq, stored, sent_at = found
    if sent_at is None:
        return False
    headers = orjson.loads(stored)
    headers[ev.NATS_MSG_ID] = f"{event_id}:reemit:{_reemit_count(headers, event_id) + 1}"
    cursor.execute(
        dialect_sql(
            conn, "UPDATE outbox SET sent_at = NULL, headers = ? WHERE seq = ? AND sent_at = ?"
        ),
        (orjson.dumps(headers).decode(), seq, sent_at),
    )
    if cursor.rowcount != 1:
        return False  # a concurrent reemit made it pending first
    # The row keeps its (old) seq: the relay's next read finds it, as fetch_pending orders by seq.
    conn.info[OUTBOX_APPENDED_KEY] = True
    return True


def _reemit_count(headers: Mapping[str, str], event_id: str) -> int:
    """How many times the row was re-emitted already (from its stored transport id)."""
    prefix = f"{event_id}:reemit:"
    stored = headers.get(ev.NATS_MSG_ID, "")
    if stored.startswith(prefix) and stored[len(prefix) :].isdigit():
        return int(stored[len(prefix) :])
    return 0


def headers_for_publish(row: OutboxRow) -> dict[str, str]:
    """The NATS headers for a row: its stored headers plus Nats-Msg-Id, the JetStream dedup key:
    the event id, unless the row stores its own (a re-emitted row, see `reemit`)."""
    headers = dict(row.headers)
    headers.setdefault(ev.NATS_MSG_ID, row.event_id)
    return headers


def publish_rounds(rows: Iterable[OutboxRow]) -> list[list[OutboxRow]]:
    """Split pending rows (in seq order) into the relay's publish rounds: round k holds the k-th
    pending row of every aggregate that has one, in seq order. The relay publishes a round only
    after the acks of the one before (see the relay's ordering note)."""
    depth: dict[str, int] = {}
    rounds: list[list[OutboxRow]] = []
    for row in rows:
        k = depth.get(row.aggregate_id, 0)
        depth[row.aggregate_id] = k + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(row)
    return rounds


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


# --- the event ledger's reads (services.kit.ledger_service) ------------------------------------


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One outbox row as the event ledger reports it (no headers or payload)."""

    event_id: str
    subject: str
    aggregate_id: str
    created_at: float
    sent_at: float | None


def published_page(
    conn: Connection,
    subject: str,
    since: float,
    until: float,
    after: tuple[float, str] | None,
    limit: int,
) -> tuple[list[LedgerRow], float | None]:
    """Up to `limit` rows of `subject` sent in [since, until), in (sent_at, event_id) order past
    the key `after`, and the oldest retained sent_at (None when nothing sent is retained).

    One statement: the page is left-joined to the oldest sent_at, so both come from one
    snapshot and an empty page still reports it. Reads through the partial sent_at index.
    """
    past = "" if after is None else " AND (sent_at > ? OR (sent_at = ? AND event_id > ?))"
    params: tuple[object, ...] = (subject, since, until)
    if after is not None:
        params += (after[0], after[0], after[1])
    sql = (
        "SELECT oldest.sent_at, page.event_id, page.subject, page.aggregate_id, "
        "page.created_at, page.sent_at "
        "FROM (SELECT MIN(sent_at) AS sent_at FROM outbox WHERE sent_at IS NOT NULL) AS oldest "
        "LEFT JOIN (SELECT event_id, subject, aggregate_id, created_at, sent_at FROM outbox "
        f"WHERE subject = ? AND sent_at >= ? AND sent_at < ?{past} "
        "ORDER BY sent_at, event_id LIMIT ?) AS page ON 1 = 1 "
        "ORDER BY page.sent_at, page.event_id"
    )
    cursor = dbapi_cursor(conn)
    cursor.execute(dialect_sql(conn, sql), (*params, limit))
    found = cursor.fetchall()
    oldest = found[0][0] if found else None
    rows = [
        LedgerRow(event_id, row_subject, aggregate_id, created_at, sent_at)
        for _, event_id, row_subject, aggregate_id, created_at, sent_at in found
        if event_id is not None
    ]
    return rows, oldest


def unsent_before(conn: Connection, before: float, limit: int) -> tuple[list[LedgerRow], int]:
    """The oldest `limit` unsent rows written before `before` (oldest first), and how many
    unsent rows were written before it in all. Reads through the partial pending index."""
    cursor = dbapi_cursor(conn)
    cursor.execute(
        dialect_sql(
            conn,
            "SELECT event_id, subject, aggregate_id, created_at FROM outbox "
            "WHERE sent_at IS NULL AND created_at < ? ORDER BY created_at, seq LIMIT ?",
        ),
        (before, limit),
    )
    rows = [
        LedgerRow(event_id, subject, aggregate_id, created_at, None)
        for event_id, subject, aggregate_id, created_at in cursor.fetchall()
    ]
    if len(rows) < limit:
        return rows, len(rows)
    cursor.execute(
        dialect_sql(conn, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND created_at < ?"),
        (before,),
    )
    (total,) = cursor.fetchone()
    return rows, int(total)


def requeued_rows(conn: Connection, subject: str, limit: int) -> list[LedgerRow]:
    """Up to `limit` rows of `subject` that `reemit` made pending again and the relay has not
    re-sent yet (oldest first). They were published once; until they go out again they are in
    no send-time window. Reads through the partial pending index (pending rows are few)."""
    cursor = dbapi_cursor(conn)
    cursor.execute(
        dialect_sql(
            conn,
            "SELECT event_id, subject, aggregate_id, created_at FROM outbox "
            "WHERE sent_at IS NULL AND subject = ? AND headers LIKE ? ORDER BY seq LIMIT ?",
        ),
        (subject, f'%"{ev.NATS_MSG_ID}":"%:reemit:%', limit),
    )
    return [
        LedgerRow(event_id, row_subject, aggregate_id, created_at, None)
        for event_id, row_subject, aggregate_id, created_at in cursor.fetchall()
    ]
