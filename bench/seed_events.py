"""The seeded histories' events as the mesh leaves them (`seed_orders.py --recent`): each one in
its producer's outbox through the producer's own EventMapper, marked sent at the instant it
happened, and applied (an inbox row) by every kit service that consumes its subject, under the
durable name that service's consumer records it with. event_flow then finds each one applied.

Only for recent seeds: events older than event_flow's window are never compared, and a mesh's
outbox retention purges them anyway.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from services.billing.adapters import contracts as billing_contracts
from services.control_tower.app.reconciliation.checks.event_flow import CONSUMER_DURABLES
from services.inventory.adapters import contracts as inventory_contracts
from services.kit import inbox, outbox
from services.kit.catalog import load_catalog
from services.kit.uow import EventMapper, UnitOfWork
from services.order.adapters import contracts as order_contracts
from services.shipment.adapters import contracts as shipment_contracts

MAPPERS: Mapping[str, EventMapper] = {
    "order": order_contracts.event_mapper,
    "inventory": inventory_contracts.mapper,
    "shipment": shipment_contracts.mapper,
    "billing": billing_contracts.mapper,
}


@dataclass(frozen=True)
class Raised:
    """A domain event a seeded step raised, and when (its outbox row's send time)."""

    event: object
    at: datetime
    correlation_id: str


def _consumers() -> dict[str, tuple[str, ...]]:
    """subject → the kit services that consume it (the gateway and the tower keep no ledger
    event_flow reads)."""
    return {
        event_type.subject: tuple(c for c in event_type.consumers if c in CONSUMER_DURABLES)
        for event_type in load_catalog()
    }


def publish(conn: Connection, service: str, raised: Iterable[Raised]) -> dict[str, list[str]]:
    """Append the events to `service`'s outbox, mark each sent at its instant; returns the ids
    each consuming service must have applied."""
    uow = UnitOfWork(conn, MAPPERS[service])
    sent_at: dict[str, float] = {}
    for item in raised:
        event_id = uow.publish(item.event, correlation_id=item.correlation_id)
        sent_at[event_id] = item.at.timestamp()
    consumers = _consumers()
    applied: dict[str, list[str]] = defaultdict(list)
    # Rows a stopped mesh left unsent come first (seq order): read past them.
    for row in outbox.fetch_pending(conn, len(sent_at) + 100_000):
        if row.event_id not in sent_at:
            continue  # not ours: left for the relay
        outbox.mark_sent(conn, [row.seq], sent_at[row.event_id])
        for consumer in consumers.get(row.subject, ()):
            applied[consumer].append(row.event_id)
    return applied


def apply(conn: Connection, service: str, event_ids: list[str]) -> None:
    """Record the events as applied by `service`'s consumer (500 a statement: SQLite caps the
    parameters of one)."""
    for start in range(0, len(event_ids), 500):
        inbox.claim_many(conn, CONSUMER_DURABLES[service], event_ids[start : start + 500])
