"""Streams declared in code, and the per-service Prometheus metrics."""

from __future__ import annotations

import urllib.request

import pytest
from nats.aio.client import Client as NATS

from services.kit.metrics import ServiceMetrics, serve_metrics
from services.kit.streams import (
    DOMAIN_STREAMS,
    StreamSettings,
    ensure_streams,
    stream_for_subject,
)


async def test_ensure_streams_creates_then_is_idempotent_then_updates_drift(
    nats_client: NATS,
) -> None:
    js = nats_client.jetstream()
    created = await ensure_streams(js)
    assert sorted(created) == sorted([*DOMAIN_STREAMS.values(), "DLQ"])
    assert await ensure_streams(js) == []  # a second start changes nothing

    order = await js.stream_info("ORDER")
    assert order.config.subjects == ["crossdock.order.>"]
    assert order.config.storage == "file"
    assert order.config.duplicate_window == pytest.approx(600)
    assert (await js.stream_info("RETURN")).config.subjects == ["crossdock.return.>"]
    assert (await js.stream_info("DLQ")).config.subjects == ["crossdock.dlq.>"]

    changed = await ensure_streams(js, StreamSettings(max_age_seconds=3600))
    assert "ORDER" in changed and "DLQ" not in changed
    assert (await js.stream_info("ORDER")).config.max_age == pytest.approx(3600)


def test_subjects_map_to_their_domain_stream() -> None:
    assert stream_for_subject("crossdock.order.placed.v1") == "ORDER"
    assert stream_for_subject("crossdock.return.authorized.v1") == "RETURN"
    assert stream_for_subject("crossdock.carrier.tracking_updated.v1") == "CARRIER"
    assert stream_for_subject("crossdock.dlq.billing-invoicing") == "DLQ"
    with pytest.raises(ValueError):
        stream_for_subject("crossdock.nowhere.x.v1")


@pytest.mark.integration  # serves metrics over HTTP
def test_each_service_has_its_own_registry_and_endpoint() -> None:
    order, billing = ServiceMetrics("order"), ServiceMetrics("billing")
    order.grpc_requests.labels("/crossdock.order.v1.OrderService/CreateOrder", "OK").inc()
    order.outbox_backlog.set(7)
    billing.consumer_lag.labels("billing-invoicing", "SHIPMENT").set(3)
    billing.handler_latency.labels("billing-invoicing", "x.Y").observe(0.002)

    server = serve_metrics(order, port=0)
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            page = response.read().decode()
    finally:
        server.close()
    assert (
        'crossdock_grpc_requests_total{code="OK",method="/crossdock.order.v1.OrderService/' in page
    )
    assert "crossdock_outbox_backlog 7.0" in page
    assert "crossdock_consumer_lag{" not in page  # billing's series stay in billing's registry
    billing_page = billing.exposition().decode()
    assert 'crossdock_consumer_lag{consumer="billing-invoicing",stream="SHIPMENT"} 3.0' in (
        billing_page
    )
    assert "crossdock_handler_latency_seconds_bucket" in billing_page


def test_every_catalog_event_has_a_stream_and_registers() -> None:
    """The real generated events plug into the kit with no change: each one routes to a
    declared stream and registers by its message class."""
    from services.kit.catalog import load_catalog
    from services.kit.handlers import HandlerRegistry

    catalog = load_catalog()
    assert catalog, "the contracts declare no events"
    registry = HandlerRegistry()
    for event in catalog:
        assert stream_for_subject(event.subject) in DOMAIN_STREAMS.values()
        registry.add(event.message_class, lambda event, headers, conn: None)
    assert registry.subjects() == sorted(event.subject for event in catalog)
