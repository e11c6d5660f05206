"""Gapless invoice numbers under concurrent postings and kill -9, with billing as real processes.

One billing process is killed by the kit's fault seam with a batch applied but not committed
(numbers taken, invoices inserted, nothing durable); two more then consume concurrently from the
same durables, one of them is SIGKILLed in the middle of a burst and replaced. At the end the
numbers must be exactly 1..N and every shipment must have exactly one invoice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from nats.aio.client import Client as NATS
from sqlalchemy import Connection, text

from services.billing.adapters.store import migrate
from services.kit.db import Database
from services.kit.streams import ensure_streams
from tests.billing.service_support import (
    delivered,
    eur,
    ids,
    order_placed,
    shipment,
    subprocess_env,
)
from tests.fixtures.events import publish_as_relay
from tests.fixtures.nats import NatsServer
from tests.fixtures.waiting import wait_for

FIRST, SECOND = 20, 40


def _read(conn: Connection) -> list[tuple[str, str]]:
    rows = conn.execute(text("SELECT invoice_number, shipment_id FROM invoices")).all()
    return [(str(number), str(shipment_id)) for number, shipment_id in rows]


async def test_invoice_numbers_stay_gapless_after_kill_and_concurrency(
    db_url: str, nats_server: NatsServer, nats_client: NATS, tmp_path: Path
) -> None:
    js = nats_client.jetstream()
    # Migrate once up front so the processes do not race each other's migrations.
    await asyncio.to_thread(migrate, db_url)
    await ensure_streams(js)
    db = Database(db_url, service="billing-test")
    env = subprocess_env(db_url, nats_server.url)
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str, fault: str | None = None) -> subprocess.Popen[bytes]:
        child = dict(env, **({"CROSSDOCK_FAULT": fault} if fault else {}))
        with open(tmp_path / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "services.billing.main"],
                env=child,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        procs[name] = proc
        return proc

    def log_of(name: str) -> str:
        return (tmp_path / f"{name}.log").read_text()[-3000:]

    async def count_until(n: int) -> list[tuple[str, str]]:
        return await wait_for(
            lambda: db.run(_read), lambda rows: len(rows) >= n, timeout=60, interval=0.1
        )

    partner, order_id = ids("ptn"), ids("ord")
    shipments = [ids("shp") for _ in range(FIRST + SECOND)]
    try:
        await publish_as_relay(js, order_placed(order_id, partner), order_id)
        for shipment_id in shipments[:FIRST]:
            ship = shipment(shipment_id, order_id, partner)
            await publish_as_relay(js, delivered(ship, eur(3)), shipment_id)

        doomed = start("a", "consumer.before_commit:kill")
        code = await asyncio.to_thread(doomed.wait, 60)
        assert code == -signal.SIGKILL, log_of("a")

        b, _c = start("b"), start("c")
        rows = await count_until(FIRST)
        assert len(rows) == FIRST, log_of("b") + log_of("c")

        for shipment_id in shipments[FIRST:]:
            ship = shipment(shipment_id, order_id, partner)
            await publish_as_relay(js, delivered(ship, eur(3)), shipment_id)
        os.kill(b.pid, signal.SIGKILL)  # kill -9 while the burst is being consumed
        b.wait()
        start("d")
        rows = await count_until(FIRST + SECOND)
        await asyncio.sleep(1.0)  # redeliveries of the killed batch must change nothing
        rows = await db.run(_read)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        await db.close()

    numbers = sorted(int(number.rsplit("-", 1)[1]) for number, _ in rows)
    assert numbers == list(range(1, FIRST + SECOND + 1)), numbers
    assert sorted(s for _, s in rows) == sorted(shipments)
