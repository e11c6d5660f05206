"""Standard health checking and reflection on every service, and what they say while draining."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from crossdock.order.v1 import order_service_pb2_grpc as order_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.kit.server import ServiceServer
from tests.kit.server_support import ORDER_SERVICE, order_service, serving

# The tests here serve gRPC on loopback ports.
pytestmark = pytest.mark.integration

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def test_health_answers_serving_for_the_server_and_each_service() -> None:
    async with (
        serving(order_service(order_grpc.OrderServiceServicer())) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        health = health_pb2_grpc.HealthStub(channel)
        overall = await health.Check(health_pb2.HealthCheckRequest(service=""))
        order = await health.Check(health_pb2.HealthCheckRequest(service=ORDER_SERVICE.full_name))
        try:
            await health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
            unknown = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as error:
            unknown = error.code()

    assert overall.status == SERVING
    assert order.status == SERVING
    assert unknown == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_the_service() -> None:
    async with (
        serving(order_service(order_grpc.OrderServiceServicer())) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        responses = [response async for response in call]
        describe = reflection.ServerReflectionInfo(
            iter(
                [
                    reflection_pb2.ServerReflectionRequest(
                        file_containing_symbol=ORDER_SERVICE.full_name
                    )
                ]
            )
        )
        files = [response async for response in describe]

    listed = {s.name for s in responses[0].list_services_response.service}
    assert {ORDER_SERVICE.full_name, "grpc.health.v1.Health"} <= listed
    assert files[0].file_descriptor_response.file_descriptor_proto, "reflection can describe it"


async def test_draining_reports_not_serving_and_ends_watch_streams() -> None:
    server = ServiceServer("kit-test", host="127.0.0.1", port=0, grace_seconds=30)
    server.add_servicer(*order_service(order_grpc.OrderServiceServicer()))
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service=ORDER_SERVICE.full_name)
            )
            first = await watch.read()
            shutdown = asyncio.ensure_future(server.shutdown())
            later = []
            while (response := await watch.read()) is not grpc.aio.EOF:
                later.append(response.status)
            # The watch ends by itself (status OK) rather than being cut off when the 30 s
            # grace period expires, so an open watch never holds up the shutdown.
            watch_code = await watch.code()
            clean = await shutdown
    finally:
        await server.shutdown()

    assert first.status == SERVING
    assert watch_code == grpc.StatusCode.OK
    assert later and later[-1] == NOT_SERVING
    assert clean is True
    assert server.draining
