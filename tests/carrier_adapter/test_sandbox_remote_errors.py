"""RemoteSandboxConnector's failures over real sockets: what each transport failure and HTTP
status becomes, since the guard decides retries (and booking reconciliation) from it."""

from __future__ import annotations

import asyncio
import socket

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from services.carrier_adapter.adapters.carriers.sandbox.connector import SandboxSettings
from services.carrier_adapter.adapters.carriers.sandbox.remote import RemoteSandboxConnector
from services.carrier_adapter.adapters.carriers.tables import load_service_table, load_status_table
from services.carrier_adapter.domain.errors import (
    CarrierRejected,
    CarrierTimeout,
    CarrierUnavailable,
)
from services.carrier_adapter.domain.payload_log import PayloadDirection, PayloadRecorder
from tests.carrier_adapter.fakes import ManualClock, Recorder
from tests.fixtures.asgi_server import serving

pytestmark = pytest.mark.integration  # sockets on loopback


def connector(
    endpoint: str, *, timeout: float = 5.0, sink: Recorder | None = None
) -> RemoteSandboxConnector:
    clock = ManualClock()
    payloads = PayloadRecorder("sandbox", "sandbox", sink, clock.now) if sink else None
    return RemoteSandboxConnector(
        "sandbox",
        endpoint,
        SandboxSettings(webhook_secrets=("whsec_test",)),
        status_table=load_status_table("sandbox"),
        service_table=load_service_table("sandbox"),
        clock=clock,
        payloads=payloads,
        timeout_seconds=timeout,
    )


def answering(status: int, body: bytes, content_type: bytes = b"application/json") -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", content_type)]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


async def test_a_refused_connection_is_unavailable_and_surely_not_committed() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago, now with no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    remote = connector(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(CarrierUnavailable) as raised:
            await remote.track("SBX1")
    finally:
        await remote.aclose()
    assert raised.value.maybe_committed is False


async def test_no_answer_within_the_timeout_is_a_carrier_timeout() -> None:
    release = asyncio.Event()

    async def stalls(scope: Scope, receive: Receive, send: Send) -> None:
        await release.wait()
        await answering(200, b'{"scans": []}')(scope, receive, send)

    async with serving(stalls) as endpoint:
        remote = connector(endpoint, timeout=0.2)
        try:
            with pytest.raises(CarrierTimeout):
                await remote.track("SBX1")
        finally:
            release.set()
            await remote.aclose()


async def test_a_dropped_connection_after_the_request_may_have_committed() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # the request went out, then no answer
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    remote = connector(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(CarrierUnavailable) as raised:
            await remote.track("SBX1")
    finally:
        await remote.aclose()
        server.close()
        await server.wait_closed()
    assert raised.value.maybe_committed is True


async def test_a_server_error_is_unavailable_and_its_body_is_logged() -> None:
    sink = Recorder()
    async with serving(answering(503, b"overloaded", b"text/plain; charset=utf-8")) as endpoint:
        remote = connector(endpoint, sink=sink)
        try:
            with pytest.raises(CarrierUnavailable, match="HTTP 503") as raised:
                await remote.track("SBX1")
        finally:
            await remote.aclose()
    assert raised.value.maybe_committed is True
    [logged] = sink.payloads()
    assert logged.direction is PayloadDirection.ERROR
    assert logged.body == "overloaded"
    assert logged.url == endpoint + "/v1/tracking/SBX1"


async def test_a_refusal_without_a_problem_body_names_the_status() -> None:
    async with serving(answering(418, b"<html>teapot</html>", b"text/html")) as endpoint:
        remote = connector(endpoint)
        try:
            with pytest.raises(CarrierRejected) as raised:
                await remote.track("SBX1")
        finally:
            await remote.aclose()
    assert raised.value.carrier_messages == ("HTTP 418",)
