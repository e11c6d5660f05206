"""Wiring: `python -m services.schema_registry.main`.

The kit's run_service owns the process: settings (SchemaRegistryConfig, exit 2 when invalid),
JSON logs, metrics, the gRPC server with health and reflection, and SIGTERM (drain gRPC, then
stop HTTP, then close the database).
"""

from __future__ import annotations

import asyncio
from typing import NoReturn

from services.kit.db import Database
from services.kit.http_server import HttpServer
from services.kit.server import ServiceServer, run_service
from services.schema_registry.adapters.buf import BufRunner, CompatibilityChecker
from services.schema_registry.adapters.store import migrate
from services.schema_registry.app import SchemaRegistry
from services.schema_registry.config import SchemaRegistryConfig
from services.schema_registry.entrypoints.grpc import add_to_server
from services.schema_registry.entrypoints.rest import create_app


async def setup(server: ServiceServer, config: SchemaRegistryConfig) -> None:
    """Build the registry and its two APIs on the kit's server."""
    checker = CompatibilityChecker(BufRunner(config.buf_path or None))  # fails fast without buf
    if config.migrate_on_start:
        await asyncio.to_thread(migrate, config.db_url)
    db = Database(config.db_url, service=config.service)
    http: HttpServer | None = None

    async def close() -> None:
        # One hook, so HTTP stops before the database closes, also after a failed setup.
        if http is not None:
            await http.stop()
        await db.close()

    server.add_shutdown_hook(close, name="stop HTTP, close database")
    registry = SchemaRegistry(db, checker)
    add_to_server(server, registry)
    http = HttpServer(create_app(registry), host=config.http_host, port=config.http_port)
    await http.start()


def main() -> NoReturn:
    run_service(SchemaRegistryConfig, setup)


if __name__ == "__main__":
    main()
