"""Wiring: `python -m services.control_tower.main` (settings: services.control_tower.config).

The kit's run_service owns the process (config, logs, metrics, health, SIGTERM); `setup` is also
what the integration tests run. The tower publishes nothing: `start_events` opens its database
and NATS (and an idle relay), and its projection consumers are started on that runtime.
"""

from __future__ import annotations

from typing import NoReturn

from services.control_tower.config import TowerConfig
from services.control_tower.entrypoints.consumers import event_handlers, start_consumers
from services.control_tower.entrypoints.grpc import TowerApi, add_to_server
from services.kit.runtime import start_events
from services.kit.server import ServiceServer, run_service


async def setup(server: ServiceServer, config: TowerConfig) -> None:
    """Events runtime (migrate, DB, NATS), the projection consumers, then the api."""
    runtime = await start_events(config, server)
    await start_consumers(runtime, event_handlers(), config.consumer_settings(), server.metrics)
    add_to_server(server, TowerApi(runtime.units))


def main() -> NoReturn:
    run_service(TowerConfig, setup)


if __name__ == "__main__":
    main()
