"""Wiring: `python -m services.shipment.main`.

Settings come from the environment once, at start (config.py, prefix CROSSDOCK_SHIPMENT_). The
kit's run_service owns the process (logs, metrics, health, SIGTERM); `setup` is also what the
integration tests run.
"""

from __future__ import annotations

from typing import NoReturn

from crossdock.carrier.v1 import carrier_service_pb2_grpc as carrier_grpc
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inv_grpc

from services.kit.client import open_channel
from services.kit.clock import utc_now
from services.kit.runtime import start_events
from services.kit.server import ServiceServer, run_service
from services.shipment.adapters.clients import CarrierClient, InventoryClient
from services.shipment.adapters.contracts import mapper
from services.shipment.app.booking import Booking
from services.shipment.config import ShipmentConfig
from services.shipment.domain.shipment import PendingPick
from services.shipment.entrypoints.consumers import PURPOSE, event_handlers
from services.shipment.entrypoints.grpc import ShipmentApi, add_to_server
from services.shipment.entrypoints.workers import ShipmentWorker

__all__ = ["ShipmentConfig", "main", "setup"]


async def setup(server: ServiceServer, config: ShipmentConfig) -> None:
    """Channels, the worker, the events runtime (migrate, DB, NATS, relay, consumers), the api."""
    timeout = config.grpc_client_timeout_seconds
    inventory_channel = open_channel(config.inventory_target, default_timeout_seconds=timeout)
    carrier_channel = open_channel(config.carrier_adapter_target, default_timeout_seconds=timeout)
    # The consumers start before the worker exists (it needs their database).
    packer = _LateWorker()

    async def stop_worker() -> None:
        # Added before the kit's hooks, so it runs first: nothing may use the database after.
        if packer.worker is not None:
            await packer.worker.stop()
        await inventory_channel.close(None)
        await carrier_channel.close(None)

    server.add_shutdown_hook(stop_worker, name="stop shipment worker")

    registry = event_handlers(utc_now, packer.wake, packer=packer)
    runtime = await start_events(config, server, registry, event_mapper=mapper, purpose=PURPOSE)
    booking = Booking(
        runtime.units,
        InventoryClient(inv_grpc.InventoryServiceStub(inventory_channel)),
        CarrierClient(carrier_grpc.CarrierAdapterServiceStub(carrier_channel)),
        utc_now,
        config.booking_settings(),
    )
    worker = ShipmentWorker(booking, config.worker_settings())
    packer.worker = worker
    add_to_server(server, ShipmentApi(runtime.units, utc_now, worker.wake))
    worker.start()


class _LateWorker:
    """The worker once it exists, for the consumers; until then a pick is queued due, for the
    worker's first round, rather than leased to nobody."""

    worker: ShipmentWorker | None = None

    def wake(self) -> None:
        if self.worker is not None:
            self.worker.wake()

    def hand_over_lease(self) -> float | None:
        return None if self.worker is None else self.worker.hand_over_lease()

    def pack_now(self, pick: PendingPick) -> None:
        if self.worker is not None:
            self.worker.pack_now(pick)


def main() -> NoReturn:
    run_service(ShipmentConfig, setup)


if __name__ == "__main__":
    main()
