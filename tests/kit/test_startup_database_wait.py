"""A service started while its PostgreSQL is unreachable waits for it and then starts, instead
of exiting at its first query (a local mesh would leave it dead; Kubernetes would restart it
with a growing back-off). The service is a real process (the kit's run_service); the database
is reached through a loopback TCP relay the test keeps closed, then opens."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from services.kit.db_wait import retry_while_unavailable
from services.kit.migrations import (
    alembic_config,
    current_revision,
    migrate,
    service_script_location,
)
from tests.fixtures.nats import NatsServer
from tests.fixtures.tcp_relay import TcpRelay

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PREFIX = "CROSSDOCK_KITTEST_"


def log_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def wait_for_line(path: Path, message: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(line.get("message") == message for line in log_lines(path)):
            return True
        time.sleep(0.2)
    return False


def test_a_service_started_while_its_database_is_down_waits_and_then_starts(
    postgres_url: str, kittest_dir: Path, nats_server: NatsServer, tmp_path: Path
) -> None:
    url = make_url(postgres_url)
    relay = TcpRelay(url.host or "127.0.0.1", url.port or 5432)
    relay.start()
    port = relay.port
    relay.cut()  # down before the service starts: every connection refused
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env.pop("CROSSDOCK_FAULT", None)
    env["PYTHONPATH"] = os.pathsep.join([str(kittest_dir), str(REPO)])
    env.update(
        {
            PREFIX + "DB_URL": url.set(port=port).render_as_string(False),
            PREFIX + "NATS_URL": nats_server.url,
            PREFIX + "GRPC_PORT": "0",
            PREFIX + "METRICS_PORT": "0",
            PREFIX + "BIND_HOST": "127.0.0.1",
        }
    )
    log = tmp_path / "service.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.schema_registry.kit_service_app"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        assert wait_for_line(log, "starting", 60), log.read_text()[-3000:]
        time.sleep(3)
        # Still there, waiting (not ready, not exited).
        assert process.poll() is None, log.read_text()[-3000:]
        waiting = [line for line in log_lines(log) if line["level"] == "WARNING"]
        assert any("waiting for it before starting" in line["message"] for line in waiting)
        assert not any(line.get("message") == "ready" for line in log_lines(log))

        relay.start()  # the same port: the database is back

        assert wait_for_line(log, "ready", 60), log.read_text()[-3000:]
        assert any(
            line.get("message") == "the database answers; starting" for line in log_lines(log)
        )
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    assert code == 0, log.read_text()[-3000:]


async def test_migrating_at_start_waits_out_a_database_that_went_away_after_the_probe(
    postgres_url: str,
) -> None:
    """The start's probe passed, then PostgreSQL went away (restarting): the migration waits
    for it, then applies, instead of failing the start."""
    url = make_url(postgres_url)
    relay = TcpRelay(url.host or "127.0.0.1", url.port or 5432)
    relay.start()
    through_relay = url.set(port=relay.port).render_as_string(False)
    relay.cut()  # gone: every connection refused
    reopen = threading.Timer(1.5, relay.start)  # the database comes back after 1.5 s
    reopen.start()
    try:
        await retry_while_unavailable(
            migrate,
            through_relay,
            service_script_location("billing"),
            timeout_seconds=30,
            what="migrating",
        )
    finally:
        reopen.join()
        relay.cut()
    script = ScriptDirectory.from_config(
        alembic_config(postgres_url, service_script_location("billing"))
    )
    assert (
        current_revision(postgres_url, service_script_location("billing"))
        == script.get_current_head()
    )


async def test_migrating_at_start_fails_at_once_on_an_error_that_is_not_unavailability(
    postgres_url: str,
) -> None:
    missing = make_url(postgres_url).set(database="no_such_database").render_as_string(False)
    started = time.monotonic()
    with pytest.raises(sa_exc.OperationalError, match="no_such_database"):
        await retry_while_unavailable(
            migrate, missing, service_script_location("billing"), timeout_seconds=30, what="m"
        )
    assert time.monotonic() - started < 5
