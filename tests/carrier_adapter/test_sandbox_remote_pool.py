"""RemoteSandboxConnector over a real socket: one HTTP session per connector, so calls one after
another reuse one keep-alive connection instead of connecting (and building a client) each time,
and carrier-adapter's shutdown closes it through the registry."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Receive, Scope, Send

from services.carrier_adapter.adapters.carriers.connectors import ConnectorDeps, build_connectors
from services.carrier_adapter.adapters.carriers.sandbox.connector import SandboxSettings
from services.carrier_adapter.adapters.carriers.sandbox.remote import RemoteSandboxConnector
from services.carrier_adapter.adapters.carriers.tables import load_service_table, load_status_table
from services.carrier_adapter.config import load_accounts
from services.kit.http_server import HttpServer
from tests.carrier_adapter.fakes import ManualClock

pytestmark = pytest.mark.integration  # a socket on loopback


class TrackingApp:
    """Answers every tracking request with no scans and notes the client's address."""

    def __init__(self) -> None:
        self.clients: list[tuple[str, int]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        self.clients.append(tuple(scope["client"]))  # type: ignore[arg-type]
        await send({"type": "http.response.start", "status": 200, "headers": _JSON})
        await send({"type": "http.response.body", "body": b'{"scans": []}'})


_JSON = [(b"content-type", b"application/json")]


async def test_calls_one_after_another_reuse_one_connection() -> None:
    app = TrackingApp()
    server = HttpServer(app)
    port = await server.start()
    connector = RemoteSandboxConnector(
        "sandbox",
        f"http://127.0.0.1:{port}",
        SandboxSettings(webhook_secrets=("whsec_test",)),
        status_table=load_status_table("sandbox"),
        service_table=load_service_table("sandbox"),
        clock=ManualClock(),
    )
    try:
        for number in ("SBX1", "SBX2", "SBX3"):
            result = await connector.track(number)
            assert result.tracking_number == number and result.scans == ()
    finally:
        await connector.aclose()
        await server.stop()

    assert len(app.clients) == 3
    assert len(set(app.clients)) == 1  # the same client port: one connection, kept alive


class KeepAliveCarrier:
    """A bare HTTP/1.1 server: answers each GET on a connection with no scans, and notes when
    the client hangs up (which an ASGI app cannot see on an idle keep-alive connection)."""

    ANSWER = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 13\r\n\r\n"
        b'{"scans": []}'
    )

    def __init__(self) -> None:
        self.hung_up = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")  # a GET has no body
            except asyncio.IncompleteReadError:
                break
            writer.write(self.ANSWER)
        self.hung_up.set()
        writer.close()


async def test_closing_the_registry_closes_the_connectors_connections() -> None:
    carrier = KeepAliveCarrier()
    server = await asyncio.start_server(carrier.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    prefix = "CROSSDOCK_CARRIER_ADAPTER_"
    accounts = load_accounts(
        {
            f"{prefix}CARRIER_ACCOUNTS": "sandbox",
            f"{prefix}ACCOUNT_SANDBOX_WEBHOOK_SECRET": "whsec_test",
            f"{prefix}ACCOUNT_SANDBOX_ENDPOINT": f"http://127.0.0.1:{port}",
        }
    )
    registry = build_connectors(accounts, ConnectorDeps(clock=ManualClock()))
    try:
        assert (await registry.get("sandbox").track("SBX1")).scans == ()
        assert not carrier.hung_up.is_set()  # kept alive after the call

        await registry.aclose()  # what carrier-adapter's shutdown hook runs
        await asyncio.wait_for(carrier.hung_up.wait(), timeout=10)
    finally:
        server.close()
        await server.wait_closed()
