"""Alembic migrations, one script directory per service.

Convention: a service keeps its Alembic script directory at
`services/<name>/adapters/store/migrations/` (env.py, script.py.mako, versions/). Its env.py is
three lines:

    from services.kit.migrations import run_env
    from services.<name>.adapters.store.tables import metadata
    run_env(metadata)

and its first revision calls `create_kit_tables(op)` to create the outbox and inbox. A service in
embedded mode calls `migrate(url, script_location)` at boot; in Kubernetes a Job runs
`crossdock migrate --service <name> --db-url URL`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text

from services.kit.db import make_engine
from services.kit.tables import (
    INBOX,
    OUTBOX,
    PENDING_PREDICATE,
    SENT_PREDICATE,
    inbox_items,
    outbox_items,
)

URL_ATTRIBUTE = "crossdock.db_url"
DB_URL_ENV = "CROSSDOCK_DB_URL"


def service_script_location(service: str) -> Path:
    """Where the convention puts a service's Alembic script directory."""
    service_root = Path(__file__).resolve().parent.parent / service.replace("-", "_")
    location = service_root / "adapters" / "store" / "migrations"
    return location if location.is_dir() else service_root / "store" / "migrations"


def alembic_config(url: str, script_location: str | Path) -> Config:
    """An in-memory Alembic config: no alembic.ini to keep in sync per service."""
    location = Path(script_location)
    if not (location / "env.py").is_file():
        raise FileNotFoundError(f"no Alembic env.py in {location}")
    config = Config()
    config.set_main_option("script_location", str(location))
    # Passed as an attribute, not the ini option, so passwords never pass through ConfigParser
    # interpolation (a '%' in a password would break it).
    config.attributes[URL_ATTRIBUTE] = url
    return config


def migrate(url: str, script_location: str | Path, revision: str = "head") -> None:
    """Upgrade the database at `url` to `revision` (default: head). Idempotent."""
    command.upgrade(alembic_config(url, script_location), revision)


def current_revision(url: str, script_location: str | Path) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def run_env(target_metadata: MetaData | None = None) -> None:
    """The body of a service's Alembic env.py (online and offline modes)."""
    config = context.config
    url = (
        config.attributes.get(URL_ATTRIBUTE)
        or os.environ.get(DB_URL_ENV)
        or config.get_main_option("sqlalchemy.url")
    )
    if not url:
        raise RuntimeError(f"no database URL: pass one to migrate() or set {DB_URL_ENV}")
    is_sqlite = url.startswith("sqlite")
    if context.is_offline_mode():
        context.configure(
            url=url, target_metadata=target_metadata, literal_binds=True, render_as_batch=is_sqlite
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            # render_as_batch: SQLite can't ALTER most things; batch mode copies tables instead.
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=is_sqlite,
                transaction_per_migration=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


def create_kit_tables(op: Any) -> None:
    """Create the kit's outbox and inbox tables from a service migration (`op` is alembic.op).

    Future kit schema changes ship as new helpers that services call from new revisions, so every
    service database records which kit schema it has.
    """
    op.create_table(OUTBOX, *outbox_items(), sqlite_autoincrement=True)
    pending, sent = text(PENDING_PREDICATE), text(SENT_PREDICATE)
    op.create_index(
        "ix_outbox_pending", OUTBOX, ["seq"], sqlite_where=pending, postgresql_where=pending
    )
    op.create_index(
        "ix_outbox_sent_at", OUTBOX, ["sent_at"], sqlite_where=sent, postgresql_where=sent
    )
    op.create_table(INBOX, *inbox_items())
    op.create_index("ix_inbox_processed_at", INBOX, ["processed_at"])


def drop_kit_tables(op: Any) -> None:
    """Reverse of create_kit_tables, for a service's downgrade."""
    op.drop_table(INBOX)
    op.drop_table(OUTBOX)
