"""The gateway's units of work: each function runs inside Database.run (one transaction)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway.adapters.store.tables import api_keys, partners, rate_buckets
from gateway.auth import new_key_material, secret_matches, split_api_key
from services.kit.statements import prepared

MAX_ACTIVE_KEYS = 2  # two at once, so a partner can rotate without downtime


class KeyLimitReached(Exception):
    """The partner already has MAX_ACTIVE_KEYS active keys; revoke one first."""


# The per-request statements are built once: building one per call (and walking it for its
# compiled-cache key) cost more CPU than running it. Parameters are bound at execute time. They
# run on the kit's prepared path (the raw DBAPI cursor, in the unit of work's transaction);
# the admin statements, built per call, stay on conn.execute.
_KEY_OF_REQUEST = prepared(
    select(api_keys.c.salt, api_keys.c.secret_sha256, api_keys.c.scopes, api_keys.c.partner_id)
    .select_from(api_keys.join(partners, partners.c.id == api_keys.c.partner_id))
    .where(
        api_keys.c.id == bindparam("key_id"),
        api_keys.c.revoked_at.is_(None),
        partners.c.disabled.is_(False),
    )
)
_THIS_BUCKET = and_(
    rate_buckets.c.partner_id == bindparam("bucket_id"),
    rate_buckets.c.route_class == bindparam("bucket_class"),
)
_READ_BUCKET = select(rate_buckets.c.tokens, rate_buckets.c.updated_at).where(_THIS_BUCKET)
# SQLite's BEGIN IMMEDIATE already serializes writers; PostgreSQL locks the row.
_BUCKET = prepared({"sqlite": _READ_BUCKET, "postgresql": _READ_BUCKET.with_for_update()})
_NEW_BUCKET = prepared(insert(rate_buckets))
_SET_BUCKET = prepared(
    update(rate_buckets)
    .where(_THIS_BUCKET)
    .values(tokens=bindparam("tokens_left"), updated_at=bindparam("taken_at"))
)


@dataclass(frozen=True)
class BucketPolicy:
    capacity: float
    refill_per_second: float


@dataclass(frozen=True)
class Admission:
    """The outcome of authenticating and rate-limiting one request."""

    outcome: str  # "ok", "unauthenticated", "forbidden", "limited"
    partner_id: str = ""
    limit: int = 0
    remaining: int = 0
    reset_seconds: int = 0
    retry_after_seconds: int = 0


def create_partner(conn: Connection, partner_id: str, name: str, now: float) -> None:
    conn.execute(insert(partners).values(id=partner_id, name=name, created_at=now, disabled=False))


def get_partner(conn: Connection, partner_id: str) -> dict[str, object] | None:
    row = conn.execute(select(partners).where(partners.c.id == partner_id)).mappings().first()
    return dict(row) if row else None


def issue_key(conn: Connection, partner_id: str, scopes: list[str], now: float) -> tuple[str, str]:
    """A new key for the partner: (key id, full API key). The key is never stored."""
    active = conn.execute(
        select(func.count())
        .select_from(api_keys)
        .where(and_(api_keys.c.partner_id == partner_id, api_keys.c.revoked_at.is_(None)))
    ).scalar_one()
    if active >= MAX_ACTIVE_KEYS:
        raise KeyLimitReached(partner_id)
    key_id, api_key, salt, digest = new_key_material()
    conn.execute(
        insert(api_keys).values(
            id=key_id,
            partner_id=partner_id,
            salt=salt,
            secret_sha256=digest,
            scopes=" ".join(sorted(set(scopes))),
            created_at=now,
            revoked_at=None,
        )
    )
    return key_id, api_key


def list_keys(conn: Connection, partner_id: str) -> list[dict[str, object]]:
    rows = conn.execute(
        select(api_keys.c.id, api_keys.c.scopes, api_keys.c.created_at, api_keys.c.revoked_at)
        .where(api_keys.c.partner_id == partner_id)
        .order_by(api_keys.c.created_at)
    ).mappings()
    return [
        {
            "key_id": r["id"],
            "scopes": r["scopes"].split(),
            "created_at": r["created_at"],
            "revoked_at": r["revoked_at"],
        }
        for r in rows
    ]


def revoke_key(conn: Connection, partner_id: str, key_id: str, now: float) -> bool:
    result = conn.execute(
        update(api_keys)
        .where(
            and_(
                api_keys.c.id == key_id,
                api_keys.c.partner_id == partner_id,
                api_keys.c.revoked_at.is_(None),
            )
        )
        .values(revoked_at=now)
    )
    return result.rowcount == 1


def admit(
    conn: Connection, api_key: str, scope: str, route_class: str, policy: BucketPolicy, now: float
) -> Admission:
    """Authenticate, authorize and take one token, in one transaction (one DB hop per request)."""
    authenticated = authenticate(conn, api_key, scope)
    if authenticated.outcome != "ok":
        return authenticated
    return take_partner_token(conn, authenticated.partner_id, route_class, policy, now)


def authenticate(conn: Connection, api_key: str, scope: str) -> Admission:
    """The key's partner if the key is valid and has `scope` ("ok"; no token taken yet)."""
    parts = split_api_key(api_key)
    if parts is None:
        return Admission("unauthenticated")
    key_id, secret = parts
    row = _KEY_OF_REQUEST.run(conn, {"key_id": key_id}).first()
    if row is None or not secret_matches(row.salt, row.secret_sha256, secret):
        return Admission("unauthenticated")
    if scope not in row.scopes.split():
        return Admission("forbidden", partner_id=row.partner_id)
    return Admission("ok", partner_id=row.partner_id)


