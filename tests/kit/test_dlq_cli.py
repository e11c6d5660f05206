"""Poison events, the DLQ and the operator CLI (`crossdock dlq|replay|streams|outbox|migrate`)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from nats.aio.client import Client as NATS
from sqlalchemy import Connection, select

from services.kit import cli
from services.kit.consumer import ConsumerSettings, EventConsumer
from services.kit.dlq import list_dead_letters
from services.kit.outbox import append
from services.kit.relay import OutboxRelay
from services.kit.streams import ensure_streams
from tests.fixtures.events import stream_messages
from tests.fixtures.kittest.harness import MIGRATIONS, Switch, open_db, registry_for
from tests.fixtures.kittest.service.tables import effects
from tests.kit.test_relay import FAST, wait_until

QUICK = ConsumerSettings(
    fetch_timeout=0.3, ack_wait=5, max_deliver=3, nak_base_delay=0.1, recreate_grace=0.5
)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def crossdock(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI as an operator would, in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "services.kit.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def effects_of(consumer: str) -> Callable[[Connection], list[tuple[str, int]]]:
    def read(conn: Connection) -> list[tuple[str, int]]:
        rows = conn.execute(
            select(effects.c.event_id, effects.c.n)
            .where(effects.c.consumer == consumer)
            .order_by(effects.c.id)
        )
        return [(r.event_id, int(r.n)) for r in rows]

    return read


async def test_poison_event_is_dead_lettered_then_redriven_exactly_once(
    db_url: str,
    pb: ModuleType,
    nats_client: NATS,
    nats_server,
    child_env: dict[str, str],  # type: ignore[no-untyped-def]
) -> None:
    js = nats_client.jetstream()
    await ensure_streams(js)
    db = open_db(db_url)
    fix = Switch()
    relay = OutboxRelay(db, nats_client, settings=FAST)
    relay.start()
    main = EventConsumer(
        service="kittest",
        purpose="effects",
        stream="ORDER",
        registry=registry_for(pb, "kittest-effects", fix),
        db=db,
        nc=nats_client,
        settings=QUICK,
    )
    # A second consumer of the same subject (which tolerates the poison): a redrive of main's
    # dead letter is not addressed to it.
    audit_fix = Switch()
    audit_fix.turn_on()
    audit = EventConsumer(
        service="kittest",
        purpose="audit",
        stream="ORDER",
        registry=registry_for(pb, "kittest-audit", audit_fix),
        db=db,
        nc=nats_client,
        settings=QUICK,
    )
    main.start()
    audit.start()

    def unit_of_work(conn: Connection) -> list[str]:
        return [
            append(conn, pb.ThingHappened(thing_id="t-1", n=1), "t-1", correlation_id="c-1"),
            append(
                conn,
                pb.ThingHappened(thing_id="t-1", n=2, note="poison"),
                "t-1",
                correlation_id="c-poison",
                traceparent=TRACEPARENT,
            ),
            append(conn, pb.ThingHappened(thing_id="t-2", n=1), "t-2", correlation_id="c-2"),
        ]

    good1, poison, good2 = await db.run(unit_of_work)

    async def dead_lettered() -> bool:
        return len(await list_dead_letters(js, "kittest-effects")) == 1

    await wait_until(dead_lettered)
    (letter,) = await list_dead_letters(js, "kittest-effects")
    # The original headers travel intact, plus why and from where.
    h = letter.headers
    assert h["ce-id"] == poison and h["ce-type"] == "crossdock.order.thing_happened.v1"
    assert h["ce-source"] == "crossdock/kittest" and h["ce-subject"] == "t-1"
    assert h["traceparent"] == TRACEPARENT and h["x-correlation-id"] == "c-poison"
    assert h["crossdock-dlq-reason"] == "handler rejected the event: poison note"
    assert h["crossdock-dlq-original-subject"] == "crossdock.order.thing_happened.v1"
    assert h["crossdock-dlq-consumer"] == "kittest-effects"
    stored = {m.headers["ce-id"]: m.seq for m in await stream_messages(js, "ORDER")}
    assert int(h["crossdock-dlq-original-stream-seq"]) == stored[poison]
    assert pb.ThingHappened.FromString(letter.data).note == "poison"
    await wait_until(lambda: _count(db, "kittest-effects", 2))
    assert await db.run(effects_of("kittest-effects")) == [(good1, 1), (good2, 1)]

    env = child_env | {"CROSSDOCK_NATS_URL": nats_server.url}
    listed = crossdock("dlq", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [row["event_id"] for row in json.loads(listed.stdout)] == [poison]

    fix.turn_on()  # the bug is fixed
    redriven = crossdock("dlq", "redrive", "--all", "--consumer", "kittest-effects", env=env)
    assert redriven.returncode == 0, redriven.stderr
    await wait_until(lambda: _count(db, "kittest-effects", 3))
    assert await list_dead_letters(js) == []

    # Replaying the whole stream re-delivers everything, the redriven copy included: still once.
    replayed = crossdock(
        "replay", "--consumer", "kittest-effects", "--stream", "ORDER", "--from-seq", "1", env=env
    )
    assert replayed.returncode == 0, replayed.stderr
    assert "redelivering 4 messages" in replayed.stdout
    await asyncio.sleep(2.5)  # the running consumer picks up its new position by itself
    info = await js.consumer_info("ORDER", "kittest-effects")
    assert info.num_pending == 0 and info.num_ack_pending == 0
    assert info.delivered.stream_seq == 4 and info.config.opt_start_seq == 1
    assert sorted(await db.run(effects_of("kittest-effects"))) == sorted(
        [(good1, 1), (good2, 1), (poison, 2)]
    )
    # The audit consumer applied the three originals and skipped the redrive meant for main.
    assert len(await db.run(effects_of("kittest-audit"))) == 3
    await main.stop()
    await audit.stop()
    await relay.stop()
    await db.close()


async def _count(db, consumer: str, n: int) -> bool:  # type: ignore[no-untyped-def]
    return len(await db.run(effects_of(consumer))) == n


async def test_streams_outbox_status_and_migrate_commands(
    tmp_path: Path,
    pb: ModuleType,
    nats_client: NATS,
    nats_server,
    child_env: dict[str, str],  # type: ignore[no-untyped-def]
) -> None:
    env = child_env | {"CROSSDOCK_NATS_URL": nats_server.url}
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    migrated = crossdock(
        "migrate",
        "--service",
        "kittest",
        "--db-url",
        url,
        "--script-location",
        str(MIGRATIONS),
        env=env,
    )
    assert migrated.returncode == 0, migrated.stderr
    missing = crossdock("migrate", "--service", "no-such-service", "--db-url", url, env=env)
    assert missing.returncode == 2 and "no Alembic env.py" in missing.stderr

    db = open_db(url)
    from tests.fixtures.kittest.harness import produce

    await db.run(produce, pb, [("t-1", 1), ("t-1", 2)])
    status = crossdock("outbox", "status", "--db-url", url, "--json", env=env)
    assert status.returncode == 0, status.stderr
    view = json.loads(status.stdout)
    assert view["pending"] == 2 and view["sent_retained"] == 0
    assert [row["subject"] for row in view["next_pending"]] == [
        "crossdock.order.thing_happened.v1"
    ] * 2

    js = nats_client.jetstream()
    await ensure_streams(js)
    assert await OutboxRelay(db, nats_client, settings=FAST).flush(10)
    status = json.loads(crossdock("outbox", "status", "--db-url", url, "--json", env=env).stdout)
    assert status["pending"] == 0 and status["sent_retained"] == 2

    streams = crossdock("streams", "--json", env=env)
    assert streams.returncode == 0, streams.stderr
    counts = {row["stream"]: row["messages"] for row in json.loads(streams.stdout)}
    assert counts == {
        "ORDER": 2,
        "INVENTORY": 0,
        "SHIPMENT": 0,
        "BILLING": 0,
        "RETURN": 0,
        "CARRIER": 0,
        "RECONCILIATION": 0,
        "DLQ": 0,
    }
    table = crossdock("streams", env=env)
    assert "ORDER" in table.stdout and "crossdock.order.>" in table.stdout
    await db.close()


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (
        ["--help"],
        ["streams", "--help"],
        ["dlq", "--help"],
        ["dlq", "list", "--help"],
        ["dlq", "show", "--help"],
        ["dlq", "redrive", "--help"],
        ["dlq", "discard", "--help"],
        ["outbox", "--help"],
        ["outbox", "status", "--help"],
        ["replay", "--help"],
        ["migrate", "--help"],
    ):
        with pytest.raises(SystemExit) as exited:
            cli.main(args)
        assert exited.value.code == 0, args
        out = capsys.readouterr().out
        assert out.startswith("usage: crossdock") and len(out.splitlines()) > 4, args
    with pytest.raises(SystemExit) as exited:
        cli.main(["replay", "--consumer", "x"])
    assert exited.value.code == 2 and "--from-seq" in capsys.readouterr().err


def test_cli_reports_unreachable_nats(child_env: dict[str, str]) -> None:
    from tests.fixtures.ports import free_port

    result = crossdock("streams", "--nats-url", f"nats://127.0.0.1:{free_port()}", env=child_env)
    assert result.returncode == 3 and "cannot reach NATS" in result.stderr
