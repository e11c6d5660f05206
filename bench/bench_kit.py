"""`make bench-kit`: the runtime kit's event pipeline against raw NATS, measured in ONE run.

A benchmark, not a test: it prints numbers and never fails on them. On a fresh nats-server it
measures, with the same payloads and CloudEvents headers throughout:

- raw `publish_async` (pipelined in windows of 500, acks awaited per window)   → msgs/s
- raw durable pull `fetch(100)` + `ack()`                                      → msgs/s
- the outbox relay draining a pre-filled outbox (SQLite, then PostgreSQL)      → events/s
- a consumer (inbox row + commit + ack per event) with a no-op handler (the kit's own cost),
  with a handler doing one SQLAlchemy Core INSERT per event (a trivial real effect), and with
  a batch handler doing one Core executemany per run of events                   → events/s

and prints events/s with the ratio to the raw figure it corresponds to. Goal: >= 0.5.

    .venv/bin/python bench/bench_kit.py [--events 20000] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from services.kit import outbox  # noqa: E402
from services.kit.consumer import ConsumerSettings, EventConsumer  # noqa: E402
from services.kit.db import Database  # noqa: E402
from services.kit.events import dataschema_for  # noqa: E402
from services.kit.handlers import HandlerRegistry  # noqa: E402
from services.kit.ids import new_event_id  # noqa: E402
from services.kit.metrics import ServiceMetrics  # noqa: E402
from services.kit.relay import OutboxRelay, RelaySettings  # noqa: E402
from services.kit.streams import ensure_streams  # noqa: E402
from services.kit.tables import add_kit_tables  # noqa: E402
from tests.fixtures.nats import NatsServer, find_nats_server  # noqa: E402
from tests.fixtures.postgres import PostgresCluster, find_pg_bindir  # noqa: E402

SUBJECT = "crossdock.order.bench_happened.v1"
AGGREGATES = 5000
PAYLOAD = bytes(range(256))[:120]  # the size of a small order event
SERVICE = "bench"

metadata = MetaData()
add_kit_tables(metadata)
effects = Table(
    "bench_effects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False),
    Column("aggregate_id", String(255), nullable=False),
)


def sample_headers(event_id: str, aggregate_id: str) -> dict[str, str]:
    return outbox.build_headers(
        event_id=event_id,
        subject=SUBJECT,
        source=f"crossdock/{SERVICE}",
        aggregate_id=aggregate_id,
        dataschema=dataschema_for("bench.v1.BenchHappened"),
        correlation_id="corr-bench",
        created_at=time.time(),
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )


# -- raw NATS ------------------------------------------------------------------------------------


async def raw_publish(url: str, n: int) -> float:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_streams(js)
    await js.purge_stream("ORDER")
    messages = []
    for i in range(n):
        event_id = new_event_id()
        headers = sample_headers(event_id, f"agg-{i % AGGREGATES}")
        headers["Nats-Msg-Id"] = event_id
        messages.append(headers)
    started = time.perf_counter()
    for start in range(0, n, 500):
        futures = [
            await js.publish_async(SUBJECT, PAYLOAD, headers=headers)
            for headers in messages[start : start + 500]
        ]
        await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    await nc.close()
    return n / elapsed


async def raw_fetch_ack(url: str, n: int) -> float:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_consumer(
        "ORDER",
        ConsumerConfig(durable_name="raw", ack_policy=AckPolicy.EXPLICIT, max_ack_pending=20000),
    )
    sub = await js.pull_subscribe_bind(durable="raw", stream="ORDER")
    done = 0
    started = time.perf_counter()
    while done < n:
        for msg in await sub.fetch(100, timeout=5):
            await msg.ack()
            done += 1
    await nc.flush()
    elapsed = time.perf_counter() - started
    await js.delete_consumer("ORDER", "raw")
    await nc.close()
    return n / elapsed


# -- the kit -------------------------------------------------------------------------------------


def fill_outbox(conn: Connection, n: int) -> None:
    """Stage n pending rows as n separate units of work would have left them."""
    import json

    rows = []
    now = time.time()
    for i in range(n):
        event_id = new_event_id()
        aggregate = f"agg-{i % AGGREGATES}"
        rows.append(
            (
                event_id,
                SUBJECT,
                aggregate,
                json.dumps(sample_headers(event_id, aggregate)),
                PAYLOAD,
                now,
            )
        )
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    sql = (
        "INSERT INTO outbox (event_id, subject, aggregate_id, headers, payload, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)"
    )
    if conn.dialect.name != "sqlite":
        sql = sql.replace("?", "%s")
    cursor.executemany(sql, rows)


class BenchEvent:
    """Stands in for a generated message: the bench measures the pipeline, not protobuf."""

    DESCRIPTOR = type("D", (), {"full_name": "bench.v1.BenchHappened"})()

    def __init__(self, data: bytes) -> None:
        self.data = data


class RawDecoder:
    def __call__(self, route: Any, headers: Mapping[str, str], data: bytes) -> Any:
        return BenchEvent(data)


async def kit_pipeline(url: str, db_url: str, n: int) -> tuple[float, float, float, float]:
    db = Database(db_url, service=SERVICE)
    await db.run(lambda conn: metadata.create_all(conn))
    await db.run(fill_outbox, n)
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_streams(js)
    await js.purge_stream("ORDER")

    relay = OutboxRelay(db, nc, settings=RelaySettings(batch_size=500))
    started = time.perf_counter()
    drained = await relay.flush(600)
    relay_rate = n / (time.perf_counter() - started)
    assert drained, "relay did not drain"
    await relay.stop()

    rates = [relay_rate]
    for mode in ("noop", "effect", "batch"):
        rates.append(await consume_all(db, nc, n, mode))
    await nc.close()
    await db.close()
    return rates[0], rates[1], rates[2], rates[3]


async def consume_all(db: Database, nc: Any, n: int, mode: str) -> float:
    """A fresh durable consumes the whole stream; returns events/s until the last is applied.

    mode: "noop" (the kit's own cost), "effect" (one Core INSERT per event), "batch" (a batch
    handler: one Core executemany per run of events).
    """
    applied = 0
    insert_effect = effects.insert()

    def handle(event: Any, headers: Mapping[str, str], conn: Connection) -> None:
        nonlocal applied
        if mode == "effect":
            conn.execute(
                insert_effect,
                {"event_id": headers["ce-id"], "aggregate_id": headers["ce-subject"]},
            )
        applied += 1

    def handle_batch(events: Sequence[tuple[Any, Mapping[str, str]]], conn: Connection) -> None:
        nonlocal applied
        rows = [{"event_id": h["ce-id"], "aggregate_id": h["ce-subject"]} for _, h in events]
        conn.execute(insert_effect, rows)
        applied += len(rows)

    registry = HandlerRegistry()
    if mode == "batch":
        registry.add_subject(SUBJECT, BenchEvent, batch_handler=handle_batch)  # type: ignore[arg-type]
    else:
        registry.add_subject(SUBJECT, BenchEvent, handle)  # type: ignore[arg-type]
    consumer = EventConsumer(
        service=SERVICE,
        purpose=mode,
        stream="ORDER",
        registry=registry,
        db=db,
        nc=nc,
        metrics=ServiceMetrics(SERVICE),
        decoder=RawDecoder(),
        settings=ConsumerSettings(max_ack_pending=20000),
    )
    await consumer.ensure()
    started = time.perf_counter()
    consumer.start()
    while applied < n:
        await asyncio.sleep(0.01)
    rate = n / (time.perf_counter() - started)
    await consumer.stop()
    name = consumer.name

    def inbox_rows(conn: Connection) -> int:
        sql = text("SELECT COUNT(*) FROM inbox WHERE consumer = :c")
        return int(conn.execute(sql, {"c": name}).scalar_one())

    count = await db.run(inbox_rows)
    assert count == n, f"inbox has {count} rows, expected {n}"
    return rate


async def one_round(server: NatsServer, targets: list[tuple[str, str]], n: int) -> dict[str, float]:
    """Every figure once, raw first, so each kit figure sits next to its raw baseline."""
    figures = {"raw publish_async|-": await raw_publish(server.url, n)}
    figures["raw fetch+ack|-"] = await raw_fetch_ack(server.url, n)
    for name, db_url in targets:
        relay_rate, noop_rate, effect_rate, batch_rate = await kit_pipeline(server.url, db_url, n)
        figures[f"outbox relay|{name}"] = relay_rate
        figures[f"consumer, no-op handler|{name}"] = noop_rate
        figures[f"consumer, INSERT per event|{name}"] = effect_rate
        figures[f"consumer, batch INSERT|{name}"] = batch_rate
    return figures


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000, help="events per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="report the median of N rounds")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    n = args.events

    server = NatsServer(find_nats_server())
    server.start()
    pg: PostgresCluster | None = None
    work = Path(tempfile.mkdtemp(prefix="crossdock-bench-"))
    rounds: list[dict[str, float]] = []
    try:
        if not args.skip_postgres:
            pg = PostgresCluster(find_pg_bindir())
            pg.start()
        for round_no in range(args.rounds):
            targets = [("sqlite", f"sqlite:///{work / f'bench{round_no}.db'}")]
            if pg is not None:
                # Same box: the unix socket, as a co-located deployment would use.
                database = pg.create_database()
                targets.append(
                    (
                        "postgres",
                        f"postgresql+psycopg://{pg.user}@/{database}"
                        f"?host={pg.sockdir}&port={pg.port}",
                    )
                )
            rounds.append(await one_round(server, targets, n))
            print(
                f"round {round_no + 1}/{args.rounds}: "
                + ", ".join(f"{k.replace('|', ' ')} {v:,.0f}" for k, v in rounds[-1].items()),
                file=sys.stderr,
            )
    finally:
        server.cleanup()
        if pg is not None:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)

    median = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    raw = {"relay": median["raw publish_async|-"], "consumer": median["raw fetch+ack|-"]}
    print(
        f"\ncrossdock kit benchmark: {n} events per figure, median of {len(rounds)} rounds, "
        f"{os.cpu_count()} cores, nats-server and the database on this box\n"
    )
    print(f"| {'path':<28} | {'db':<8} | {'events/s':>9} | {'vs raw':>6} |")
    print(f"|{'-' * 30}|{'-' * 10}|{'-' * 11}|{'-' * 8}|")
    for key, rate in median.items():
        path, db_name = key.split("|")
        baseline = raw["relay"] if "publish" in path or "relay" in path else raw["consumer"]
        print(f"| {path:<28} | {db_name:<8} | {rate:>9,.0f} | {rate / baseline:>6.2f} |")
    print("\nrelay vs raw publish_async; consumers vs raw fetch+ack; goal >= 0.50")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
