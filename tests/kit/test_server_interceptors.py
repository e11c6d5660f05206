"""Where the kit's ServiceInterceptor applies: every unary method of the server (health included),
and around any further interceptors a service adds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
from crossdock.order.v1 import order_service_pb2 as order
from crossdock.order.v1 import order_service_pb2_grpc as order_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import text

from services.kit.db import Database
from services.kit.errors import NotFound
from services.kit.metrics import ServiceMetrics
from services.kit.request_context import CORRELATION_ID_KEY, current_correlation_id
from services.kit.server import ServiceServer
from tests.fixtures.ports import free_port
from tests.kit.server_support import ORDER_ID, order_service

# The tests here serve gRPC on loopback ports.
pytestmark = pytest.mark.integration


class RefusingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """A service's own interceptor: refuses GetOrder with a domain error, noting the correlation
    id it ran under (the kit's, if it runs inside the kit's interceptor)."""

    def __init__(self) -> None:
        self.saw: list[str | None] = []

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        if not details.method.endswith("/GetOrder"):
            return handler

        async def refuse(request: Any, context: Any) -> Any:
            self.saw.append(current_correlation_id())
            raise NotFound(f"order {request.order_id} not found")

        return grpc.unary_unary_rpc_method_handler(
            refuse,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


async def test_further_interceptors_run_inside_the_kit() -> None:
    refusing = RefusingInterceptor()
    server = ServiceServer(
        "order", host="127.0.0.1", port=0, grace_seconds=0, interceptors=[refusing]
    )
    server.add_servicer(*order_service(order_grpc.OrderServiceServicer()))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            call = order_grpc.OrderServiceStub(channel).GetOrder(
                order.GetOrderRequest(order_id=ORDER_ID),
                metadata=((CORRELATION_ID_KEY, "cid-7"),),
            )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
    finally:
        await server.shutdown()

    assert caught.value.code() == grpc.StatusCode.NOT_FOUND  # the kit mapped its error
    assert (CORRELATION_ID_KEY, "cid-7") in tuple(caught.value.trailing_metadata() or ())
    assert refusing.saw == ["cid-7"]


async def test_health_checks_are_served_behind_the_kit() -> None:
    metrics = ServiceMetrics("kit-test")
    server = ServiceServer("kit-test", host="127.0.0.1", port=0, grace_seconds=0, metrics=metrics)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            call = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            response = await call
            trailing = await call.trailing_metadata()
    finally:
        await server.shutdown()

    assert response.status == health_pb2.HealthCheckResponse.SERVING
    assert len(dict(trailing or ())[CORRELATION_ID_KEY]) == 32  # created and echoed
    count = metrics.registry.get_sample_value(
        "crossdock_grpc_requests_total",
        {"method": "/grpc.health.v1.Health/Check", "code": "OK"},
    )
    assert count == 1


class DatabaseBackedOrders(order_grpc.OrderServiceServicer):
    """GetOrder reads through a kit Database, as every service's reads do."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def GetOrder(self, request: Any, context: Any) -> Any:
        await self.db.run(lambda conn: conn.execute(text("SELECT order_id FROM orders")).all())
        return order.GetOrderResponse()


async def _get_order_code(db: Database) -> tuple[grpc.StatusCode, str]:
    server = ServiceServer("order", host="127.0.0.1", port=0, grace_seconds=0)
    server.add_servicer(*order_service(DatabaseBackedOrders(db)))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await order_grpc.OrderServiceStub(channel).GetOrder(
                    order.GetOrderRequest(order_id=ORDER_ID)
                )
    finally:
        await server.shutdown()
        await db.close()
    return caught.value.code(), caught.value.details() or ""


async def test_a_database_that_cannot_be_reached_answers_unavailable_so_callers_retry() -> None:
    # A PostgreSQL address nobody listens on: what a service sees while its server restarts.
    url = f"postgresql+psycopg://crossdock@127.0.0.1:{free_port()}/order"

    code, details = await _get_order_code(Database(url, service="order"))

    assert code == grpc.StatusCode.UNAVAILABLE
    assert "retry" in details


async def test_a_database_error_that_is_a_bug_stays_internal(tmp_path: Path) -> None:
    # The table does not exist: no retry fixes that.
    url = f"sqlite:///{tmp_path / 'order.db'}"

    code, _details = await _get_order_code(Database(url, service="order"))

    assert code == grpc.StatusCode.INTERNAL
