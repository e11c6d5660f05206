"""The wired service as a process: env config, both APIs on one store, clean SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from crossdock.events.v1 import order_events_pb2

from services.kit.registry_client import SchemaRegistryClient
from tests.fixtures.ports import free_port

REPO = Path(__file__).resolve().parents[2]
PREFIX = "CROSSDOCK_SCHEMA_REGISTRY_"


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env["PYTHONPATH"] = str(REPO)
    env.update({PREFIX + key: value for key, value in settings.items()})
    return env


def _read(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
    return body


def _wait_until_serving(proc: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 60  # a readiness wait, not a timing assertion
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stderr = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"the registry exited early: {stderr}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError("the registry never served HTTP")


async def test_the_service_serves_both_apis_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    grpc_port, http_port = free_port(), free_port()
    env = _env(
        DB_URL=f"sqlite:///{tmp_path / 'registry.db'}",
        GRPC_HOST="127.0.0.1",
        GRPC_PORT=str(grpc_port),
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=str(http_port),
        METRICS_PORT="0",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.schema_registry.main"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await asyncio.to_thread(_wait_until_serving, proc, f"http://127.0.0.1:{http_port}/")
        async with SchemaRegistryClient(f"127.0.0.1:{grpc_port}", timeout_seconds=20) as client:
            schema = await client.register_message(
                order_events_pb2.OrderPlaced, "crossdock.order.placed.v1"
            )
        url = f"http://127.0.0.1:{http_port}/subjects/crossdock.order.placed.v1/versions/latest"
        body = await asyncio.to_thread(_read, url)
        assert b'"id":%d' % schema.schema_id in body
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(proc.communicate, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert b"shutdown complete" in stderr


def test_missing_settings_fail_fast_naming_each_variable(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.schema_registry.main"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    for name in ("DB_URL", "GRPC_PORT", "HTTP_PORT", "METRICS_PORT"):
        assert PREFIX + name in result.stderr
