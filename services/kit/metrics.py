"""Prometheus metrics for one service, on the service's own CollectorRegistry.

A registry per service (never the global one) lets several services run in one test process
without colliding, and makes each service's /metrics page its own. The scrape target (job,
instance) says which service it is, so metrics carry no `service` label.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.exposition import generate_latest

# Handler latency buckets: sub-millisecond DB work up to multi-second stalls.
_LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


class ServiceMetrics:
    """Every metric the kit records, created once per service."""

    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # Outbox (relay).
        self.outbox_backlog = Gauge(
            "crossdock_outbox_backlog",
            "Outbox events committed but not yet published.",
            registry=r,
        )
        self.outbox_oldest_age = Gauge(
            "crossdock_outbox_oldest_age_seconds",
            "Age of the oldest unpublished outbox event (0 when the backlog is empty).",
            registry=r,
        )
        # Which replica publishes: 1 on the relay's leader, 0 elsewhere (one per database).
        self.relay_leader = Gauge(
            "crossdock_relay_leader",
            "1 while this process holds the outbox relay's leadership, else 0.",
            registry=r,
        )
        self.events_published = Counter(
            "crossdock_events_published",
            "Events published by the relay and acked by JetStream.",
            ["subject"],
            registry=r,
        )
        # One batch is one publish flush and one transaction marking it sent.
        self.relay_batch_size = Histogram(
            "crossdock_relay_batch_size",
            "Events the relay published and marked sent together.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
            registry=r,
        )
        self.publish_failures = Counter(
            "crossdock_relay_publish_failures",
            "Outbox events whose publish was not acked (retried later).",
            ["reason"],
            registry=r,
        )
        # Consumers.
        self.consumer_lag = Gauge(
            "crossdock_consumer_lag",
            "Stream messages not yet delivered to the durable consumer (num_pending).",
            ["consumer", "stream"],
            registry=r,
        )
        self.consumer_redeliveries = Counter(
            "crossdock_consumer_redeliveries",
            "Messages received with num_delivered > 1.",
            ["consumer"],
            registry=r,
        )
        self.consumer_events = Counter(
            "crossdock_consumer_events",
            "Messages handled, by outcome (applied, duplicate, retried, dead_lettered, ignored).",
            ["consumer", "outcome"],
            registry=r,
        )
        # Small batches mean a transaction (and its fixed cost) per message or two: the first
        # thing to look at when a consumer's CPU per event rises at low rates.
        self.consumer_batch_size = Histogram(
            "crossdock_consumer_batch_size",
            "Messages per batch a consumer took and applied in one transaction.",
            ["consumer"],
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
            registry=r,
        )
        self.handler_latency = Histogram(
            "crossdock_handler_latency_seconds",
            "Time spent in an event handler.",
            ["consumer", "type"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.dlq_events = Counter(
            "crossdock_dlq_events",
            "Events this service dead-lettered, by reason.",
            ["consumer", "reason"],
            registry=r,
        )
        # gRPC: defined here so every metric lives in one registry; incremented by the server's
        # interceptor with the method's full name and the status code name (e.g. "OK").
        self.grpc_requests = Counter(
            "crossdock_grpc_requests",
            "gRPC requests served, by method and status code.",
            ["method", "code"],
            registry=r,
        )

    def exposition(self) -> bytes:
        """The Prometheus text format of this service's metrics."""
        return generate_latest(self.registry)


@dataclass
class MetricsServer:
    """A running /metrics HTTP endpoint; `port` is the bound port (useful with port=0)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_metrics(metrics: ServiceMetrics, host: str = "127.0.0.1", port: int = 0) -> MetricsServer:
    """Serve the service's registry over HTTP on a daemon thread (port 0 picks a free port)."""
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    return MetricsServer(server, thread)
