"""Fixtures of the schema registry tests: a real store (SQLite file or PostgreSQL), real buf,
real gRPC and HTTP servers on free ports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.kit.db import Database
from services.kit.http_server import HttpServer
from services.kit.metrics import ServiceMetrics
from services.kit.registry_client import SchemaRegistryClient
from services.kit.server import ServiceServer
from services.schema_registry.adapters.buf import BufRunner, CompatibilityChecker
from services.schema_registry.adapters.store import migrate
from services.schema_registry.app import SchemaRegistry
from services.schema_registry.entrypoints.grpc import add_to_server
from services.schema_registry.entrypoints.rest import create_app
from tests.fixtures.kittest.fixtures import kittest_dir, pb

__all__ = ["kittest_dir", "pb"]

SERVICE = "schema-registry"


@pytest.fixture(scope="session")
def checker() -> CompatibilityChecker:
    """One checker for the session: its caches only ever hold pure results."""
    return CompatibilityChecker(BufRunner())


def open_registry(url: str, checker: CompatibilityChecker) -> SchemaRegistry:
    return SchemaRegistry(Database(url, service=SERVICE), checker)


@pytest.fixture(scope="module")
def shared_registry(
    tmp_path_factory: pytest.TempPathFactory, checker: CompatibilityChecker
) -> Iterator[SchemaRegistry]:
    """A registry on one SQLite file for a whole module; tests use subjects of their own."""
    url = f"sqlite:///{tmp_path_factory.mktemp('registry') / 'registry.db'}"
    migrate(url)
    registry = open_registry(url, checker)
    yield registry
    # Database.run binds to whichever loop awaits it, so a fresh loop can close it.
    asyncio.run(registry.db.close())


@pytest.fixture
def db_url(db_url: str) -> str:
    """A migrated, empty registry database: the shared `db_url` (an SQLite file, then a fresh
    PostgreSQL database), migrated."""
    migrate(db_url)
    return db_url


@pytest.fixture
async def registry(db_url: str, checker: CompatibilityChecker) -> AsyncIterator[SchemaRegistry]:
    instance = open_registry(db_url, checker)
    yield instance
    await instance.db.close()


@dataclass
class Served:
    """The registry behind both APIs, as main.py wires it."""

    registry: SchemaRegistry
    grpc: ServiceServer
    http: HttpServer
    metrics: ServiceMetrics

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc.port}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http.port}"


@pytest.fixture
async def served(tmp_path: Path, checker: CompatibilityChecker) -> AsyncIterator[Served]:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    migrate(url)
    registry = open_registry(url, checker)
    metrics = ServiceMetrics(SERVICE)
    grpc_server = ServiceServer(SERVICE, host="127.0.0.1", port=0, grace_seconds=0, metrics=metrics)
    add_to_server(grpc_server, registry)
    http = HttpServer(create_app(registry), host="127.0.0.1", port=0)
    await grpc_server.start()
    await http.start()
    try:
        yield Served(registry, grpc_server, http, metrics)
    finally:
        await grpc_server.shutdown()
        await http.stop()
        await registry.db.close()


@pytest.fixture
async def client(served: Served) -> AsyncIterator[SchemaRegistryClient]:
    async with SchemaRegistryClient(served.target, timeout_seconds=10) as registry_client:
        yield registry_client
