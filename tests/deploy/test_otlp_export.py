"""The manifests' tracing settings really export spans over OTLP.

A real schema-registry process runs with the OTEL_* variables the rendered prod overlay gives it
(only the collector's address is swapped for an in-process OTLP/gRPC receiver on loopback, and
OTEL_SERVICE_NAME is resolved from the pod label as the downward API would). One gRPC call, a
SIGTERM (which flushes the batch processor), and the receiver must hold the call's span.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import pytest
from crossdock.events.v1 import order_events_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from services.kit.config import ConfigError
from services.kit.registry_client import SchemaRegistryClient
from services.kit.telemetry import setup_telemetry
from tests.deploy.k8s import REPO, one, rendered
from tests.deploy.tracing import resolved_env
from tests.fixtures.ports import free_port

PREFIX = "CROSSDOCK_SCHEMA_REGISTRY_"


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver, as the collector runs one: keeps every export request."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self._lock = threading.Lock()

    def Export(  # the generated servicer's method name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self._lock:
            self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> list[tuple[dict[str, str], Span]]:
        """(resource attributes, span) for every span received."""
        with self._lock:
            return [
                (_attributes(resource_spans.resource.attributes), span)
                for request in self.requests
                for resource_spans in request.resource_spans
                for scope_spans in resource_spans.scope_spans
                for span in scope_spans.spans
            ]


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, str]:
    return {kv.key: kv.value.string_value for kv in pairs}


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, int]]:
    servicer = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    add_servicer: Any = trace_service_pb2_grpc.add_TraceServiceServicer_to_server  # untyped
    add_servicer(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, port
    finally:
        server.stop(grace=None)


def _manifest_tracing_env(receiver_port: int) -> dict[str, str]:
    """schema-registry's OTEL_* from the prod overlay, pointed at the local receiver."""
    deployment = one(rendered("prod"), "Deployment", "schema-registry")
    assert deployment is not None
    env = {k: v for k, v in resolved_env(deployment).items() if k.startswith("OTEL_")}
    endpoint = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert endpoint.hostname == "otel-collector"  # what we swap is the collector's address
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"{endpoint.scheme}://127.0.0.1:{receiver_port}"
    return env


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


@pytest.mark.integration  # a service process and a gRPC receiver on loopback
async def test_a_service_call_reaches_the_collector_over_otlp(
    tmp_path: Path, receiver: tuple[Receiver, int]
) -> None:
    servicer, receiver_port = receiver
    grpc_port, http_port = free_port(), free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith((PREFIX, "OTEL_"))
    } | _manifest_tracing_env(receiver_port)
    env["PYTHONPATH"] = str(REPO)
    settings = {
        "DB_URL": f"sqlite:///{tmp_path / 'registry.db'}",
        "GRPC_HOST": "127.0.0.1",
        "GRPC_PORT": str(grpc_port),
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(http_port),
        "METRICS_PORT": "0",
    }
    env |= {PREFIX + key: value for key, value in settings.items()}
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
            await client.register_message(order_events_pb2.OrderPlaced, "crossdock.order.placed.v1")
        proc.send_signal(signal.SIGTERM)  # the graceful shutdown flushes the span processor
        _, stderr = await asyncio.to_thread(proc.communicate, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr.decode()[-2000:]

    server_spans = [
        (resource, span)
        for resource, span in servicer.spans()
        if span.kind == Span.SPAN_KIND_SERVER
        and span.name.startswith("/crossdock.registry.v1.SchemaRegistryService/")
    ]
    assert server_spans, f"no registry span among {[s.name for _, s in servicer.spans()]}"
    resource, _ = server_spans[0]
    assert resource["service.name"] == "schema-registry"
    assert resource["service.namespace"] == "crossdock"


def test_an_unknown_otlp_protocol_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL 'http/json' is not one of"):
        setup_telemetry(
            "order",
            environ={"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            set_global=False,
        )


def test_the_traces_protocol_overrides_the_general_one() -> None:
    environ = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",  # would be refused, as above
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
    }
    provider = setup_telemetry("order", environ=environ, set_global=False)
    assert provider is not None
    provider.shutdown()
