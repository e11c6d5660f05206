"""Tracing: one trace from a gRPC caller through the handler's event headers to the consumer."""

from __future__ import annotations

import grpc
import pytest
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as order
from crossdock.order.v1 import order_service_pb2_grpc as order_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.kit.client import open_channel
from services.kit.config import ConfigError
from services.kit.request_context import CORRELATION_ID_KEY, current_correlation_id
from services.kit.telemetry import (
    consumer_span,
    context_from_headers,
    inject_trace_headers,
    producer_span,
    setup_telemetry,
)
from tests.kit.server_support import ORDER_ID, create_order_request, order_service, serving


class EventEmittingOrders(order_grpc.OrderServiceServicer):
    """CreateOrder "appends an outbox row": it records the headers the event would carry."""

    def __init__(self) -> None:
        self.event_headers: list[dict[str, str]] = []

    async def CreateOrder(
        self, request: order.CreateOrderRequest, context: grpc.aio.ServicerContext
    ) -> order.CreateOrderResponse:
        headers = {CORRELATION_ID_KEY: current_correlation_id() or ""}
        self.event_headers.append(inject_trace_headers(headers))
        return order.CreateOrderResponse(order=order_pb2.Order(order_id=ORDER_ID))


@pytest.fixture
def traced() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = setup_telemetry("order", exporter=exporter, set_global=False)
    assert provider is not None
    return provider, exporter


def _only(spans: tuple[ReadableSpan, ...], kind: trace.SpanKind) -> ReadableSpan:
    (span,) = [s for s in spans if s.kind == kind]
    return span


