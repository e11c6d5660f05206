"""Units of work on subscriptions and the delivery log; each runs inside `Database.run`.

Every function a partner reaches takes the partner id and filters on it, so another partner's
subscription is simply not found. Deliveries hang off a subscription and are reached only
through it. The sender's functions (claim, record) live in `delivery_store`.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, select, update

from gateway.adapters.store.webhook_tables import (
    FAILED,
    PENDING,
    webhook_attempts,
    webhook_deliveries,
    webhook_subscriptions,
)
from services.kit.errors import InvalidArgument, NotFound
from services.kit.ids import resource_id
from services.kit.validation import FieldViolation

SECRET_PREFIX = "whsec_"
DEFAULT_PAGE_SIZE = 50

subs = webhook_subscriptions
deliveries = webhook_deliveries


def new_secret() -> str:
    """A signing secret: `whsec_` and 32 random bytes, URL-safe base64."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class SubscriptionChange:
    """The fields an update sets; None leaves a field as it is."""

    url: str | None = None
    event_types: Sequence[str] | None = None
    description: str | None = None
    enabled: bool | None = None


def encode_page_token(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode()


def decode_page_token(token: str, prefix: str) -> str | None:
    """The id a page token resumes after; InvalidArgument when we did not issue it."""
    if not token:
        return None
    try:
        last_id = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        last_id = ""
    if not last_id.startswith(prefix + "_") or len(last_id) != len(prefix) + 27:
        raise InvalidArgument(
            "page_token is not a token this service issued",
            [FieldViolation("page_token", "page_token", "use next_page_token as returned")],
        )
    return last_id


def _owned(partner_id: str, subscription_id: str) -> Any:
    return and_(subs.c.partner_id == partner_id, subs.c.id == subscription_id)


def get_subscription(conn: Connection, partner_id: str, subscription_id: str) -> dict[str, Any]:
    row = conn.execute(select(subs).where(_owned(partner_id, subscription_id))).mappings().first()
    if row is None:
        raise NotFound(
            f"webhook subscription {subscription_id} not found",
            resource_type="webhook_subscription",
            resource_name=subscription_id,
        )
    return dict(row)


def create_subscription(
    conn: Connection,
    partner_id: str,
    url: str,
    event_types: Sequence[str],
    description: str,
    now: float,
) -> dict[str, Any]:
    subscription_id = resource_id("whs")
    conn.execute(
        insert(subs).values(
            id=subscription_id,
            partner_id=partner_id,
            url=url,
            event_types=" ".join(event_types),
            description=description,
            enabled=True,
            disabled_reason="",
            secret=new_secret(),
            previous_secret=None,
            previous_secret_expires_at=None,
            consecutive_failures=0,
            created_at=now,
            updated_at=now,
            disabled_at=None,
        )
    )
    return get_subscription(conn, partner_id, subscription_id)


def start_subscription(
    conn: Connection, partner_id: str, subscription_id: str, now: float
) -> dict[str, Any]:
    """Set when a subscription starts receiving events (`created_at`, its create_time)."""
    conn.execute(
        update(subs)
        .where(_owned(partner_id, subscription_id))
        .values(created_at=now, updated_at=now)
    )
    return get_subscription(conn, partner_id, subscription_id)


def list_subscriptions(
    conn: Connection, partner_id: str, page_size: int, page_token: str
) -> tuple[list[dict[str, Any]], str]:
    after = decode_page_token(page_token, "whs")
    size = page_size or DEFAULT_PAGE_SIZE
    where = subs.c.partner_id == partner_id
    if after is not None:
        where = and_(where, subs.c.id < after)
    rows = [
        dict(r)
        for r in conn.execute(
            select(subs).where(where).order_by(subs.c.id.desc()).limit(size + 1)
        ).mappings()
    ]
    more = len(rows) > size
    rows = rows[:size]
    return rows, encode_page_token(rows[-1]["id"]) if more else ""


def update_subscription(
    conn: Connection, partner_id: str, subscription_id: str, change: SubscriptionChange, now: float
) -> dict[str, Any]:
    get_subscription(conn, partner_id, subscription_id)
    values: dict[str, Any] = {"updated_at": now}
    if change.url is not None:
        values["url"] = change.url
    if change.event_types:
        values["event_types"] = " ".join(change.event_types)
    if change.description is not None:
        values["description"] = change.description
    if change.enabled is True:
        values.update(enabled=True, disabled_reason="", disabled_at=None, consecutive_failures=0)
    elif change.enabled is False:
        values.update(enabled=False, disabled_reason="disabled by the partner", disabled_at=now)
        fail_pending(conn, subscription_id)
    conn.execute(update(subs).where(_owned(partner_id, subscription_id)).values(**values))
    return get_subscription(conn, partner_id, subscription_id)


def fail_pending(conn: Connection, subscription_id: str) -> None:
    """A disabled subscription sends nothing: its pending deliveries fail (redrive requeues)."""
    pending = and_(deliveries.c.subscription_id == subscription_id, deliveries.c.status == PENDING)
    failed = {"status": FAILED, "next_attempt_at": None, "lease_until": 0.0}
    conn.execute(update(deliveries).where(pending).values(**failed))


def delete_subscription(conn: Connection, partner_id: str, subscription_id: str) -> None:
    get_subscription(conn, partner_id, subscription_id)
    owned = select(deliveries.c.id).where(deliveries.c.subscription_id == subscription_id)
    conn.execute(delete(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(owned)))
    conn.execute(delete(deliveries).where(deliveries.c.subscription_id == subscription_id))
    conn.execute(delete(subs).where(_owned(partner_id, subscription_id)))


def rotate_secret(
    conn: Connection, partner_id: str, subscription_id: str, keep_previous_seconds: int, now: float
) -> dict[str, Any]:
    current = get_subscription(conn, partner_id, subscription_id)
    keep = keep_previous_seconds > 0
    conn.execute(
        update(subs)
        .where(_owned(partner_id, subscription_id))
        .values(
            secret=new_secret(),
            previous_secret=current["secret"] if keep else None,
            previous_secret_expires_at=now + keep_previous_seconds if keep else None,
            updated_at=now,
        )
    )
    return get_subscription(conn, partner_id, subscription_id)


def list_deliveries(
    conn: Connection,
    partner_id: str,
    subscription_id: str,
    status: str | None,
    page_size: int,
    page_token: str,
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]], str]:
    """A page of deliveries (newest first), their attempts by delivery id, the next token."""
    get_subscription(conn, partner_id, subscription_id)
    after = decode_page_token(page_token, "whd")
    size = page_size or DEFAULT_PAGE_SIZE
    where = deliveries.c.subscription_id == subscription_id
    if status is not None:
        where = and_(where, deliveries.c.status == status)
    if after is not None:
        where = and_(where, deliveries.c.id < after)
    query = select(deliveries).where(where).order_by(deliveries.c.id.desc()).limit(size + 1)
    rows = [dict(r) for r in conn.execute(query).mappings()]
    more = len(rows) > size
    rows = rows[:size]
    attempts: dict[str, list[dict[str, Any]]] = {row["id"]: [] for row in rows}
    if rows:
        found = conn.execute(
            select(webhook_attempts)
            .where(webhook_attempts.c.delivery_id.in_(list(attempts)))
            .order_by(webhook_attempts.c.delivery_id, webhook_attempts.c.attempt_number)
        ).mappings()
        for attempt in found:
            attempts[attempt["delivery_id"]].append(dict(attempt))
    return rows, attempts, encode_page_token(rows[-1]["id"]) if more else ""


