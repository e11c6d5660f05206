"""Milestone events → deliveries, inside the consumer's transaction.

The `gateway-webhooks` consumers (gateway.entrypoints.consumers) call `enqueue` for each milestone
event in the same transaction as the kit's inbox row. A delivery row per matching enabled
subscription of the event's partner is inserted with ON CONFLICT DO NOTHING on (subscription,
event), so an event reaches an endpoint once even if the inbox were bypassed (a redrive, a replay).
A subscription receives only events that happened after it was created, so a lagging or replayed
consumer never floods a new endpoint with history.

The durables take only the event types some enabled subscription wants (gateway.webhooks.filters),
so an event reaching `enqueue` is usually wanted by someone; the probe below still decides whom.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime

from google.protobuf.message import Message
from sqlalchemy import Connection, bindparam, select

from gateway.adapters.store.webhook_tables import PENDING, webhook_deliveries, webhook_subscriptions
from gateway.webhooks.filters import hold_shared_lock
from gateway.webhooks.payload import delivery_body, partner_of
from services.kit import events as ev
from services.kit.ids import resource_id
from services.kit.outbox import rfc3339
from services.kit.statements import insert_new, new_row, prepared

subs = webhook_subscriptions

# The enabled subscriptions of one partner: an index probe (ix_webhook_subscriptions_partner), so
# an event whose partner subscribes to nothing costs one cheap read and nothing else. Not cached
# in memory: subscriptions change through every replica's API and through the sender (which
# disables a failing one), so a per-process cache would need cross-replica invalidation, and a
# TTL would drop events that happen just after another replica creates a subscription.
# Statements are built once: building one per event cost more CPU than running it. The read runs
# on the kit's prepared path (the raw cursor, in the consumer's transaction): SQLAlchemy's
# execution path cost several times the read itself, which every milestone event pays.
_SUBSCRIPTIONS_OF = prepared(
    select(subs.c.id, subs.c.event_types, subs.c.created_at).where(
        subs.c.partner_id == bindparam("partner_id"), subs.c.enabled.is_(True)
    )
)
# The kit's first-writer-wins INSERT: its rowcount is the number of new rows on PostgreSQL too
# (a plain ON CONFLICT DO NOTHING there reported -1).
_NEW_DELIVERY = insert_new(webhook_deliveries)


def enqueue(
    conn: Connection,
    event: Message,
    headers: Mapping[str, str],
    retry_seconds: float,
    now: float | None = None,
) -> int:
    """Record the deliveries of one event; returns how many were new."""
    partner_id = partner_of(event)
    event_type = headers.get(ev.CE_TYPE, "")
    event_id = headers.get(ev.CE_ID, "")
    if not partner_id or not event_type or not event_id:
        return 0  # nobody to tell (internal events carry no partner)
    hold_shared_lock(conn)  # PostgreSQL: see a subscription being created once it commits
    wanted: list[tuple[str, float]] = [
        (row.id, row.created_at)
        for row in _SUBSCRIPTIONS_OF.run(conn, {"partner_id": partner_id})
        if event_type in row.event_types.split()
    ]
    if not wanted:
        return 0  # no subscription wants this type: no body to build, nothing to write
    now = time.time() if now is None else now
    created = headers.get(ev.CE_TIME) or rfc3339(now)
    occurred_at = _epoch(created, now)
    new_delivery = new_row(_NEW_DELIVERY, conn)
    new = 0
    for subscription_id, subscribed_at in wanted:
        if occurred_at < subscribed_at:
            continue
        delivery_id = resource_id("whd")
        values = {
            "id": delivery_id,
            "subscription_id": subscription_id,
            "partner_id": partner_id,
            "event_id": event_id,
            "event_type": event_type,
            "body": delivery_body(delivery_id, event_type, created, event),
            "status": PENDING,
            "attempt_count": 0,
            "created_at": now,
            "next_attempt_at": now,
            "lease_until": 0.0,
            "delivered_at": None,
            "expires_at": now + retry_seconds,
        }
        new += int(conn.execute(new_delivery, values).rowcount or 0)
    return new


def _epoch(rfc3339_time: str, default: float) -> float:
    try:
        return datetime.fromisoformat(rfc3339_time).timestamp()
    except ValueError:
        return default
