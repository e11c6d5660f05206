"""Idempotency-Key on POSTs, with Stripe's semantics, stored in the gateway database.

- Keys are scoped per partner. The first request with a key claims a record ("running"); its
  response is stored ("done") and replayed to every retry with `Idempotent-Replayed: true`.
- The fingerprint (method, path, query and canonical JSON body) must match: the same key with a
  different request is 422.
- While the first request runs, others with the key get 409 (they may retry and get the replay).
- 5xx and 429 outcomes are not stored: the record is released so a retry can run again (the
  backends' own idempotency, e.g. external_order_id, covers a call that did land).
- A running record whose lock expired (a replica died mid-request) may be taken over.
- Records expire after the retention (24 h by default) and are purged periodically.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway.adapters.store.tables import idempotency_records as records

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: bytes
    content_type: str


@dataclass(frozen=True)
class Claim:
    outcome: str  # "execute", "replay", "mismatch", "running"
    stored: StoredResponse | None = None


def valid_key(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY_LENGTH and all(" " <= c <= "~" for c in key)


def fingerprint(method: str, path: str, query: Sequence[tuple[str, str]], body: bytes) -> str:
    """What makes two requests "the same": whitespace and key order in the JSON do not count."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), json.dumps(sorted(query)).encode(), canonical):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def _key_filter(partner_id: str, key: str):  # type: ignore[no-untyped-def]
    return and_(records.c.partner_id == partner_id, records.c.idempotency_key == key)


def _decide(row: object, fingerprint_: str, now: float) -> Claim | None:
    """The claim for an existing, unexpired record; None when it may be taken over."""
    if row.fingerprint != fingerprint_:  # type: ignore[attr-defined]
        return Claim("mismatch")
    if row.state == "done":  # type: ignore[attr-defined]
        stored = StoredResponse(row.status_code, row.response_body, row.content_type)  # type: ignore[attr-defined]
        return Claim("replay", stored)
    if row.locked_until > now:  # type: ignore[attr-defined]
        return Claim("running")
    return None


def claim(
    conn: Connection,
    partner_id: str,
    key: str,
    fingerprint_: str,
    now: float,
    retention_seconds: float,
    lock_seconds: float,
) -> Claim:
    """Decide what a request with this key does; "execute" means it now holds the record."""
    where = _key_filter(partner_id, key)
    row = conn.execute(select(records).where(where)).first()
    if row is not None and row.expires_at >= now:
        decided = _decide(row, fingerprint_, now)
        if decided is not None:
            return decided
        conn.execute(update(records).where(where).values(locked_until=now + lock_seconds))
        return Claim("execute")
    if row is not None:
        conn.execute(delete(records).where(where))
    try:
        with conn.begin_nested():
            conn.execute(
                insert(records).values(
                    partner_id=partner_id,
                    idempotency_key=key,
                    fingerprint=fingerprint_,
                    state="running",
                    created_at=now,
                    expires_at=now + retention_seconds,
                    locked_until=now + lock_seconds,
                )
            )
    except IntegrityError:
        # Another replica claimed it between our read and insert (PostgreSQL).
        row = conn.execute(select(records).where(where)).first()
        return (_decide(row, fingerprint_, now) if row else None) or Claim("running")
    return Claim("execute")


def complete(conn: Connection, partner_id: str, key: str, response: StoredResponse) -> None:
    conn.execute(
        update(records)
        .where(_key_filter(partner_id, key))
        .values(
            state="done",
            status_code=response.status_code,
            response_body=response.body,
            content_type=response.content_type,
        )
    )


def release(conn: Connection, partner_id: str, key: str) -> None:
    conn.execute(delete(records).where(_key_filter(partner_id, key)))
