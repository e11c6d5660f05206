"""The kit's test service as a real process, for crash (kill -9) and freeze (SIGSTOP) tests.

    python -m tests.kit.app produce --db-url U --nats-url N --things a,b --count 3
    python -m tests.kit.app relay   --db-url U --nats-url N
    python -m tests.kit.app consume --db-url U --nats-url N --stats FILE [--ack-wait S]

Faults come from CROSSDOCK_FAULT (see services.kit.faults); this module has no test seams of its
own. `consume` runs until SIGTERM, then writes its outcome counts to --stats as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from kittest.v1 import kittest_pb2 as pb  # compiled by the test fixture, on PYTHONPATH

from services.kit.bus import connect
from services.kit.consumer import ConsumerSettings, EventConsumer
from services.kit.db import Database
from services.kit.metrics import ServiceMetrics
from services.kit.relay import OutboxRelay, RelaySettings
from services.kit.streams import ensure_streams
from tests.fixtures.kittest.harness import SERVICE, open_db, produce, registry_for


async def cmd_produce(args: argparse.Namespace) -> int:
    db = open_db(args.db_url)
    nc = await connect(args.nats_url, name="kittest-producer")
    await ensure_streams(nc.jetstream())
    things = [(thing, n) for n in range(1, args.count + 1) for thing in args.things.split(",")]
    await db.run(produce, pb, things)  # one unit of work: all rows commit together
    relay = OutboxRelay(db, nc, settings=RelaySettings(poll_interval=0.2))
    drained = await relay.flush(30)
    await nc.close()
    await db.close()
    return 0 if drained else 1


async def cmd_relay(args: argparse.Namespace) -> int:
    db = open_db(args.db_url)
    nc = await connect(args.nats_url, name="kittest-relay")
    drained = await OutboxRelay(db, nc, settings=RelaySettings(poll_interval=0.2)).flush(30)
    await nc.close()
    await db.close()
    return 0 if drained else 1


async def cmd_consume(args: argparse.Namespace) -> int:
    # A second replica skips the boot migration: on SQLite it would wait for the write lock a
    # frozen first replica holds (embedded SQLite is one process per file; tests bend that).
    db = Database(args.db_url, service=SERVICE) if args.replica else open_db(args.db_url)
    nc = await connect(args.nats_url, name="kittest-consumer")
    metrics = ServiceMetrics("kittest")
    consumer = EventConsumer(
        service="kittest",
        purpose="effects",
        stream="ORDER",
        registry=registry_for(pb, "kittest-effects"),
        db=db,
        nc=nc,
        metrics=metrics,
        settings=ConsumerSettings(ack_wait=args.ack_wait, fetch_timeout=0.5, batch_size=10),
    )
    await consumer.ensure()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    consumer.start()
    Path(args.stats).with_suffix(".ready").write_text("ready")
    await stop.wait()
    await consumer.stop()
    counts = {
        outcome: metrics.registry.get_sample_value(
            "crossdock_consumer_events_total", {"consumer": "kittest-effects", "outcome": outcome}
        )
        or 0
        for outcome in ("applied", "duplicate", "retried", "dead_lettered")
    }
    counts["redeliveries"] = (
        metrics.registry.get_sample_value(
            "crossdock_consumer_redeliveries_total", {"consumer": "kittest-effects"}
        )
        or 0
    )
    Path(args.stats).write_text(json.dumps(counts))
    await nc.close()
    await db.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.kit.app")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, fn in (("produce", cmd_produce), ("relay", cmd_relay), ("consume", cmd_consume)):
        p = sub.add_parser(name)
        p.add_argument("--db-url", required=True)
        p.add_argument("--nats-url", required=True)
        p.set_defaults(run=fn)
        if name == "produce":
            p.add_argument("--things", default="t-1")
            p.add_argument("--count", type=int, default=1)
        if name == "consume":
            p.add_argument("--stats", required=True)
            p.add_argument("--ack-wait", type=float, default=30.0)
            p.add_argument("--replica", action="store_true", help="skip the boot migration")
    args = parser.parse_args()
    return asyncio.run(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
