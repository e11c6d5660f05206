"""Wiring: `python -m services.billing.main` (settings: services.billing.config).

The kit's run_service owns the process (config, logs, metrics, health, SIGTERM); `setup` is also
what the integration tests run.
"""

from __future__ import annotations

from typing import NoReturn

from services.billing.adapters.contracts import mapper
from services.billing.config import BillingConfig
from services.billing.entrypoints.consumers import PURPOSE, event_handlers
from services.billing.entrypoints.grpc import BillingApi, add_to_server
from services.kit.clock import utc_now
from services.kit.runtime import start_events
from services.kit.server import ServiceServer, run_service


async def setup(server: ServiceServer, config: BillingConfig) -> None:
    """Events runtime (migrate, DB, NATS, relay, consumers), then the api."""
    handlers = event_handlers(config.billing_settings(), utc_now)
    runtime = await start_events(config, server, handlers, event_mapper=mapper, purpose=PURPOSE)
    add_to_server(server, BillingApi(runtime.units))


def main() -> NoReturn:
    run_service(BillingConfig, setup)


if __name__ == "__main__":
    main()