@pytest.mark.integration  # serves gRPC on loopback
async def test_grpc_call_handler_and_consumer_share_one_trace(
    traced: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = traced
    servicer = EventEmittingOrders()
    async with (
        serving(order_service(servicer), tracer_provider=provider) as server,
        open_channel(
            f"127.0.0.1:{server.port}", default_timeout_seconds=10, tracer_provider=provider
        ) as channel,
    ):
        await order_grpc.OrderServiceStub(channel).CreateOrder(
            create_order_request(), metadata=((CORRELATION_ID_KEY, "cid-trace-1"),)
        )
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as probe_channel:
            # Health probes are deliberately not traced (checked below: one SERVER span).
            await health_pb2_grpc.HealthStub(probe_channel).Check(health_pb2.HealthCheckRequest())
    (headers,) = servicer.event_headers
    with consumer_span(
        "crossdock.order.placed.v1 process",
        headers,
        tracer_provider=provider,
        attributes={"messaging.system": "nats"},
    ):
        consumer_correlation_id = current_correlation_id()
    provider.force_flush()

    spans = exporter.get_finished_spans()
    client = _only(spans, trace.SpanKind.CLIENT)
    server_span = _only(spans, trace.SpanKind.SERVER)
    consumer = _only(spans, trace.SpanKind.CONSUMER)
    trace_ids = {s.context.trace_id for s in (client, server_span, consumer)}
    assert len(trace_ids) == 1
    assert server_span.parent is not None and server_span.parent.span_id == client.context.span_id
    assert consumer.parent is not None and consumer.parent.span_id == server_span.context.span_id
    assert headers["traceparent"].split("-")[1] == format(trace_ids.pop(), "032x")
    assert consumer_correlation_id == "cid-trace-1"
    assert current_correlation_id() is None, "the consumer span restores the context"


def test_publish_span_sits_between_the_handler_and_the_consumer(
    traced: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = traced
    with provider.get_tracer("test").start_as_current_span("CreateOrder handler"):
        stored = inject_trace_headers({"ce-id": "evt-1"})
    with producer_span(
        "crossdock.order.placed.v1 publish", stored, tracer_provider=provider
    ) as published:
        pass
    with consumer_span("crossdock.order.placed.v1 process", published, tracer_provider=provider):
        pass

    spans = exporter.get_finished_spans()
    handler = next(s for s in spans if s.name == "CreateOrder handler")
    publish = _only(spans, trace.SpanKind.PRODUCER)
    consume = _only(spans, trace.SpanKind.CONSUMER)
    assert publish.parent is not None and publish.parent.span_id == handler.context.span_id
    assert consume.parent is not None and consume.parent.span_id == publish.context.span_id
    assert len({s.context.trace_id for s in spans}) == 1
    assert published["ce-id"] == "evt-1" and stored["traceparent"] != published["traceparent"]


def test_consumer_span_without_trace_headers_starts_a_new_trace(
    traced: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = traced
    with consumer_span("orphan process", {}, tracer_provider=provider) as span:
        assert span.get_span_context().is_valid

    (finished,) = exporter.get_finished_spans()
    assert finished.parent is None


def test_consumer_span_records_a_failure_and_reraises(
    traced: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = traced
    with (
        pytest.raises(ValueError, match="poison"),
        consumer_span("failing process", {}, tracer_provider=provider),
    ):
        raise ValueError("poison")

    (finished,) = exporter.get_finished_spans()
    assert finished.status.status_code == trace.StatusCode.ERROR
    assert finished.events[0].name == "exception"


def test_headers_round_trip_whatever_their_case(
    traced: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, _ = traced
    with provider.get_tracer("test").start_as_current_span("producer") as span:
        headers = inject_trace_headers({})
    shouted = {key.upper(): value for key, value in headers.items()}

    extracted = trace.get_current_span(context_from_headers(shouted)).get_span_context()
    assert extracted.trace_id == span.get_span_context().trace_id
    assert extracted.span_id == span.get_span_context().span_id


def test_no_span_means_no_trace_headers() -> None:
    assert inject_trace_headers({"a": "b"}) == {"a": "b"}


def test_with_tracing_off_an_event_keeps_its_correlation_id_and_headers() -> None:
    headers = {"ce-id": "ev-1", CORRELATION_ID_KEY.upper(): "corr-42"}
    with consumer_span("handle untraced", headers) as span:
        assert current_correlation_id() == "corr-42"
        assert not span.get_span_context().is_valid
        assert inject_trace_headers({}) == {}  # nothing to carry on
    assert current_correlation_id() is None
    with producer_span("publish untraced", headers) as outgoing:
        assert outgoing == headers and outgoing is not headers


def test_with_tracing_off_an_upstream_trace_still_flows_through(
    traced: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, _ = traced
    with provider.get_tracer("upstream").start_as_current_span("upstream") as upstream:
        headers = inject_trace_headers({"ce-id": "ev-2"})
    # This process traces nothing, but what its handler emits continues the caller's trace.
    with consumer_span("handle", headers):
        emitted = inject_trace_headers({})
    carried = trace.get_current_span(context_from_headers(emitted)).get_span_context()
    assert carried.trace_id == upstream.get_span_context().trace_id
    with producer_span("publish", emitted) as outgoing:
        published = trace.get_current_span(context_from_headers(outgoing)).get_span_context()
    assert published.trace_id == upstream.get_span_context().trace_id


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"},
    ],
)
def test_tracing_is_off_unless_an_exporter_is_named(environ: dict[str, str]) -> None:
    assert setup_telemetry("order", environ=environ, set_global=False) is None


def test_named_exporter_turns_tracing_on_with_the_service_name() -> None:
    provider = setup_telemetry(
        "order",
        environ={"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "order-eu"},
        set_global=False,
    )
    assert provider is not None
    try:
        assert provider.resource.attributes["service.name"] == "order-eu"
        assert provider.resource.attributes["service.namespace"] == "crossdock"
    finally:
        provider.shutdown()


def test_unknown_exporter_fails_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER names 'zipkin-ish'"):
        setup_telemetry("order", environ={"OTEL_TRACES_EXPORTER": "zipkin-ish"}, set_global=False)
