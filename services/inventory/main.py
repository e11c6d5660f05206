"""Wiring: `python -m services.inventory.main`.

The kit's run_service owns the process (config, logs, metrics, health, SIGTERM); `setup` is also
what the integration tests run, on an in-process ServiceServer. Shutdown order (kit): gRPC
drains, the consumer finishes its batch, the relay flushes the outbox, NATS and the DB close.
"""

from __future__ import annotations

from typing import NoReturn

from services.inventory.adapters.contracts import mapper
from services.inventory.adapters.ids import UlidIds
from services.inventory.config import InventoryConfig
from services.inventory.entrypoints.consumers import PURPOSE, event_handlers
from services.inventory.entrypoints.grpc import InventoryApi, add_to_server
from services.kit.clock import utc_now
from services.kit.runtime import start_events
from services.kit.server import ServiceServer, run_service


async def setup(server: ServiceServer, config: InventoryConfig) -> None:
    """Events runtime (migrate, DB, NATS, relay, `inventory-order-events`), then the api."""
    ids = UlidIds()
    handlers = event_handlers(ids, utc_now, returned_to_sender=config.returned_to_sender_stock)
    runtime = await start_events(config, server, handlers, event_mapper=mapper, purpose=PURPOSE)
    add_to_server(server, InventoryApi(runtime.units, ids, utc_now))


def main() -> NoReturn:
    run_service(InventoryConfig, setup)


if __name__ == "__main__":
    main()
