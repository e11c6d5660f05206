"""A running gateway for each test: uvicorn on free ports, real gRPC backends, SQLite.

The backends are the in-memory test doubles in tests/gateway/backends.py (not the real order and
inventory services); everything else, from HTTP to the gateway database, is the real thing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.adapters.backends import Backends
from gateway.adapters.store import migrate
from gateway.contract_docs import comments_by_name, load_descriptor_set
from gateway.descriptors import bindings_of, contract_services
from gateway.entrypoints.admin_api import create_admin_app
from gateway.entrypoints.partner_api import Limits, PartnerGateway
from gateway.entrypoints.webhook_runtime import start_webhook_api
from gateway.openapi import build_openapi
from gateway.transcoder import Route, build_routes
from gateway.webhooks.servicer import SERVICE as WEBHOOK_SERVICE
from services.kit.db import Database
from services.kit.http_server import HttpServer
from tests.gateway.backends import (
    InMemoryInventory,
    InMemoryOrders,
    RecordingCarrier,
    start_backends,
)

ADMIN_TOKEN = "test-admin-token"
WEBHOOK_RETRY_SECONDS = 3600.0


@functools.cache
def contract_routes() -> tuple[list[Route], dict[str, Any]]:
    routes = build_routes(bindings_of(contract_services()))
    return routes, build_openapi(routes, comments_by_name(load_descriptor_set()))


@dataclass
class Stack:
    client: httpx.AsyncClient
    admin: httpx.AsyncClient
    orders: InMemoryOrders
    inventory: InMemoryInventory
    db: Database
    partner_a: str
    key_a: str
    partner_b: str
    key_b: str
    openapi: dict[str, Any]
    routes: list[Route]
    carrier: RecordingCarrier | None = None

    async def new_partner(self, name: str, scopes: list[str] | None = None) -> tuple[str, str]:
        created = await self.admin.post("/admin/partners", json={"name": name})
        assert created.status_code == 201, created.text
        partner_id = created.json()["partner_id"]
        body = {} if scopes is None else {"scopes": scopes}
        issued = await self.admin.post(f"/admin/partners/{partner_id}/keys", json=body)
        assert issued.status_code == 201, issued.text
        return partner_id, issued.json()["api_key"]


StackFactory = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def make_stack(tmp_path: Path) -> AsyncIterator[StackFactory]:
    async with contextlib.AsyncExitStack() as exits:

        async def make(limits: Limits | None = None, db_url: str | None = None) -> Stack:
            server, port, orders, inventory, carrier = await start_backends()
            exits.push_async_callback(server.stop, None)
            url = db_url or f"sqlite:///{tmp_path}/gateway-{port}.db"
            migrate(url)
            db = Database(url, service="gateway")
            exits.push_async_callback(db.close)
            routes, openapi = contract_routes()
            target = f"127.0.0.1:{port}"
            backends = Backends(
                {
                    "crossdock.order.v1.OrderService": target,
                    "crossdock.inventory.v1.InventoryService": target,
                    "crossdock.carrier.v1.CarrierAdapterService": target,
                },
                default_timeout_seconds=5.0,
            )
            exits.push_async_callback(backends.close)
            # The gateway's own WebhookService, on loopback gRPC as gateway.main serves it.
            webhook_api = await start_webhook_api(db, WEBHOOK_RETRY_SECONDS)
            exits.push_async_callback(webhook_api.shutdown)
            backends.add_target(WEBHOOK_SERVICE.full_name, f"127.0.0.1:{webhook_api.port}")
            gateway = PartnerGateway(routes, backends, db, openapi, limits or Limits())
            partner_http = HttpServer(gateway)
            admin_http = HttpServer(create_admin_app(db, ADMIN_TOKEN))
            await partner_http.start()
            await admin_http.start()

            async def stop_http() -> None:
                # Together: each uvicorn takes a main-loop tick (~0.1 s) to notice should_exit.
                await asyncio.gather(partner_http.stop(), admin_http.stop())

            exits.push_async_callback(stop_http)
            # verify=False: plain-http loopback only, and it skips loading a CA bundle per client.
            client = httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{partner_http.port}", verify=False
            )
            exits.push_async_callback(client.aclose)
            admin = httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{admin_http.port}",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                verify=False,
            )
            exits.push_async_callback(admin.aclose)
            stack = Stack(client, admin, orders, inventory, db, "", "", "", "", openapi, routes)
            stack.carrier = carrier
            stack.partner_a, stack.key_a = await stack.new_partner("partner A")
            stack.partner_b, stack.key_b = await stack.new_partner("partner B")
            return stack

        yield make


@pytest.fixture
async def stack(make_stack: StackFactory) -> Stack:
    return await make_stack()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def order_body(external_id: str = "PO-1", quantity: Any = 2) -> dict[str, Any]:
    """A valid CreateOrder body in lowerCamelCase (the documented form)."""
    return {
        "externalOrderId": external_id,
        "customer": {"partyId": "C-1", "name": "Ada"},
        "shipTo": {
            "name": "Ada Lovelace",
            "lines": ["1 Analytical Way"],
            "city": "London",
            "postalCode": "N1 9GU",
            "countryCode": "GB",
        },
        "lines": [
            {
                "sku": "SKU-1",
                "quantity": quantity,
                "unitPrice": {"currencyCode": "GBP", "units": "5"},
            }
        ],
        "currencyCode": "GBP",
    }
