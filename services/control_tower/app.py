"""The control tower's use cases, each in the caller's unit of work.

- `record_events`: a consumer's batch of events and the links they carry, stored set-based on
  the batch transaction (with the inbox rows, so a redelivery is a no-op);
- `get_timeline`: resolve a reference to its order, then the order's events in causal order.

The tower only reads other services' events: nothing here publishes or calls an owner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from services.control_tower.adapters.store import repository as repo
from services.control_tower.adapters.store.repository import EventRow
from services.control_tower.domain import references, timeline
from services.control_tower.domain.references import Link, ReferenceKind, Resolved
from services.control_tower.domain.timeline import RecordedEvent
from services.kit.uow import UnitOfWork


@dataclass(frozen=True)
class TimelineQuery:
    """GetTimeline's question: a reference, and the partner that scopes an external order id."""

    reference: str
    partner_id: str = ""
    include_details: bool = False


@dataclass(frozen=True)
class Timeline:
    """GetTimeline's answer."""

    resolved: Resolved
    entries: tuple[RecordedEvent, ...]
    # Event id → raw body, when the query asked for details (decoded by whoever reads them).
    bodies: dict[str, bytes] = field(default_factory=dict)


def record_events(uow: UnitOfWork, rows: Sequence[EventRow], links: Sequence[Link]) -> None:
    """Store consumed events and the links they carry; both are first-writer-wins."""
    repo.add_events(uow.conn, rows)
    repo.add_links(uow.conn, links)


def _matches(uow: UnitOfWork, reference: str) -> list[Link]:
    """Every way `reference` names an order: links, order events, correlation ids."""
    found = repo.links_of(uow.conn, reference)
    subject = repo.any_subject_of(uow.conn, reference)
    if (subject is not None and references.keyed_by_order(subject)) or repo.has_links_to(
        uow.conn, reference
    ):
        # An order whose OrderPlaced has not arrived yet is still known by its other events.
        found.append(Link(ReferenceKind.ORDER_ID, reference, reference))
    for aggregate_id, event_subject in repo.aggregates_of_correlation(uow.conn, reference):
        if references.keyed_by_order(event_subject):
            found.append(Link(ReferenceKind.CORRELATION_ID, reference, aggregate_id))
            continue
        for link in repo.links_of(uow.conn, aggregate_id):
            if link.kind in references.JOINING_KINDS:
                found.append(Link(ReferenceKind.CORRELATION_ID, reference, link.order_id))
    return found


def get_timeline(uow: UnitOfWork, query: TimelineQuery) -> Timeline:
    """The order `query.reference` names, and its events from every service in causal order."""
    resolved = references.resolve(query.reference, _matches(uow, query.reference), query.partner_id)
    rows = repo.events_of_order(uow.conn, resolved.order_id, with_bodies=query.include_details)
    entries = tuple(timeline.causal_order(row.event for row in rows))
    bodies = {row.event.event_id: row.body for row in rows} if query.include_details else {}
    return Timeline(resolved, entries, bodies)
