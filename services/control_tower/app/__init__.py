"""The control tower's use cases, each in the caller's unit of work.

- `record_events`: a consumer's batch of events and the links they carry, stored set-based on
  the batch transaction (with the inbox rows, so a redelivery is a no-op);
- `get_timeline`: resolve a reference to its order, then the order's events in causal order
  and the operators' actions on its exceptions;
- `list_flows`, `list_flow_items`: the business flows now, and one flow's items page by page.

The exceptions workbench's reads and actions are in services.control_tower.app.workbench.

The tower only reads other services' events: nothing here publishes or calls an owner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from services.control_tower.adapters.exception_contracts import CLOSERS
from services.control_tower.adapters.store import exception_store, flow_queries
from services.control_tower.adapters.store import repository as repo
from services.control_tower.adapters.store.repository import EventRow
from services.control_tower.domain import references, timeline
from services.control_tower.domain.exceptions import AuditEntry, Signal
from services.control_tower.domain.flows import (
    DEFAULT_TRANSIT_ALLOWANCE_SECONDS,
    FLOWS,
    FLOWS_BY_NAME,
    FlowItem,
    FlowSummary,
    MilestoneSeen,
    flow_named,
)
from services.control_tower.domain.references import Link, ReferenceKind, Resolved
from services.control_tower.domain.timeline import RecordedEvent
from services.kit.paging import page_size
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
    # Operators' actions on the order's exceptions (the workbench's audit rows), oldest first.
    actions: tuple[AuditEntry, ...] = ()


@dataclass(frozen=True)
class FlowSettings:
    """Each flow's SLA in seconds (by flow name; the flow's default when absent), and how long
    after pickup a shipment without a carrier promise is due."""

    slas: dict[str, float] = field(default_factory=dict)
    transit_allowance: float = DEFAULT_TRANSIT_ALLOWANCE_SECONDS

    def sla_of(self, flow_name: str) -> float:
        return self.slas.get(flow_name, FLOWS_BY_NAME[flow_name].default_sla)


@dataclass(frozen=True)
class FlowItemsQuery:
    """ListFlowItems' question: a flow's name and a page."""

    flow: str
    page_size: int = 0
    page_token: str = ""


def record_events(
    uow: UnitOfWork,
    rows: Sequence[EventRow],
    links: Sequence[Link],
    milestones: Sequence[MilestoneSeen] = (),
    signals: Sequence[Signal] = (),
) -> None:
    """Store consumed events and the links they carry (both first-writer-wins), the
    milestones they mark (earliest wins) and what they say about exceptions (after the
    events: an exception checks the fixes already stored)."""
    signals = exception_store.unseen(uow.conn, signals) if signals else []
    repo.add_events(uow.conn, rows)
    repo.add_links(uow.conn, links)
    repo.add_milestones(uow.conn, milestones)
    if signals:
        exception_store.record_signals(uow.conn, signals, CLOSERS)


def list_flows(uow: UnitOfWork, settings: FlowSettings, now: float) -> list[FlowSummary]:
    """Every flow's summary at `now`, in the flows' order along the spine."""
    return [
        flow_queries.summary(
            uow.conn, flow, settings.sla_of(flow.name), now, settings.transit_allowance
        )
        for flow in FLOWS
    ]


def list_flow_items(
    uow: UnitOfWork, settings: FlowSettings, query: FlowItemsQuery, now: float
) -> tuple[list[FlowItem], str]:
    """One page of a flow's items and the next page's token; an unknown flow is
    INVALID_ARGUMENT naming `flow`."""
    flow = flow_named(query.flow)
    return flow_queries.items_page(
        uow.conn,
        flow,
        sla_seconds=settings.sla_of(flow.name),
        now=now,
        allowance=settings.transit_allowance,
        page_token=query.page_token,
        size=page_size(query.page_size),
    )


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
    actions = tuple(exception_store.audit_of_order(uow.conn, resolved.order_id))
    return Timeline(resolved, entries, bodies, actions)