def redrive(
    conn: Connection,
    partner_id: str,
    subscription_id: str,
    delivery_id: str,
    now: float,
    retry_seconds: float,
) -> tuple[dict[str, Any], int]:
    """Enable the subscription and make its failed deliveries (or one of them) due now."""
    get_subscription(conn, partner_id, subscription_id)
    conn.execute(
        update(subs)
        .where(_owned(partner_id, subscription_id))
        .values(
            enabled=True,
            disabled_reason="",
            disabled_at=None,
            consecutive_failures=0,
            updated_at=now,
        )
    )
    where = and_(deliveries.c.subscription_id == subscription_id, deliveries.c.status == FAILED)
    if delivery_id:
        where = and_(where, deliveries.c.id == delivery_id)
        exists = conn.execute(
            select(deliveries.c.id).where(
                and_(
                    deliveries.c.subscription_id == subscription_id,
                    deliveries.c.id == delivery_id,
                )
            )
        ).first()
        if exists is None:
            raise NotFound(
                f"webhook delivery {delivery_id} not found",
                resource_type="webhook_delivery",
                resource_name=delivery_id,
            )
    result = conn.execute(
        update(deliveries)
        .where(where)
        .values(
            status=PENDING, next_attempt_at=now, lease_until=0.0, expires_at=now + retry_seconds
        )
    )
    return get_subscription(conn, partner_id, subscription_id), int(result.rowcount)


def purge_log(conn: Connection, older_than: float, limit: int = 5000) -> int:
    """Forget settled deliveries (delivered or failed) recorded before `older_than`."""
    old = (
        select(deliveries.c.id)
        .where(and_(deliveries.c.status != PENDING, deliveries.c.created_at < older_than))
        .limit(limit)
    )
    ids = [row.id for row in conn.execute(old)]
    if not ids:
        return 0
    conn.execute(delete(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(ids)))
    conn.execute(delete(deliveries).where(deliveries.c.id.in_(ids)))
    return len(ids)
