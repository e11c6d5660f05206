"""The control tower's SQL statements, each built once and run on the raw cursor (`prepared`).

Projection writes are set-based: one executemany per batch handler call for the events and one
for the links, both first-writer-wins (ON CONFLICT DO NOTHING), so a duplicate or a replay adds
nothing and needs no read first.
"""

from __future__ import annotations

from sqlalchemy import Insert, bindparam, literal_column, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from services.control_tower.adapters.store import tables as t
from services.control_tower.domain.references import JOINING_KINDS
from services.kit.statements import insert_new, prepared

_JOINING_KIND_VALUES = sorted(kind.value for kind in JOINING_KINDS)

NEW_EVENTS = prepared(insert_new(t.events))
NEW_LINKS = prepared(insert_new(t.links))


def _earliest_milestone(statement: sqlite.Insert | postgresql.Insert) -> Insert:
    """Insert the (item, milestone) row, or move its time earlier: the earliest sighting wins,
    so the same events in any order, late or twice, leave the same row."""
    return statement.on_conflict_do_update(
        index_elements=["item_id", "milestone"],
        set_={"seen_at": statement.excluded.seen_at},
        where=statement.excluded.seen_at < t.flow_milestones.c.seen_at,
    ).inline()


NEW_MILESTONES = prepared(
    {
        "sqlite": _earliest_milestone(sqlite.insert(t.flow_milestones)),
        "postgresql": _earliest_milestone(postgresql.insert(t.flow_milestones)),
    }
)

# Every link whose value is the reference, whatever its kind.
LINKS_BY_VALUE = prepared(
    select(t.links.c.kind, t.links.c.value, t.links.c.partner_id, t.links.c.order_id).where(
        t.links.c.value == bindparam("value")
    )
)

# Is anything linked to this order id yet?
LINKED_TO_ORDER = prepared(
    select(t.links.c.kind).where(t.links.c.order_id == bindparam("order_id")).limit(1)
)

# The events keyed by an aggregate id (is an order id the aggregate of some order event?).
SUBJECTS_OF_AGGREGATE = prepared(
    select(t.events.c.subject).where(t.events.c.aggregate_id == bindparam("aggregate_id")).limit(1)
)

# The aggregates of the events that carried a correlation id.
AGGREGATES_OF_CORRELATION = prepared(
    select(t.events.c.aggregate_id, t.events.c.subject)
    .where(t.events.c.correlation_id == bindparam("correlation_id"))
    .distinct()
)

_TIMELINE_COLUMNS = (
    t.events.c.event_id,
    t.events.c.subject,
    t.events.c.producer,
    t.events.c.aggregate_id,
    t.events.c.occurred_at,
    t.events.c.trace_id,
    t.events.c.correlation_id,
    t.events.c.stream_seq,
)

# An order's events: its own, and those of every aggregate linked to it (shipments, tracking
# numbers, returns, reservations, invoices, credit notes). Sorted in Python (causal order).
_OF_ORDER = or_(
    t.events.c.aggregate_id == bindparam("order_id"),
    t.events.c.aggregate_id.in_(
        select(t.links.c.value).where(
            t.links.c.order_id == bindparam("linked_order_id"),
            # Literal kinds: the prepared path binds no expanding IN.
            t.links.c.kind.in_([literal_column(str(value)) for value in _JOINING_KIND_VALUES]),
        )
    ),
)
TIMELINE = prepared(select(*_TIMELINE_COLUMNS).where(_OF_ORDER))
# The same with the raw bodies, for a timeline asked with its details.
TIMELINE_WITH_BODIES = prepared(select(*_TIMELINE_COLUMNS, t.events.c.body).where(_OF_ORDER))
