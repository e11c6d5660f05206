"""OpenTelemetry tracing: one trace from a caller through gRPC, the outbox and a consumer.

- `setup_telemetry` builds a TracerProvider from the standard variables. It is OFF unless
  OTEL_TRACES_EXPORTER names an exporter (`console`, `otlp` if an OTLP exporter package is
  installed, or any other registered exporter); `none`, unset, or OTEL_SDK_DISABLED=true leave
  tracing off (zero cost). `otlp` means OTLP over gRPC unless OTEL_EXPORTER_OTLP_PROTOCOL (or
  its _TRACES_ form) says `http/protobuf`, as in the SDK's own autoconfiguration.
  OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER, OTEL_BSP_* and the
  exporter's OTEL_EXPORTER_OTLP_* (read from the process environment) are honoured by the SDK.
  Tests pass `exporter=InMemorySpanExporter()`.
- gRPC spans come from opentelemetry-instrumentation-grpc's grpc.aio interceptors, added
  explicitly by the kit's server and channels (no monkey-patching of grpc.aio).
- Events carry W3C `traceparent`/`tracestate` headers: `inject_trace_headers` when the outbox row
  is written (inside the handler's span), optionally `producer_span` when the relay publishes it,
  and `consumer_span` around the consumer's handler.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from importlib.metadata import entry_points
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.instrumentation.grpc.filters import any_of, negate, service_prefix
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.util.types import Attributes

from services.kit.config import ConfigError
from services.kit.request_context import (
    CORRELATION_ID_KEY,
    accept_correlation_id,
    correlation_scope,
)

__all__ = [
    "active_tracer_provider",
    "consumer_span",
    "context_from_headers",
    "grpc_client_interceptors",
    "grpc_server_interceptor",
    "inject_trace_headers",
    "producer_span",
    "setup_telemetry",
    "shutdown_telemetry",
]

log = logging.getLogger(__name__)

_TRACER_NAME = "crossdock.kit"
_EXPORTER_ENTRY_POINTS = "opentelemetry_traces_exporter"
_active: TracerProvider | None = None


def setup_telemetry(
    service: str,
    *,
    environ: Mapping[str, str] | None = None,
    exporter: SpanExporter | None = None,
    set_global: bool = True,
) -> TracerProvider | None:
    """Configure tracing for a service; None when tracing is off.

    `exporter` (tests) bypasses OTEL_TRACES_EXPORTER and exports each span synchronously.
    `set_global=False` leaves the process-wide provider alone, so tests can build several.
    """
    global _active
    env = os.environ if environ is None else environ
    if exporter is not None:
        processors: list[SimpleSpanProcessor | BatchSpanProcessor] = [SimpleSpanProcessor(exporter)]
    else:
        if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return None
        names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "none").split(",")]
        names = [n for n in names if n and n != "none"]
        if not names:
            return None
        processors = [BatchSpanProcessor(_load_exporter(name, env)) for name in names]
    service_name = env.get("OTEL_SERVICE_NAME") or service
    resource = Resource.create({"service.namespace": "crossdock", "service.name": service_name})
    provider = TracerProvider(resource=resource)
    for processor in processors:
        provider.add_span_processor(processor)
    if set_global:
        trace.set_tracer_provider(provider)
        _active = provider
    log.info("tracing on", extra={"otel_service_name": service_name})
    return provider


# `otlp` is an alias: each OTLP exporter package registers its own entry point, by protocol.
_OTLP_ENTRY_POINT_BY_PROTOCOL = {
    "grpc": ("otlp_proto_grpc", "opentelemetry-exporter-otlp-proto-grpc"),
    "http/protobuf": ("otlp_proto_http", "opentelemetry-exporter-otlp-proto-http"),
}


def _load_exporter(name: str, env: Mapping[str, str]) -> SpanExporter:
    """An exporter registered under `name` (the mechanism the OTel SDK's autoconfigure uses)."""
    entry_point, package = name, ""
    if name == "otlp":
        protocol = (
            env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "grpc"
        ).strip()
        if protocol not in _OTLP_ENTRY_POINT_BY_PROTOCOL:
            known = ", ".join(sorted(_OTLP_ENTRY_POINT_BY_PROTOCOL))
            raise ConfigError([f"OTEL_EXPORTER_OTLP_PROTOCOL {protocol!r} is not one of: {known}"])
        entry_point, package = _OTLP_ENTRY_POINT_BY_PROTOCOL[protocol]
    found = entry_points(group=_EXPORTER_ENTRY_POINTS, name=entry_point)
    if not found:
        hint = f" (pip install {package})" if package else ""
        raise ConfigError([f"OTEL_TRACES_EXPORTER names {name!r}, which is not installed{hint}"])
    exporter_class: Any = next(iter(found)).load()
    exporter: SpanExporter = exporter_class()
    return exporter


def active_tracer_provider() -> TracerProvider | None:
    """The provider `setup_telemetry` installed globally, or None when tracing is off."""
    return _active


def shutdown_telemetry() -> None:
    """Flush and stop the global provider (at the end of a graceful shutdown)."""
    global _active
    if _active is not None:
        _active.shutdown()
        _active = None


# ---- gRPC -----------------------------------------------------------------------------------


# The instrumentation package is untyped; these two functions are its typed doorway.


def grpc_server_interceptor(
    tracer_provider: TracerProvider,
) -> grpc.aio.ServerInterceptor[Any, Any]:
    """The instrumentation's grpc.aio server interceptor (continues the caller's trace).

    Health probes and reflection are not traced: a probe every few seconds per pod would bury
    the business traces.
    """
    untraced = any_of(service_prefix("grpc.health.v1."), service_prefix("grpc.reflection."))
    interceptor: grpc.aio.ServerInterceptor[Any, Any] = aio_server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=tracer_provider, filter_=negate(untraced)
    )
    return interceptor


