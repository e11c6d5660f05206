"""The sender's units of work: claim due deliveries, then record what each POST did.

Claims are leases (the kit's lease_due): a claimed row gets `lease_until` in the future and no
other replica takes it until then. On PostgreSQL the claim reads with FOR UPDATE SKIP LOCKED, so
replicas claiming at once split the due rows instead of waiting on each other; SQLite has one
writer at a time.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, and_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from gateway.adapters.store.webhook_tables import (
    DELIVERED,
    FAILED,
    PENDING,
    webhook_attempts,
    webhook_deliveries,
    webhook_subscriptions,
)
from gateway.webhooks.store import fail_pending
from services.kit.leases import lease_due

deliveries = webhook_deliveries
subs = webhook_subscriptions


@dataclass(frozen=True)
class RetryPolicy:
    """How failed deliveries are retried and when a subscription is switched off."""

    retry_seconds: float = 72 * 3600.0
    base_delay_seconds: float = 30.0
    max_delay_seconds: float = 3600.0
    disable_after_failures: int = 50

    def delay(self, failed_attempts: int) -> float:
        """Exponential backoff with full jitter: uniform(0, min(max, base * 2^(n-1)))."""
        ceiling = self.base_delay_seconds * 2.0 ** min(max(0, failed_attempts - 1), 60)
        return random.uniform(0.0, min(self.max_delay_seconds, ceiling))


@dataclass(frozen=True)
class Due:
    """A claimed delivery with what the POST needs."""

    delivery_id: str
    subscription_id: str
    event_type: str
    body: bytes
    attempt_number: int
    url: str
    secrets: tuple[str, ...]


@dataclass(frozen=True)
class AttemptResult:
    """What one POST did."""

    delivery_id: str
    subscription_id: str
    attempt_number: int
    attempted_at: float
    status_code: int  # 0 when no response arrived
    error: str
    duration_seconds: float

    @property
    def delivered(self) -> bool:
        return 200 <= self.status_code < 300


def claim_due(conn: Connection, now: float, limit: int, lease_seconds: float) -> list[Due]:
    query = (
        select(
            deliveries.c.id,
            deliveries.c.subscription_id,
            deliveries.c.event_type,
            deliveries.c.body,
            deliveries.c.attempt_count,
            subs.c.url,
            subs.c.secret,
            subs.c.previous_secret,
            subs.c.previous_secret_expires_at,
        )
        .select_from(deliveries.join(subs, subs.c.id == deliveries.c.subscription_id))
        .where(
            and_(
                deliveries.c.status == PENDING,
                deliveries.c.next_attempt_at <= now,
                deliveries.c.lease_until <= now,
                subs.c.enabled.is_(True),
            )
        )
        .order_by(deliveries.c.next_attempt_at)
        .limit(limit)
    )
    rows = lease_due(
        conn,
        query,
        table=deliveries,
        key=deliveries.c.id,
        lease_column=deliveries.c.lease_until,
        lease_until=now + lease_seconds,
    )
    claimed = []
    for row in rows:
        secrets = [row.secret]
        if row.previous_secret and (row.previous_secret_expires_at or 0.0) > now:
            secrets.append(row.previous_secret)
        claimed.append(
            Due(
                row.id,
                row.subscription_id,
                row.event_type,
                bytes(row.body),
                row.attempt_count + 1,
                row.url,
                tuple(secrets),
            )
        )
    return claimed


def record(
    conn: Connection, results: Sequence[AttemptResult], policy: RetryPolicy, now: float
) -> None:
    """Log each attempt, settle or reschedule its delivery, and keep the failure streak."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    for result in results:
        row = conn.execute(
            select(deliveries.c.status, deliveries.c.expires_at).where(
                deliveries.c.id == result.delivery_id
            )
        ).first()
        if row is None:
            continue  # the subscription was deleted while we were sending
        conn.execute(
            dialect.insert(webhook_attempts)
            .values(
                delivery_id=result.delivery_id,
                attempt_number=result.attempt_number,
                attempted_at=result.attempted_at,
                status_code=result.status_code,
                error=result.error,
                duration_seconds=result.duration_seconds,
            )
            .on_conflict_do_nothing()
        )
        mine = and_(deliveries.c.id == result.delivery_id, deliveries.c.status == PENDING)
        if result.delivered:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id == result.delivery_id)
                .values(
                    status=DELIVERED,
                    attempt_count=result.attempt_number,
                    delivered_at=now,
                    next_attempt_at=None,
                    lease_until=0.0,
                )
            )
            conn.execute(
                update(subs)
                .where(subs.c.id == result.subscription_id)
                .values(consecutive_failures=0)
            )
            continue
        next_at = now + policy.delay(result.attempt_number)
        gave_up = next_at > row.expires_at
        conn.execute(
            update(deliveries)
            .where(mine)
            .values(
                status=FAILED if gave_up else PENDING,
                attempt_count=result.attempt_number,
                next_attempt_at=None if gave_up else next_at,
                lease_until=0.0,
            )
        )
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id == result.delivery_id)
            .values(attempt_count=result.attempt_number)
        )
        _count_failure(conn, result.subscription_id, policy, now)


def _count_failure(conn: Connection, subscription_id: str, policy: RetryPolicy, now: float) -> None:
    conn.execute(
        update(subs)
        .where(subs.c.id == subscription_id)
        .values(consecutive_failures=subs.c.consecutive_failures + 1)
    )
    streak = conn.execute(
        select(subs.c.consecutive_failures, subs.c.enabled).where(subs.c.id == subscription_id)
    ).first()
    if streak is None or not streak.enabled:
        return
    if streak.consecutive_failures < policy.disable_after_failures:
        return
    conn.execute(
        update(subs)
        .where(subs.c.id == subscription_id)
        .values(
            enabled=False,
            disabled_reason=(
                f"disabled after {streak.consecutive_failures} consecutive failed delivery "
                "attempts; fix the endpoint, then redrive"
            ),
            disabled_at=now,
            updated_at=now,
        )
    )
    fail_pending(conn, subscription_id)
