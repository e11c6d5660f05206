"""Wiring: `python -m services.schema_registry.main`.

Settings come from the environment once, at start (the kit's ServiceConfig, prefix
CROSSDOCK_SCHEMA_REGISTRY_): DB_URL, GRPC_PORT, HTTP_PORT and METRICS_PORT are required;
GRPC_HOST / HTTP_HOST (default 0.0.0.0), BUF_PATH, MIGRATE_ON_START and LOG_LEVEL are optional.
The kit's run_service owns the process: JSON logs, metrics, the gRPC server with health and
reflection, and SIGTERM (drain gRPC, then stop HTTP, then close the database).
"""

from __future__ import annotations

import asyncio
import sys
from typing import NoReturn

from services.kit.config import ConfigError, ServiceConfig, setting
from services.kit.db import Database
from services.kit.http_server import HttpServer
from services.kit.server import ServiceServer, run_service
from services.schema_registry.api import add_to_server
from services.schema_registry.compat import BufRunner, CompatibilityChecker
from services.schema_registry.registry import SchemaRegistry
from services.schema_registry.rest import create_app
from services.schema_registry.store import migrate


class SchemaRegistryConfig(ServiceConfig, service="schema-registry"):
    http_host: str = setting(default="0.0.0.0", description="interface the REST API listens on")
    http_port: int = setting(
        minimum=0, maximum=65535, description="REST API listen port (0 picks a free port)"
    )
    buf_path: str = setting(
        default="", description="the buf binary (default: next to the Python interpreter, PATH)"
    )
    migrate_on_start: bool = setting(
        default=True,
        description="run the database migrations at start (off when a Kubernetes Job runs them)",
    )


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
    try:
        config = SchemaRegistryConfig.from_env()
    except ConfigError as error:
        print(f"schema-registry: {error}", file=sys.stderr)
        sys.exit(2)
    run_service(config, setup)


if __name__ == "__main__":
    main()
