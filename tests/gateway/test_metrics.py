"""The partner API's request metrics, counted per method and status code."""

from __future__ import annotations

import pytest

from gateway.metrics import GatewayMetrics


def sample(metrics: GatewayMetrics, name: str, labels: dict[str, str]) -> float | None:
    return metrics.service.registry.get_sample_value(name, labels)


def test_requests_are_counted_per_method_and_status_and_timed_per_method() -> None:
    metrics = GatewayMetrics()
    metrics.observe("POST", 200, 0.002)
    metrics.observe("POST", 200, 0.004)
    metrics.observe("POST", 429, 0.001)
    metrics.observe("GET", 200, 0.003)
    counted = "crossdock_http_requests_total"
    assert sample(metrics, counted, {"method": "POST", "code": "200"}) == 2
    assert sample(metrics, counted, {"method": "POST", "code": "429"}) == 1
    assert sample(metrics, counted, {"method": "GET", "code": "200"}) == 1
    timed = "crossdock_http_request_seconds"
    assert sample(metrics, f"{timed}_count", {"method": "POST"}) == 3
    assert sample(metrics, f"{timed}_sum", {"method": "POST"}) == pytest.approx(0.007)
