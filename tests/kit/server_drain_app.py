"""A tiny service run as a real process by test_server_shutdown.py (`python -m ...`).

GetOrder logs "GetOrder started", waits until the server begins draining, then works ~1 s more,
so every call is certainly in flight when SIGTERM arrives. Its two shutdown hooks append their
names to the file CROSSDOCK_KIT_DRAIN_TEST_HOOK_LOG, standing in for the event pipeline's
"flush the outbox" and "close consumers".
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import grpc
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as order
from crossdock.order.v1 import order_service_pb2_grpc as order_grpc

from services.kit.config import ServiceConfig, setting
from services.kit.server import ServiceServer, run_service

log = logging.getLogger("drain_app")


class DrainTestConfig(ServiceConfig, service="kit-drain-test"):
    hook_log: str = setting(description="file the shutdown hooks append their names to")
    work_seconds: float = setting(default=1.0, description="how long GetOrder works after SIGTERM")
    stuck_thread: bool = setting(
        default=False,
        description="start a non-daemon thread that never ends (it must not "
        "keep the process alive after its shutdown)",
    )


class SlowOrders(order_grpc.OrderServiceServicer):
    def __init__(self, server: ServiceServer, work_seconds: float) -> None:
        self.server = server
        self.work_seconds = work_seconds

    async def GetOrder(
        self, request: order.GetOrderRequest, context: grpc.aio.ServicerContext
    ) -> order.GetOrderResponse:
        log.info("GetOrder started")
        while not self.server.draining:
            await asyncio.sleep(0.01)
        await asyncio.sleep(self.work_seconds)
        return order.GetOrderResponse(order=order_pb2.Order(order_id=request.order_id))


async def setup(server: ServiceServer, config: DrainTestConfig) -> None:
    hook_log = Path(config.hook_log)

    async def flush_outbox() -> None:
        with hook_log.open("a") as out:
            out.write("flush-outbox\n")

    async def close_consumers() -> None:
        with hook_log.open("a") as out:
            out.write("close-consumers\n")

    server.add_servicer(
        order_grpc.add_OrderServiceServicer_to_server,
        SlowOrders(server, config.work_seconds),
        order.DESCRIPTOR.services_by_name["OrderService"],
    )
    server.add_shutdown_hook(flush_outbox)
    server.add_shutdown_hook(close_consumers)
    if config.stuck_thread:
        never = threading.Event()
        threading.Thread(target=never.wait, name="stuck-forever", daemon=False).start()


if __name__ == "__main__":
    run_service(DrainTestConfig, setup)
