"""One trace id covers a gRPC call, the outbox publish and the consumer handler, through the real
pipeline: the handler appends an outbox row in a unit of work, the relay publishes it to a real
JetStream, and a durable consumer applies it. Nothing here fakes the transport."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import ModuleType

import grpc
import pytest
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as order
from crossdock.order.v1 import order_service_pb2_grpc as order_grpc
from nats.aio.client import Client as NATS
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import Connection

from services.kit import outbox
from services.kit.client import open_channel
from services.kit.runtime import EventRuntime, open_event_runtime
from services.kit.telemetry import setup_telemetry
from tests.fixtures.kittest.harness import MIGRATIONS, SERVICE, read_effects, registry_for
from tests.fixtures.nats import NatsServer
from tests.kit.server_support import ORDER_ID, create_order_request, order_service, serving


class AppendingOrders(order_grpc.OrderServiceServicer):
    """CreateOrder appends one ThingHappened event in a unit of work, as a real service does."""

    def __init__(self, pb: ModuleType) -> None:
        self.pb = pb
        self.runtime: EventRuntime | None = None

    async def CreateOrder(
        self, request: order.CreateOrderRequest, context: grpc.aio.ServicerContext
    ) -> order.CreateOrderResponse:
        assert self.runtime is not None

        def write(conn: Connection) -> str:
            event = self.pb.ThingHappened(thing_id="thing-1", n=1)
            return outbox.append(conn, event, "thing-1", correlation_id="cid-pipeline")

        await self.runtime.db.run(write)
        return order.CreateOrderResponse(order=order_pb2.Order(order_id=ORDER_ID))


def _one(spans: tuple[ReadableSpan, ...], kind: trace.SpanKind) -> ReadableSpan:
    matching = [s for s in spans if s.kind == kind]
    assert len(matching) == 1, [s.name for s in matching]
    return matching[0]


@pytest.mark.slow
async def test_one_trace_from_grpc_call_through_outbox_to_consumer(
    pb: ModuleType, nats_server: NatsServer, nats_client: NATS, tmp_path: Path
) -> None:
    # `nats_client` wiped the streams: the consumer below reads the whole ORDER stream, so an
    # earlier test's events would count as effects.
    exporter = InMemorySpanExporter()
    provider: TracerProvider | None = setup_telemetry(SERVICE, exporter=exporter, set_global=False)
    assert provider is not None
    servicer = AppendingOrders(pb)
    db_url = f"sqlite:///{tmp_path / 'trace.db'}"

    async with serving(
        order_service(servicer), tracer_provider=provider, service=SERVICE
    ) as server:
        runtime = await open_event_runtime(
            service=SERVICE,
            db_url=db_url,
            nats_url=nats_server.url,
            registry=registry_for(pb, consumer="trace-test"),
            purpose="trace",
            migrations=MIGRATIONS,
            tracer_provider=provider,
        )
        servicer.runtime = runtime
        try:
            async with open_channel(
                f"127.0.0.1:{server.port}", default_timeout_seconds=10, tracer_provider=provider
            ) as channel:
                await order_grpc.OrderServiceStub(channel).CreateOrder(create_order_request())
            for _ in range(200):  # bounded wait for the consumer's effect, not a timing assertion
                if await runtime.db.run(read_effects):
                    break
                await asyncio.sleep(0.05)
            assert len(await runtime.db.run(read_effects)) == 1
        finally:
            await runtime.close()
    provider.force_flush()

    spans = exporter.get_finished_spans()
    client = _one(spans, trace.SpanKind.CLIENT)
    server_span = _one(spans, trace.SpanKind.SERVER)
    publish = _one(spans, trace.SpanKind.PRODUCER)
    handle = _one(spans, trace.SpanKind.CONSUMER)
    assert len({s.context.trace_id for s in (client, server_span, publish, handle)}) == 1
    # caller → gRPC handler → relay publish → consumer handler, each the parent of the next.
    assert server_span.parent is not None and server_span.parent.span_id == client.context.span_id
    assert publish.parent is not None and publish.parent.span_id == server_span.context.span_id
    assert handle.parent is not None and handle.parent.span_id == publish.context.span_id
    assert publish.name == "publish crossdock.order.thing_happened.v1"
