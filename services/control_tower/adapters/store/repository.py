"""The control tower's reads and writes, on the unit of work's connection."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from services.control_tower.adapters.store import statements as sql
from services.control_tower.domain.flows import MilestoneSeen, earliest
from services.control_tower.domain.references import Link, ReferenceKind
from services.control_tower.domain.timeline import RecordedEvent


@dataclass(frozen=True, slots=True)
class EventRow:
    """A consumed event as stored: what the timeline shows, plus its raw body."""

    event: RecordedEvent
    body: bytes


def add_events(conn: Connection, rows: Sequence[EventRow]) -> None:
    """Store events; one already stored (same event id) is left as it is."""
    now = time.time()
    sql.NEW_EVENTS.run_many(
        conn,
        (
            {
                "event_id": row.event.event_id,
                "subject": row.event.subject,
                "producer": row.event.producer,
                "aggregate_id": row.event.aggregate_id,
                "occurred_at": row.event.occurred_at,
                "trace_id": row.event.trace_id,
                "correlation_id": row.event.correlation_id,
                "stream_seq": row.event.stream_seq,
                "body": row.body,
                "recorded_at": now,
            }
            for row in rows
        ),
    )


def add_links(conn: Connection, links: Sequence[Link]) -> None:
    """Store links; a (kind, value, partner) already linked keeps its first order."""
    sql.NEW_LINKS.run_many(
        conn,
        (
            {
                "kind": link.kind.value,
                "value": link.value,
                "partner_id": link.partner_id,
                "order_id": link.order_id,
            }
            for link in links
        ),
    )


def add_milestones(conn: Connection, seen: Sequence[MilestoneSeen]) -> None:
    """Keep each (item, milestone) at the earliest time seen, in one executemany; rows go in
    key order so two transactions touching the same items lock them in the same order."""
    sql.NEW_MILESTONES.run_many(
        conn,
        (
            {"item_id": item_id, "milestone": milestone.value, "seen_at": seen_at}
            for (item_id, milestone), seen_at in sorted(earliest(seen).items())
        ),
    )


def links_of(conn: Connection, value: str) -> list[Link]:
    """Every link whose value is `value`."""
    return [
        Link(ReferenceKind(row.kind), row.value, row.order_id, row.partner_id)
        for row in sql.LINKS_BY_VALUE.run(conn, {"value": value})
    ]


def has_links_to(conn: Connection, order_id: str) -> bool:
    """True when some reference is already linked to `order_id`."""
    return sql.LINKED_TO_ORDER.run(conn, {"order_id": order_id}).first() is not None


def any_subject_of(conn: Connection, aggregate_id: str) -> str | None:
    """The subject of one event about `aggregate_id`, or None when there is none."""
    row = sql.SUBJECTS_OF_AGGREGATE.run(conn, {"aggregate_id": aggregate_id}).first()
    return None if row is None else str(row.subject)


def aggregates_of_correlation(conn: Connection, correlation_id: str) -> list[tuple[str, str]]:
    """(aggregate id, subject) of every event that carried `correlation_id`."""
    rows = sql.AGGREGATES_OF_CORRELATION.run(conn, {"correlation_id": correlation_id})
    return [(str(row.aggregate_id), str(row.subject)) for row in rows]


def events_of_order(
    conn: Connection, order_id: str, *, with_bodies: bool = False
) -> list[EventRow]:
    """The events of the order and of every aggregate linked to it, unsorted; their bodies
    only when asked (b"" otherwise)."""
    statement = sql.TIMELINE_WITH_BODIES if with_bodies else sql.TIMELINE
    rows = statement.run(conn, {"order_id": order_id, "linked_order_id": order_id})
    return [
        EventRow(
            RecordedEvent(
                event_id=row.event_id,
                subject=row.subject,
                producer=row.producer,
                aggregate_id=row.aggregate_id,
                occurred_at=row.occurred_at,
                trace_id=row.trace_id,
                correlation_id=row.correlation_id,
                stream_seq=row.stream_seq,
            ),
            bytes(row.body) if with_bodies else b"",
        )
        for row in rows
    ]