def grpc_client_interceptors(tracer_provider: TracerProvider) -> list[Any]:
    """The instrumentation's grpc.aio client interceptors (inject `traceparent` on calls)."""
    interceptors: list[Any] = aio_client_interceptors(  # type: ignore[no-untyped-call]
        tracer_provider=tracer_provider
    )
    return interceptors


# ---- events ---------------------------------------------------------------------------------


def inject_trace_headers(headers: dict[str, str]) -> dict[str, str]:
    """Add `traceparent` (and `tracestate`) of the current span to `headers`; returns it.

    Call while the handler's span is current, e.g. when appending an outbox row. Adds nothing
    when no span is active, so events from untraced code simply start a new trace downstream.
    """
    propagate.inject(headers)
    return headers


def context_from_headers(headers: Mapping[str, str]) -> otel_context.Context:
    """The trace context carried by event headers (header names compared case-insensitively)."""
    return propagate.extract({key.lower(): value for key, value in headers.items()})


# Headers that carry trace context or baggage onward (W3C trace context and baggage).
_PROPAGATED = ("traceparent", "tracestate", "baggage")


def _untraced(provider: TracerProvider | None, lowered: Mapping[str, str]) -> bool:
    """True when a span would be a no-op: tracing is off in this process (no provider of ours,
    none set globally) and the event carries no trace context or baggage to pass on. Measured:
    the consumer scope 18 → 9 µs per event (the correlation id stays), the producer's 18 → 4 µs.
    """
    return (
        provider is None
        and isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        and not any(key in lowered for key in _PROPAGATED)
    )


@contextmanager
def consumer_span(
    name: str,
    headers: Mapping[str, str],
    *,
    tracer_provider: TracerProvider | None = None,
    attributes: Attributes = None,
) -> Iterator[trace.Span]:
    """Run a consumer's handler in a CONSUMER span that continues the event's trace.

    Also binds the event's correlation id (header `x-correlation-id`), so the handler's logs and
    the events it emits carry the id of the call that started it all. An exception escaping the
    block is recorded on the span and re-raised.
    """
    provider = tracer_provider if tracer_provider is not None else _active
    lowered = {key.lower(): value for key, value in headers.items()}
    if _untraced(provider, lowered):
        # Nothing would be recorded or carried on: skip the context and the non-recording span.
        correlation_id = lowered.get(CORRELATION_ID_KEY)
        if not correlation_id:
            yield trace.INVALID_SPAN
            return
        with correlation_scope(accept_correlation_id(correlation_id)):
            yield trace.INVALID_SPAN
        return
    tracer = trace.get_tracer(_TRACER_NAME, tracer_provider=provider)
    with ExitStack() as stack:
        correlation_id = lowered.get(CORRELATION_ID_KEY)
        if correlation_id:
            stack.enter_context(correlation_scope(accept_correlation_id(correlation_id)))
        # Attach the extracted context (not just parent the span on it) so baggage follows too.
        token = otel_context.attach(propagate.extract(lowered))
        stack.callback(otel_context.detach, token)
        span = stack.enter_context(
            tracer.start_as_current_span(name, kind=trace.SpanKind.CONSUMER, attributes=attributes)
        )
        yield span


@contextmanager
def producer_span(
    name: str,
    headers: Mapping[str, str],
    *,
    tracer_provider: TracerProvider | None = None,
    attributes: Attributes = None,
) -> Iterator[dict[str, str]]:
    """A PRODUCER span for publishing a stored event; yields the headers to publish.

    The span continues the trace stored with the outbox row (the relay runs long after the
    request that wrote it), and the yielded copy of `headers` points `traceparent` at this span,
    so the consumer's span becomes its child: caller → gRPC → publish → consume.
    """
    provider = tracer_provider if tracer_provider is not None else _active
    if _untraced(provider, {key.lower(): value for key, value in headers.items()}):
        yield dict(headers)  # no span, and no trace context to carry on
        return
    tracer = trace.get_tracer(_TRACER_NAME, tracer_provider=provider)
    with tracer.start_as_current_span(
        name,
        context=context_from_headers(headers),
        kind=trace.SpanKind.PRODUCER,
        attributes=attributes,
    ):
        outgoing = {
            key: value
            for key, value in headers.items()
            if key.lower() not in ("traceparent", "tracestate")
        }
        yield inject_trace_headers(outgoing)
