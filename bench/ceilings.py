"""Raw ceilings the lifecycle benchmark compares the mesh with, measured in the same run.

- raw JetStream `publish_async` on a scratch stream of the mesh's own nats-server (windows of
  500, acks awaited per window; 200-byte payloads), so nothing the mesh uses is touched;
- raw sqlite3 commits (WAL, synchronous=FULL: the services' durability) of one 200-byte row each,
  in the mesh's data directory, i.e. on the same disk;
- raw PostgreSQL commits (one row each, autocommit) in a scratch database of the mesh's own
  cluster, for `--db postgres`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import nats
from nats.js.api import StreamConfig

__all__ = ["raw_postgres_rate", "raw_publish_rate", "raw_sqlite_rate"]


async def raw_publish_rate(nats_url: str, messages: int = 20_000) -> float:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="BENCHRAW", subjects=["benchraw.>"]))
    payload = bytes(200)
    started = time.perf_counter()
    for window in range(0, messages, 500):
        acks = [
            await js.publish_async(f"benchraw.{i % 64}", payload)
            for i in range(window, min(window + 500, messages))
        ]
        await asyncio.gather(*acks)
    elapsed = time.perf_counter() - started
    await js.delete_stream("BENCHRAW")
    await nc.close()
    return messages / elapsed


def raw_sqlite_rate(directory: Path, transactions: int = 2_000) -> float:
    path = directory / "bench-raw.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body BLOB)")
    started = time.perf_counter()
    for _ in range(transactions):
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t (body) VALUES (?)", (bytes(200),))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return transactions / elapsed


def raw_postgres_rate(service_db_url: str, transactions: int = 2_000) -> float:
    """Commits/s in a scratch database next to a service's (same cluster, same settings)."""
    import psycopg
    from psycopg.conninfo import make_conninfo
    from sqlalchemy.engine import make_url

    url = make_url(service_db_url)
    params = {
        "host": url.host or url.query.get("host"),
        "port": url.port or url.query.get("port"),
        "user": url.username,
        "password": url.password,
    }
    settings = {k: str(v) for k, v in params.items() if v}
    service_db = make_conninfo(dbname=str(url.database), **settings)
    with psycopg.connect(service_db, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = 'bench_raw'").fetchone()
        if not exists:
            admin.execute("CREATE DATABASE bench_raw")
    with psycopg.connect(make_conninfo(dbname="bench_raw", **settings), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS t")
        conn.execute("CREATE TABLE t (id BIGSERIAL PRIMARY KEY, body BYTEA)")
        body = bytes(200)
        started = time.perf_counter()
        for _ in range(transactions):
            conn.execute("INSERT INTO t (body) VALUES (%s)", (body,))
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE t")
    return transactions / elapsed
