"""Wiring: `python -m services.order.main` (settings: config.OrderConfig).

`setup` is also what the integration tests run on an in-process ServiceServer. Shutdown order:
gRPC drains (kit), the command worker and sweeper stop, then the kit stops the consumers, flushes
the outbox and closes NATS and the database; the inventory and shipment channels close last.
"""

from __future__ import annotations

from typing import NoReturn

from crossdock.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from crossdock.shipment.v1 import shipment_service_pb2_grpc as shp_grpc

from services.kit.client import open_channel
from services.kit.clock import utc_now
from services.kit.runtime import start_events
from services.kit.server import ServiceServer, run_service
from services.order.adapters.clients import InventoryClient, ShipmentClient
from services.order.adapters.contracts import event_mapper
from services.order.app.saga_commands import SagaClients
from services.order.config import OrderConfig
from services.order.domain import FulfillmentSaga
from services.order.entrypoints.consumers import PURPOSE, event_handlers
from services.order.entrypoints.grpc import OrderApi, add_to_server
from services.order.entrypoints.workers import CommandWorker, DeadlineSweeper


async def setup(server: ServiceServer, config: OrderConfig) -> None:
    """Build the order service on the kit's server: events runtime, api, worker and sweeper."""
    background: list[CommandWorker | DeadlineSweeper] = []

    async def stop_background() -> None:
        # Added before the kit's hooks, so it runs first: nothing may use the database after.
        for task in background:
            await task.stop()

    server.add_shutdown_hook(stop_background, name="stop saga command worker and sweeper")
    saga = FulfillmentSaga(config.step_timeouts())
    return_policy = config.return_policy()  # reads the reason codes: a bad file stops here
    runtime = await start_events(
        config, server, event_handlers(saga, utc_now), event_mapper=event_mapper, purpose=PURPOSE
    )
    timeout = config.grpc_client_timeout_seconds
    inventory_channel = open_channel(config.inventory_target, default_timeout_seconds=timeout)
    shipment_channel = open_channel(config.shipment_target, default_timeout_seconds=timeout)

    async def close_inventory_channel() -> None:
        await inventory_channel.close(None)

    async def close_shipment_channel() -> None:
        await shipment_channel.close(None)

    server.add_shutdown_hook(close_inventory_channel, name="close inventory channel")
    server.add_shutdown_hook(close_shipment_channel, name="close shipment channel")
    inventory = InventoryClient(inv_grpc.InventoryServiceStub(inventory_channel))
    shipments = ShipmentClient(shp_grpc.ShipmentServiceStub(shipment_channel))
    units = runtime.units
    worker = CommandWorker(
        units,
        saga,
        SagaClients(inventory, shipments),
        utc_now,
        poll_interval=config.command_poll_interval_seconds,
    )
    sweeper = DeadlineSweeper(units, saga, utc_now, interval=config.sweep_interval_seconds)
    add_to_server(
        server,
        OrderApi(
            units,
            saga,
            inventory,
            shipments=shipments,
            on_commands=worker.wake,
            send_at_once=worker,
            returns=return_policy,
        ),
    )
    background += [worker, sweeper]
    worker.start()
    sweeper.start()


def main() -> NoReturn:
    run_service(OrderConfig, setup)


if __name__ == "__main__":
    main()
