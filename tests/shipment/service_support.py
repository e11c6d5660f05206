"""Running the real shipment service in-process for integration tests.

`running_shipment` builds it exactly as `services.shipment.main` does (same `setup`) on a kit
ServiceServer bound to a free port, against a real database and nats-server. Tests talk to it
through gRPC and read its events from JetStream.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from crossdock.shipment.v1 import shipment_service_pb2_grpc as svc_grpc

from services.kit.client import open_channel
from services.kit.server import ServiceServer
from services.shipment.main import ShipmentConfig, setup

FAST = {
    "RELAY_POLL_INTERVAL_SECONDS": "0.2",
    "CONSUMER_FETCH_TIMEOUT_SECONDS": "0.2",
    "CONSUMER_NAK_BASE_DELAY_SECONDS": "0.05",
    "CONSUMER_ACK_WAIT_SECONDS": "5",
    "CONSUMER_MAX_DELIVER": "200",
    "WORKER_POLL_INTERVAL_SECONDS": "0.1",
    "RETRY_BASE_DELAY_SECONDS": "0.1",
    "RETRY_MAX_DELAY_SECONDS": "1",
}


def shipment_env(
    db_url: str, nats_url: str, inventory_target: str, carrier_target: str, **extra: str
) -> dict[str, str]:
    values = {
        "DB_URL": db_url,
        "NATS_URL": nats_url,
        "GRPC_PORT": "0",
        "METRICS_PORT": "0",
        "BIND_HOST": "127.0.0.1",
        "INVENTORY_TARGET": inventory_target,
        "CARRIER_ADAPTER_TARGET": carrier_target,
        **FAST,
        **extra,
    }
    return {f"CROSSDOCK_SHIPMENT_{k}": v for k, v in values.items()}


@dataclass
class Shipment:
    stub: svc_grpc.ShipmentServiceStub
    target: str


@contextlib.asynccontextmanager
async def running_shipment(
    db_url: str, nats_url: str, inventory_target: str, carrier_target: str, **extra: str
) -> AsyncIterator[Shipment]:
    env = shipment_env(db_url, nats_url, inventory_target, carrier_target, **extra)
    config = ShipmentConfig.from_env(env)
    server = ServiceServer.from_config(config)
    try:
        await setup(server, config)
        port = await server.start()
        channel = open_channel(f"127.0.0.1:{port}", default_timeout_seconds=10.0)
        try:
            yield Shipment(svc_grpc.ShipmentServiceStub(channel), f"127.0.0.1:{port}")
        finally:
            await channel.close()
    finally:
        await server.shutdown()
