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

import contextlib
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from gateway.adapters.store.tables import idempotency_records as records
from services.kit.raw_results import RawRow
from services.kit.statements import prepared

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


NOT_PARSED: Any = object()  # `fingerprint`'s parsed_json when the caller has not parsed the body


def fingerprint(
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    body: bytes,
    parsed_json: Any = NOT_PARSED,
) -> str:
    """What makes two requests "the same": whitespace and key order in the JSON do not count.

    A caller that already has `json.loads(body)` passes it as `parsed_json`, so the body is not
    parsed twice; a body that is not JSON counts as its bytes.
    """
    if parsed_json is NOT_PARSED:
        with contextlib.suppress(ValueError):  # not JSON: stays NOT_PARSED
            parsed_json = json.loads(body)
    if parsed_json is NOT_PARSED:
        canonical = body
    else:
        canonical = json.dumps(parsed_json, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), json.dumps(sorted(query)).encode(), canonical):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


# Built once (a statement built per call costs more CPU than running it); values bind at execute.
# They run on the kit's prepared path (the raw DBAPI cursor, in the unit of work's transaction):
# SQLAlchemy's execution path cost several times what the statement did.
_THIS_KEY = and_(
    records.c.partner_id == bindparam("record_partner_id"),
    records.c.idempotency_key == bindparam("record_key"),
)
_RECORD = prepared(select(records).where(_THIS_KEY))
_RELOCK = prepared(update(records).where(_THIS_KEY).values(locked_until=bindparam("lock_until")))
_DROP = prepared(delete(records).where(_THIS_KEY))
_COMPLETE = prepared(
    update(records)
    .where(_THIS_KEY)
    .values(
        state="done",
        status_code=bindparam("response_status"),
        response_body=bindparam("response_body_"),
        content_type=bindparam("response_type"),
    )
)
# The claim's INSERT: ON CONFLICT DO NOTHING, not a savepoint around a plain INSERT, so an
# existing record (or one another replica just inserted) makes it insert nothing and return no
# row; a savepoint would cost two more statements on every claim.
_INSERT_NEW = prepared(
    {
        name: dialect.insert(records)
        .on_conflict_do_nothing(index_elements=[records.c.partner_id, records.c.idempotency_key])
        .returning(records.c.partner_id)
        for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
    }
)


def _key_of(partner_id: str, key: str) -> dict[str, str]:
    return {"record_partner_id": partner_id, "record_key": key}


def _decide(row: RawRow, fingerprint_: str, now: float) -> Claim | None:
    """The claim for an existing, unexpired record; None when it may be taken over."""
    if row.fingerprint != fingerprint_:
        return Claim("mismatch")
    if row.state == "done":
        stored = StoredResponse(row.status_code, row.response_body, row.content_type)
        return Claim("replay", stored)
    if row.locked_until > now:
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
    this_key = _key_of(partner_id, key)
    # A new key is the common case: try the insert first, so it takes one statement.
    if _insert_new(conn, partner_id, key, fingerprint_, now, retention_seconds, lock_seconds):
        return Claim("execute")
    row = _RECORD.run(conn, this_key).first()
    if row is not None and row.expires_at >= now:
        decided = _decide(row, fingerprint_, now)
        if decided is not None:
            return decided
        _RELOCK.run(conn, {**this_key, "lock_until": now + lock_seconds})
        return Claim("execute")
    if row is not None:
        _DROP.run(conn, this_key)
    if not _insert_new(conn, partner_id, key, fingerprint_, now, retention_seconds, lock_seconds):
        # Another replica claimed it between our read and insert (PostgreSQL).
        row = _RECORD.run(conn, this_key).first()
        return (_decide(row, fingerprint_, now) if row else None) or Claim("running")
    return Claim("execute")


def _insert_new(
    conn: Connection,
    partner_id: str,
    key: str,
    fingerprint_: str,
    now: float,
    retention_seconds: float,
    lock_seconds: float,
) -> bool:
    """Insert the key's record as running; False when a record for the key exists."""
    values = {
        "partner_id": partner_id,
        "idempotency_key": key,
        "fingerprint": fingerprint_,
        "state": "running",
        "created_at": now,
        "expires_at": now + retention_seconds,
        "locked_until": now + lock_seconds,
    }
    return _INSERT_NEW.run(conn, values).first() is not None


def complete(conn: Connection, partner_id: str, key: str, response: StoredResponse) -> None:
    _COMPLETE.run(
        conn,
        {
            **_key_of(partner_id, key),
            "response_status": response.status_code,
            "response_body_": response.body,
            "response_type": response.content_type,
        },
    )


def release(conn: Connection, partner_id: str, key: str) -> None:
    _DROP.run(conn, _key_of(partner_id, key))
