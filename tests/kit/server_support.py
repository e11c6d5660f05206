"""Helpers for the kit's gRPC server tests: a real server on a free port, requests, log capture."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from crossdock.common.v1 import common_pb2
from crossdock.order.v1 import order_service_pb2 as order
from crossdock.order.v1 import order_service_pb2_grpc as order_grpc
from opentelemetry.sdk.trace import TracerProvider

from services.kit.client import open_channel
from services.kit.logging import JsonFormatter
from services.kit.metrics import ServiceMetrics
from services.kit.server import ServiceServer

ORDER_SERVICE = order.DESCRIPTOR.services_by_name["OrderService"]
ORDER_ID = "ord_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"
PARTNER_ID = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"


def create_order_request() -> order.CreateOrderRequest:
    """A CreateOrderRequest that satisfies every contract rule."""
    return order.CreateOrderRequest(
        partner_id=PARTNER_ID,
        order=order.OrderInput(
            external_order_id="PO-1001",
            customer=common_pb2.PartyRef(party_id="C-77", name="Ada Lovelace"),
            ship_to=common_pb2.Address(
                name="Ada Lovelace",
                lines=["12 Dock Road"],
                city="Portland",
                region="OR",
                postal_code="97201",
                country_code="US",
            ),
            currency_code="USD",
            lines=[
                order.OrderLineInput(
                    sku="SKU-1",
                    quantity=2,
                    unit_price=common_pb2.Money(currency_code="USD", units=19),
                )
            ],
        ),
    )


@asynccontextmanager
async def serving(
    *registrations: tuple[Callable[[Any, Any], None], Any, Any],
    metrics: ServiceMetrics | None = None,
    tracer_provider: TracerProvider | None = None,
    service: str = "kit-test",
) -> AsyncIterator[ServiceServer]:
    """A started ServiceServer on 127.0.0.1 and a free port; shut down on exit.

    Each registration is (add_to_server, servicer, service descriptor or name).
    """
    server = ServiceServer(
        service,
        host="127.0.0.1",
        port=0,
        grace_seconds=0,
        metrics=metrics,
        tracer_provider=tracer_provider,
    )
    for add_to_server, servicer, name in registrations:
        server.add_servicer(add_to_server, servicer, name)
    await server.start()
    try:
        yield server
    finally:
        await server.shutdown()


@asynccontextmanager
async def order_stub(
    servicer: order_grpc.OrderServiceServicer,
    *,
    metrics: ServiceMetrics | None = None,
    service: str = "kit-test",
) -> AsyncIterator[order_grpc.OrderServiceAsyncStub]:
    """A client stub to a served test OrderService servicer."""
    async with (
        serving(order_service(servicer), metrics=metrics, service=service) as server,
        open_channel(f"127.0.0.1:{server.port}", default_timeout_seconds=10) as channel,
    ):
        yield order_grpc.OrderServiceStub(channel)


def order_service(servicer: order_grpc.OrderServiceServicer) -> tuple[Any, Any, Any]:
    """The registration of a test OrderService servicer."""
    return (order_grpc.add_OrderServiceServicer_to_server, servicer, ORDER_SERVICE)


@contextmanager
def captured_json_logs(logger_name: str = "services") -> Iterator[list[dict[str, Any]]]:
    """The JSON log lines `logger_name` (and its children) emit inside the block, parsed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("kit-test"))
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    previous_level = logger.level
    logger.setLevel(logging.DEBUG)
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines())
