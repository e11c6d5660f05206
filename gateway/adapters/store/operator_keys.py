"""Operator keys in the gateway database: issue, list, revoke, and the row a check reads.

Each function runs inside Database.run (one transaction). The key itself is never stored: only
its id, a per-key salt and SHA-256(salt + secret), as for partner keys (gateway.auth).
"""

from __future__ import annotations

from dataclasses import dataclass
from os import urandom

from sqlalchemy import Connection, and_, bindparam, insert, select, update

from gateway.adapters.store.tables import operator_keys
from gateway.auth import hash_secret, new_operator_key_material, split_operator_key
from services.kit.statements import prepared

# Read on every console request, so built once (see queries.py on the prepared path).
_KEY_BY_ID = prepared(
    select(
        operator_keys.c.operator,
        operator_keys.c.salt,
        operator_keys.c.secret_sha256,
        operator_keys.c.scopes,
        operator_keys.c.expires_at,
        operator_keys.c.revoked_at,
    ).where(operator_keys.c.id == bindparam("key_id"))
)


@dataclass(frozen=True)
class StoredOperatorKey:
    """What the check needs of one key: who holds it, how to verify it, what it may do."""

    key_id: str
    operator: str
    salt: bytes
    secret_sha256: bytes
    scopes: frozenset[str]
    expires_at: float | None
    revoked_at: float | None


def issue_operator_key(
    conn: Connection, operator: str, scopes: list[str], expires_at: float | None, now: float
) -> tuple[str, str]:
    """A new key for `operator`: (key id, full operator key). Inputs are validated by the caller."""
    key_id, operator_key, salt, digest = new_operator_key_material()
    _insert(conn, key_id, operator, salt, digest, scopes, expires_at, now)
    return key_id, operator_key


def install_operator_key(
    conn: Connection, operator: str, operator_key: str, scopes: list[str], now: float
) -> bool:
    """Store a caller-chosen key (a local run's demo operator) unless its id exists; True when
    stored. The key must be of the operator form (cdo_<key id>_<secret>)."""
    parts = split_operator_key(operator_key)
    if parts is None:
        raise ValueError("an operator key looks like cdo_<key id>_<secret>")
    key_id, secret = parts
    if conn.execute(select(operator_keys.c.id).where(operator_keys.c.id == key_id)).first():
        return False
    salt = urandom(16)
    _insert(conn, key_id, operator, salt, hash_secret(salt, secret), scopes, None, now)
    return True


def _insert(
    conn: Connection,
    key_id: str,
    operator: str,
    salt: bytes,
    digest: bytes,
    scopes: list[str],
    expires_at: float | None,
    now: float,
) -> None:
    conn.execute(
        insert(operator_keys).values(
            id=key_id,
            operator=operator,
            salt=salt,
            secret_sha256=digest,
            scopes=" ".join(sorted(set(scopes))),
            created_at=now,
            expires_at=expires_at,
            revoked_at=None,
        )
    )


def list_operator_keys(conn: Connection) -> list[dict[str, object]]:
    """Every operator key, oldest first: never the salt or the hash."""
    rows = conn.execute(
        select(
            operator_keys.c.id,
            operator_keys.c.operator,
            operator_keys.c.scopes,
            operator_keys.c.created_at,
            operator_keys.c.expires_at,
            operator_keys.c.revoked_at,
        ).order_by(operator_keys.c.created_at, operator_keys.c.id)
    ).mappings()
    return [
        {
            "key_id": r["id"],
            "operator": r["operator"],
            "scopes": r["scopes"].split(),
            "created_at": r["created_at"],
            "expires_at": r["expires_at"],
            "revoked_at": r["revoked_at"],
        }
        for r in rows
    ]


def revoke_operator_key(conn: Connection, key_id: str, now: float) -> bool:
    """Revoke an active key; False when there is no such key or it is revoked already."""
    result = conn.execute(
        update(operator_keys)
        .where(and_(operator_keys.c.id == key_id, operator_keys.c.revoked_at.is_(None)))
        .values(revoked_at=now)
    )
    return result.rowcount == 1


def operator_key_by_id(conn: Connection, key_id: str) -> StoredOperatorKey | None:
    """The stored key with this id (revoked and expired ones too: the check says which)."""
    row = _KEY_BY_ID.run(conn, {"key_id": key_id}).first()
    if row is None:
        return None
    return StoredOperatorKey(
        key_id=key_id,
        operator=row.operator,
        salt=bytes(row.salt),
        secret_sha256=bytes(row.secret_sha256),
        scopes=frozenset(row.scopes.split()),
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )
