"""Operator keys in the gateway database, on SQLite and PostgreSQL: the 0003 migration from the
previous head, and the store's round trips (issue, read, list, revoke, install)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

import gateway.adapters.store.webhook_tables  # noqa: F401  (the webhook tables join metadata)
from gateway.adapters.store import SCRIPT_LOCATION, migrate, queries
from gateway.adapters.store.operator_keys import (
    install_operator_key,
    issue_operator_key,
    list_operator_keys,
    operator_key_by_id,
    revoke_operator_key,
)
from gateway.adapters.store.tables import api_keys, metadata, operator_keys
from gateway.auth import secret_matches, split_operator_key
from services.kit.db import Database
from services.kit.migrations import alembic_config, current_revision

NOW = 1_790_000_000.0


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    migrate(db_url)
    database = Database(db_url, service="gateway")
    yield database
    database.engine.dispose()


def test_upgrade_from_0002_adds_operator_keys_and_keeps_partner_keys(db_url: str) -> None:
    config = alembic_config(db_url, SCRIPT_LOCATION)
    command.upgrade(config, "0002")
    database = Database(db_url, service="gateway")
    try:
        partner_id, key = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8Q", "cdk_k0000000000000000000000001_s"
        database.run_sync(queries.create_partner, partner_id, "before 0003", NOW)
        database.run_sync(queries.install_key, partner_id, key, ["orders:read"], NOW)
        assert "operator_keys" not in inspect(database.engine).get_table_names()

        migrate(db_url)

        assert current_revision(db_url, SCRIPT_LOCATION) == "0003"
        with database.engine.connect() as conn:
            drift = compare_metadata(MigrationContext.configure(conn), metadata)
            # The kit's consumer inbox (0002) is the kit's table, not in the gateway's metadata.
            assert [d for d in drift if "inbox" not in repr(d)] == []
            kept = conn.execute(select(api_keys.c.id, api_keys.c.partner_id)).all()
        assert [tuple(row) for row in kept] == [("k0000000000000000000000001", partner_id)]
        assert database.run_sync(list_operator_keys) == []

        command.downgrade(config, "0002")
        assert "operator_keys" not in inspect(database.engine).get_table_names()
        assert "api_keys" in inspect(database.engine).get_table_names()
    finally:
        database.engine.dispose()


def test_an_issued_key_is_stored_hashed_and_reads_back(db: Database) -> None:
    key_id, operator_key = db.run_sync(
        issue_operator_key, "ada@example.com", ["ops:act", "ops:read", "ops:act"], NOW + 60, NOW
    )
    assert operator_key.startswith(f"cdo_{key_id}_")
    parts = split_operator_key(operator_key)
    assert parts is not None and parts[0] == key_id
    secret = parts[1]

    stored = db.run_sync(operator_key_by_id, key_id)
    assert stored is not None
    assert stored.operator == "ada@example.com"
    assert stored.scopes == frozenset({"ops:read", "ops:act"})
    assert (stored.expires_at, stored.revoked_at) == (NOW + 60, None)
    assert len(stored.secret_sha256) == 32 and secret.encode() not in stored.secret_sha256
    assert secret_matches(stored.salt, stored.secret_sha256, secret)
    assert not secret_matches(stored.salt, stored.secret_sha256, secret + "x")
    assert db.run_sync(operator_key_by_id, "no-such-key") is None


def test_list_shows_every_key_without_secrets_and_revoke_is_once(db: Database) -> None:
    first, first_key = db.run_sync(issue_operator_key, "ada@example.com", ["ops:read"], None, NOW)
    second, _ = db.run_sync(issue_operator_key, "grace@example.com", ["ops:act"], NOW + 9, NOW + 1)

    assert db.run_sync(revoke_operator_key, first, NOW + 2)
    assert not db.run_sync(revoke_operator_key, first, NOW + 3)  # already revoked
    assert not db.run_sync(revoke_operator_key, "no-such-key", NOW + 3)

    listed = db.run_sync(list_operator_keys)
    assert listed == [
        {
            "key_id": first,
            "operator": "ada@example.com",
            "scopes": ["ops:read"],
            "created_at": NOW,
            "expires_at": None,
            "revoked_at": NOW + 2,
        },
        {
            "key_id": second,
            "operator": "grace@example.com",
            "scopes": ["ops:act"],
            "created_at": NOW + 1,
            "expires_at": NOW + 9,
            "revoked_at": None,
        },
    ]
    assert first_key.split("_", 2)[2] not in repr(listed)


def test_install_stores_a_chosen_key_once(db: Database) -> None:
    chosen = "cdo_demooperator0000000000001_s3cret-value"
    assert db.run_sync(install_operator_key, "demo operator", chosen, ["ops:read"], NOW)
    assert not db.run_sync(install_operator_key, "demo operator", chosen, ["ops:act"], NOW + 1)
    stored = db.run_sync(operator_key_by_id, "demooperator0000000000001")
    assert stored is not None and stored.scopes == frozenset({"ops:read"})
    assert secret_matches(stored.salt, stored.secret_sha256, "s3cret-value")
    with pytest.raises(ValueError, match="cdo_"):
        db.run_sync(install_operator_key, "demo operator", "cdk_partner_key", ["ops:read"], NOW)
    with db.engine.connect() as conn:
        assert conn.execute(select(operator_keys.c.id)).scalars().all() == [
            "demooperator0000000000001"
        ]
