"""The gateway's Prometheus metrics: the kit's (webhook consumers, outbox-less) plus HTTP.

Labels stay low-cardinality: the method and the status code, never the path (ids are in it).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from services.kit.metrics import ServiceMetrics


class GatewayMetrics:
    def __init__(self, service: ServiceMetrics | None = None) -> None:
        self.service = service or ServiceMetrics("gateway")
        self.http_requests = Counter(
            "crossdock_http_requests",
            "Partner API requests answered, by method and status code.",
            ["method", "code"],
            registry=self.service.registry,
        )
        self.http_latency = Histogram(
            "crossdock_http_request_seconds",
            "Time to answer a partner API request, by method.",
            ["method"],
            registry=self.service.registry,
        )

        # The labelled children, looked up once per (method, status): `labels()` per request
        # cost more than the increment and observation themselves.
        self._children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, status: int, seconds: float) -> None:
        children = self._children.get((method, status))
        if children is None:
            children = (
                self.http_requests.labels(method, str(status)),
                self.http_latency.labels(method),
            )
            self._children[(method, status)] = children
        requests, latency = children
        requests.inc()
        latency.observe(seconds)
