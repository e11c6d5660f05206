"""Process crashes (kill -9) and freezes (SIGSTOP past ack_wait): nothing lost, nothing twice.

The child processes are the kit's test service (tests/kit/app.py); CROSSDOCK_FAULT makes one
SIGKILL or SIGSTOP itself at a named point (services.kit.faults), so the crash lands exactly
between the two steps under test.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from nats.aio.client import Client as NATS

from services.kit import outbox
from services.kit.consumer import ConsumerSettings, EventConsumer
from services.kit.streams import ensure_streams
from tests.fixtures.events import stream_messages
from tests.fixtures.kittest.harness import (
    open_db,
    publish_event,
    read_effects,
    registry_for,
)
from tests.kit.test_consumer import drain
from tests.kit.test_relay import wait_until

pytestmark = pytest.mark.slow


def run_app(*args: str, env: dict[str, str], fault: str | None = None) -> int:
    child_env = dict(env)
    if fault:
        child_env["CROSSDOCK_FAULT"] = fault
    proc = subprocess.run(
        [sys.executable, "-m", "tests.kit.app", *args],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"app {args[0]} failed ({proc.returncode}): {proc.stderr[-3000:]}")
    return proc.returncode


@pytest.mark.parametrize(
    ("fault", "published_before_restart"),
    # The first relay batch carries all 6 rows (a1, b1, c1, then a2, b2, c2 after their
    # predecessors' acks): all 6 are in the stream when the crash after publish hits.
    [("relay.before_publish:kill", 0), ("relay.before_mark_sent:kill", 6)],
    ids=["after-commit-before-publish", "after-publish-before-mark-sent"],
)
async def test_kill_9_in_the_relay_loses_nothing_and_applies_once(
    fault: str,
    published_before_restart: int,
    db_url: str,
    pb: ModuleType,
    nats_client: NATS,
    nats_server,
    child_env: dict[str, str],  # type: ignore[no-untyped-def]
) -> None:
    js = nats_client.jetstream()
    await ensure_streams(js)
    common = ["--db-url", db_url, "--nats-url", nats_server.url]
    code = run_app(
        "produce", *common, "--things", "a,b,c", "--count", "2", env=child_env, fault=fault
    )
    assert code == -signal.SIGKILL  # really died, like kill -9

    db = open_db(db_url)
    pending, _ = await db.run(outbox.backlog)
    assert pending == 6  # committed before the crash, still pending
    assert (await js.stream_info("ORDER")).state.messages == published_before_restart

    assert run_app("relay", *common, env=child_env) == 0  # the restarted process
    assert (await db.run(outbox.backlog))[0] == 0
    messages = await stream_messages(js, "ORDER")
    ids = [m.headers["ce-id"] for m in messages]
    assert len(ids) == 6 and len(set(ids)) == 6  # republished copies were deduplicated

    consumer = EventConsumer(
        service="kittest",
        purpose="effects",
        stream="ORDER",
        registry=registry_for(pb, "kittest-effects"),
        db=db,
        nc=nats_client,
        settings=ConsumerSettings(fetch_timeout=0.3),
    )
    await consumer.ensure()
    await drain(consumer)
    applied = await db.run(read_effects)
    assert sorted(e[0] for e in applied) == sorted(ids)  # every event, each exactly once
    await db.close()


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.mark.parametrize("point", ["consumer.before_ack", "consumer.before_commit"])
async def test_consumer_frozen_past_ack_wait_applies_once(
    point: str,
    db_url: str,
    pb: ModuleType,
    nats_client: NATS,
    nats_server,  # type: ignore[no-untyped-def]
    child_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """Replica A freezes mid-batch (SIGSTOP) past ack_wait; JetStream redelivers to replica B;
    A is then SIGCONTed and finishes its batch. The effect is applied once."""
    js = nats_client.jetstream()
    await ensure_streams(js)
    db = open_db(db_url)
    common = ["--db-url", db_url, "--nats-url", nats_server.url, "--ack-wait", "2"]

    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, fault: str | None) -> subprocess.Popen[bytes]:
        env = dict(child_env)
        if fault:
            env["CROSSDOCK_FAULT"] = fault
        replica = [] if fault else ["--replica"]
        stats = ["--stats", str(tmp_path / f"{name}.json")]
        with open(tmp_path / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.kit.app", "consume", *common, *replica, *stats],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        procs.append(proc)
        return proc

    def started(name: str, proc: subprocess.Popen[bytes]) -> bool:
        if proc.poll() is not None:
            raise AssertionError((tmp_path / f"{name}.log").read_text()[-3000:])
        return (tmp_path / f"{name}.ready").exists()

    try:
        a = start("a", f"{point}:stop")
        await wait_until(lambda: started("a", a), timeout=30)
        await publish_event(js, pb.ThingHappened(thing_id="t-1", n=1), event_id="ev-frozen")
        await wait_until(lambda: _state(a.pid) == "T", timeout=15)  # A froze inside the batch

        b = start("b", None)
        await wait_until(lambda: started("b", b), timeout=30)

        # Past ack_wait (2 s) JetStream redelivers the message to B.
        async def redelivered() -> bool:
            info = await js.consumer_info("ORDER", "kittest-effects")
            return info.num_redelivered > 0 or info.delivered.consumer_seq >= 2

        await wait_until(redelivered, timeout=20)
        await asyncio.sleep(1.0)  # let B work on it while A is still frozen
        os.kill(a.pid, signal.SIGCONT)

        async def settled() -> bool:
            info = await js.consumer_info("ORDER", "kittest-effects")
            return info.num_ack_pending == 0 and info.num_pending == 0

        await wait_until(settled, timeout=30)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert await db.run(read_effects) == [("ev-frozen", "t-1", 1)]
    stats = [json.loads((tmp_path / f"{n}.json").read_text()) for n in ("a", "b")]
    assert sum(s["applied"] for s in stats) == 1
    assert sum(s["redeliveries"] for s in stats) >= 1  # the redelivery really happened
    await db.close()
