"""SIGTERM/SIGINT on a real service process: in-flight calls finish, hooks run, exit code 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from crossdock.order.v1 import order_service_pb2 as order
from crossdock.order.v1 import order_service_pb2_grpc as order_grpc

from tests.kit.server_support import ORDER_ID

REPO_ROOT = Path(__file__).resolve().parents[2]
PREFIX = "CROSSDOCK_KIT_DRAIN_TEST_"
GRACE_SECONDS = 15.0
HOOK_TIMEOUT_SECONDS = 5.0
IN_FLIGHT = 5
# Hang guards only: the test fails on a wrong outcome, never on being slow.
HANG_GUARD_SECONDS = 60.0


class ProcessLog:
    """The child's JSON log lines (stderr), read as they come."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._stream = stream
        self._changed = asyncio.Condition()

    async def pump(self) -> None:
        async for raw in self._stream:
            text = raw.decode(errors="replace").rstrip("\n")
            self.raw.append(text)
            try:
                line = json.loads(text)
            except json.JSONDecodeError:
                continue  # e.g. an interpreter crash; kept in `raw` for the failure message
            async with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    async def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool]
    ) -> list[dict[str, Any]]:
        async def until() -> list[dict[str, Any]]:
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self.lines))
                return self.lines

        try:
            return await asyncio.wait_for(until(), HANG_GUARD_SECONDS)
        except TimeoutError:
            pytest.fail("the service never logged what was expected:\n" + "\n".join(self.raw))

    def messages(self, message: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("message") == message]


def _child_env(hook_log: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CROSSDOCK_", "OTEL_"))
    }
    env.update(
        {
            PREFIX + "BIND_HOST": "127.0.0.1",
            PREFIX + "GRPC_PORT": "0",
            PREFIX + "METRICS_PORT": "0",
            PREFIX + "DB_URL": "sqlite:///:memory:",
            PREFIX + "SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
            PREFIX + "SHUTDOWN_HOOK_TIMEOUT_SECONDS": str(HOOK_TIMEOUT_SECONDS),
            PREFIX + "HOOK_LOG": str(hook_log),
        }
    )
    return env


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
async def test_stop_signal_drains_in_flight_calls_then_runs_hooks_and_exits_0(
    tmp_path: Path, signum: signal.Signals
) -> None:
    hook_log = tmp_path / "hooks.txt"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.kit.server_drain_app",
        cwd=REPO_ROOT,
        env=_child_env(hook_log),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    log = ProcessLog(process.stderr)
    pump = asyncio.ensure_future(log.pump())
    try:
        await log.wait_for(lambda lines: any(line["message"] == "ready" for line in lines))
        target = f"127.0.0.1:{log.messages('ready')[0]['grpc_port']}"
        request = order.GetOrderRequest(order_id=ORDER_ID)

        async with grpc.aio.insecure_channel(target) as channel:
            stub = order_grpc.OrderServiceStub(channel)
            calls = [
                asyncio.ensure_future(stub.GetOrder(request, timeout=HANG_GUARD_SECONDS))
                for _ in range(IN_FLIGHT)
            ]
            # Every call is inside its handler before the signal is sent.
            await log.wait_for(
                lambda lines: (
                    sum(line["message"] == "GetOrder started" for line in lines) >= IN_FLIGHT
                )
            )
            process.send_signal(signum)
            responses = await asyncio.gather(*calls)

        # The handlers only finish after draining began, so the server stopped accepting by now.
        async with grpc.aio.insecure_channel(target) as late_channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await order_grpc.OrderServiceStub(late_channel).GetOrder(request, timeout=10)

        exit_code = await asyncio.wait_for(process.wait(), HANG_GUARD_SECONDS)
        await pump
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert [r.order.order_id for r in responses] == [ORDER_ID] * IN_FLIGHT
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert exit_code == 0, "\n".join(log.raw)
    assert hook_log.read_text().splitlines() == ["flush-outbox", "close-consumers"]
    (complete,) = log.messages("shutdown complete")
    assert complete["clean"] is True
    assert log.messages(f"{signum.name} received")


@pytest.mark.slow
async def test_a_thread_that_never_ends_cannot_keep_the_process_alive_after_shutdown(
    tmp_path: Path,
) -> None:
    env = _child_env(tmp_path / "hooks.txt") | {PREFIX + "STUCK_THREAD": "true"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.kit.server_drain_app",
        cwd=REPO_ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    log = ProcessLog(process.stderr)
    pump = asyncio.ensure_future(log.pump())
    try:
        await log.wait_for(lambda lines: any(line["message"] == "ready" for line in lines))
        process.send_signal(signal.SIGTERM)
        exit_code = await asyncio.wait_for(process.wait(), HANG_GUARD_SECONDS)
        await pump
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert log.messages("shutdown complete")
    (forced,) = [line for line in log.lines if line["message"].startswith("still running")]
    assert forced["threads"] == ["stuck-forever"]
    assert exit_code == 1


async def test_missing_setting_exits_2_naming_the_variable(tmp_path: Path) -> None:
    env = _child_env(tmp_path / "hooks.txt")
    del env[PREFIX + "GRPC_PORT"]
    env[PREFIX + "METRICS_PORT"] = "nine-thousand"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.kit.server_drain_app",
        cwd=REPO_ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), HANG_GUARD_SECONDS)

    assert process.returncode == 2
    (line,) = [json.loads(text) for text in stderr.decode().splitlines()]
    assert line["level"] == "ERROR"
    problems = "\n".join(line["problems"])
    assert f"{PREFIX}GRPC_PORT is required" in problems
    assert f"{PREFIX}METRICS_PORT must be an integer" in problems
