"""RemoteSandboxConnector over a real socket: one HTTP client per connector, so calls one after
another reuse one keep-alive connection instead of connecting (and building a client) each time."""

from __future__ import annotations

import pytest
from starlette.types import Receive, Scope, Send

from services.carrier_adapter.adapters.carriers.sandbox.connector import SandboxSettings
from services.carrier_adapter.adapters.carriers.sandbox.remote import RemoteSandboxConnector
from services.carrier_adapter.adapters.carriers.tables import load_service_table, load_status_table
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
