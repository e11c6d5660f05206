"""A minimal crossdock service as a real process, for the registry's kit-integration tests.

    PYTHONPATH=<compiled kittest>:<repo> python -m tests.schema_registry.kit_service_app

It runs the kit's `run_service` with the kit test service's database and events, and its
`setup` calls `open_event_runtime(..., registry_target=config.schema_registry_target)` as every
crossdock service does. Settings: CROSSDOCK_KITTEST_* (see ServiceConfig).
"""

from __future__ import annotations

from kittest.v1 import kittest_pb2 as pb  # compiled by the test fixture, on PYTHONPATH

from services.kit.config import ServiceConfig
from services.kit.runtime import open_event_runtime
from services.kit.server import ServiceServer, run_service
from tests.fixtures.kittest.harness import MIGRATIONS, SERVICE, registry_for


class KitTestConfig(ServiceConfig, service=SERVICE):
    pass


async def setup(server: ServiceServer, config: KitTestConfig) -> None:
    await open_event_runtime(
        service=config.service,
        db_url=config.db_url,
        nats_url=config.nats_url,
        registry=registry_for(pb, "kittest-effects"),
        purpose="effects",
        migrations=MIGRATIONS,
        metrics=server.metrics,
        server=server,
        registry_target=config.schema_registry_target or None,
        produced=[pb.ThingHappened],
        registry_wait_seconds=10.0,
    )


if __name__ == "__main__":
    run_service(KitTestConfig, setup)  # type: ignore[arg-type]
