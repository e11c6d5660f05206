"""Readiness checks: gRPC health SERVING, an HTTP 200, nats-server's JetStream health."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from localmesh.procs import Child


class StartFailed(RuntimeError):
    """A process exited or never became ready; the message carries its log's tail."""


class StartAborted(RuntimeError):
    """The start was interrupted (Ctrl-C) before the mesh was ready."""


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return 200 <= int(answer.status) < 300
    except (OSError, urllib.error.URLError):
        return False


def grpc_health(target: str, timeout: float = 2.0) -> str:
    """The overall ("") health status name of a gRPC server, or the error code's name."""
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else None
            return code.name if code is not None else "UNAVAILABLE"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))


def grpc_serving(target: str) -> Callable[[], bool]:
    return lambda: grpc_health(target, timeout=1.0) == "SERVING"


def http_ready(url: str) -> Callable[[], bool]:
    return lambda: http_ok(url)


def meta_leader(monitor_url: str, timeout: float = 1.0) -> tuple[str, int]:
    """A nats-server's view of its JetStream cluster: the meta leader's name ("" while there
    is none or the server cannot be read) and the cluster size."""
    try:
        with urllib.request.urlopen(monitor_url + "/jsz", timeout=timeout) as answer:
            meta = json.loads(answer.read()).get("meta_cluster") or {}
    except (OSError, urllib.error.URLError, ValueError):
        return "", 0
    return str(meta.get("leader") or ""), int(meta.get("cluster_size") or 0)


def jetstream_meta_leader(monitor_urls: list[str], size: int) -> Callable[[], bool]:
    """Ready once every node names the same meta leader in a cluster of `size`."""

    def ready() -> bool:
        views = {meta_leader(url) for url in monitor_urls}
        return len(views) == 1 and all(leader and seen == size for leader, seen in views)

    return ready


def up_for(child: Child, seconds: float) -> Callable[[], bool]:
    """Ready once the child has stayed up this long (a process with no endpoint to probe)."""
    return lambda: time.monotonic() - child.started_at >= seconds


def wait_ready(
    child: Child,
    ready: Callable[[], bool],
    *,
    deadline: float,
    abort: threading.Event | None = None,
) -> None:
    """Poll `ready` until true; StartFailed when the child exits or the deadline passes."""
    while True:
        if abort is not None and abort.is_set():
            raise StartAborted(f"start interrupted while waiting for {child.name}")
        if not child.alive:
            raise StartFailed(
                f"{child.name} exited with code {child.returncode} during start "
                f"(log: {child.log_path}):\n{child.log_tail()}"
            )
        if ready():
            return
        if time.monotonic() > deadline:
            raise StartFailed(
                f"{child.name} was not ready in time (log: {child.log_path}):\n{child.log_tail()}"
            )
        time.sleep(0.1)
