"""Wiring: `python -m services.control_tower.main` (settings: services.control_tower.config).

The kit's run_service owns the process (config, logs, metrics, health, SIGTERM); `setup` is also
what the integration tests run. The tower publishes nothing: `start_events` opens its database
and NATS (and an idle relay), and its projection consumers are started on that runtime.
"""

from __future__ import annotations

from typing import NoReturn

from services.control_tower.config import TowerConfig
from services.control_tower.entrypoints.consumers import event_handlers, start_consumers
from services.control_tower.entrypoints.flow_gauges import FlowGauges, FlowGaugeWorker
from services.control_tower.entrypoints.grpc import TowerApi, add_to_server
from services.kit.runtime import start_events
from services.kit.server import ServiceServer, run_service


async def setup(server: ServiceServer, config: TowerConfig) -> None:
    """Events runtime (migrate, DB, NATS), the projection consumers, the flow gauges' worker,
    then the api."""
    workers: list[FlowGaugeWorker] = []

    async def stop_gauges() -> None:
        for worker in workers:
            await worker.stop()

    # Added before the runtime's hooks, so the gauges stop before NATS and the database close.
    server.add_shutdown_hook(stop_gauges, name="stop flow gauges")
    runtime = await start_events(config, server)
    await start_consumers(runtime, event_handlers(), config.consumer_settings(), server.metrics)
    flows = config.flow_settings()
    if server.metrics is not None:
        workers.append(
            FlowGaugeWorker(
                runtime.units,
                runtime.nc.jetstream(),
                FlowGauges(server.metrics.registry),
                flows,
                interval=config.flow_gauges_interval_seconds,
            )
        )
        workers[0].start()
    add_to_server(server, TowerApi(runtime.units, flows))


def main() -> NoReturn:
    run_service(TowerConfig, setup)


if __name__ == "__main__":
    main()