def take_partner_token(
    conn: Connection, partner_id: str, route_class: str, policy: BucketPolicy, now: float
) -> Admission:
    """Take one token from the partner's bucket of `route_class` ("ok" or "limited")."""
    bucket = {"bucket_id": partner_id, "bucket_class": route_class}
    row = _BUCKET.run(conn, bucket).first()
    if row is None:
        tokens = policy.capacity
        try:
            with conn.begin_nested():
                _NEW_BUCKET.run(
                    conn,
                    {
                        "partner_id": partner_id,
                        "route_class": route_class,
                        "tokens": tokens,
                        "updated_at": now,
                    },
                )
        except IntegrityError:  # another replica created it first: use its row
            row = _BUCKET.run(conn, bucket).first()
    if row is not None:
        tokens = refilled(row.tokens, row.updated_at, policy, now)
    tokens_left, admission = spend_token(tokens, policy, partner_id)
    _SET_BUCKET.run(conn, {**bucket, "tokens_left": tokens_left, "taken_at": now})
    return admission


def refilled(tokens: float, updated_at: float, policy: BucketPolicy, now: float) -> float:
    """A bucket's tokens at `now`: what it held at `updated_at` plus the refill since, capped."""
    elapsed = max(0.0, now - updated_at)
    return min(policy.capacity, tokens + elapsed * policy.refill_per_second)


def spend_token(
    tokens: float, policy: BucketPolicy, partner_id: str = ""
) -> tuple[float, Admission]:
    """Take one token from a bucket holding `tokens` (refilled): the tokens left and the verdict.

    The one token-bucket rule, shared by the partner buckets here and the in-memory push buckets
    (gateway.adapters.push_buckets), so both answer the same RateLimit-* numbers.
    """
    allowed = tokens >= 1.0
    if allowed:
        tokens -= 1.0
    rate = policy.refill_per_second
    reset = math.ceil((policy.capacity - tokens) / rate) if rate > 0 else 0
    admission = Admission(
        "ok" if allowed else "limited",
        partner_id=partner_id,
        limit=int(policy.capacity),
        remaining=int(tokens),
        reset_seconds=reset,
        retry_after_seconds=0 if allowed else max(1, math.ceil((1.0 - tokens) / rate)),
    )
    return tokens, admission


def purge_idempotency(conn: Connection, now: float) -> int:
    """Delete expired idempotency records; returns how many."""
    from gateway.adapters.store.tables import idempotency_records

    result = conn.execute(delete(idempotency_records).where(idempotency_records.c.expires_at < now))
    return result.rowcount


def ensure_partner_named(conn: Connection, name: str, partner_id: str, now: float) -> str:
    """The id of the partner called `name`, creating it with `partner_id` if there is none."""
    found = conn.execute(select(partners.c.id).where(partners.c.name == name)).scalar()
    if found is not None:
        return str(found)
    create_partner(conn, partner_id, name, now)
    return partner_id


def install_key(
    conn: Connection, partner_id: str, api_key: str, scopes: list[str], now: float
) -> bool:
    """Store a caller-chosen key (the demo key) unless its id exists; True when stored."""
    from gateway.auth import hash_secret

    parts = split_api_key(api_key)
    if parts is None:
        raise ValueError("an API key looks like cdk_<key id>_<secret>")
    key_id, secret = parts
    if conn.execute(select(api_keys.c.id).where(api_keys.c.id == key_id)).first():
        return False
    import os

    salt = os.urandom(16)
    conn.execute(
        insert(api_keys).values(
            id=key_id,
            partner_id=partner_id,
            salt=salt,
            secret_sha256=hash_secret(salt, secret),
            scopes=" ".join(sorted(set(scopes))),
            created_at=now,
            revoked_at=None,
        )
    )
    return True


def revoke_all_keys(conn: Connection, partner_id: str, now: float) -> None:
    conn.execute(
        update(api_keys)
        .where(and_(api_keys.c.partner_id == partner_id, api_keys.c.revoked_at.is_(None)))
        .values(revoked_at=now)
    )


def purge_idle_buckets(conn: Connection, route_class: str, idle_before: float) -> int:
    """Delete buckets of a class untouched since `idle_before` (refilled: same as no row).

    For carrier pushes: their buckets are in memory now (gateway.adapters.push_buckets), but
    gateways before that kept them here, and a replica of that version may still write them.
    """
    result = conn.execute(
        delete(rate_buckets).where(
            and_(rate_buckets.c.route_class == route_class, rate_buckets.c.updated_at < idle_before)
        )
    )
    return result.rowcount
