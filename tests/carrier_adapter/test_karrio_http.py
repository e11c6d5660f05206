"""The HTTP seam under karrio, and the real urllib transport against a local server."""

from __future__ import annotations

import socket
import threading
import urllib.error
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import karrio.core.utils.helpers as karrio_helpers
import karrio.lib as karrio_lib
import pytest

from services.carrier_adapter.adapters.carriers import karrio_http
from services.carrier_adapter.adapters.carriers.karrio_http import (
    CarrierHttpUnavailable,
    HttpRequest,
    HttpResponse,
    TransportConnectFailed,
    TransportTimeout,
    UrllibTransport,
)
from tests.carrier_adapter.stub_transport import StubTransport


class Recording:
    def __init__(self, response: HttpResponse) -> None:
        self.response = response
        self.seen: list[tuple[HttpRequest, float]] = []

    def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        self.seen.append((request, timeout))
        return self.response


def test_karrio_requests_go_through_the_installed_transport() -> None:
    transport = Recording(HttpResponse(200, b'{"ok": true}'))
    with karrio_http.transport_installed(transport, default_timeout=7.5):
        answer = karrio_lib.request(
            url="https://carrier.example/api", method="POST", data='{"a": 1}',
            headers={"Content-Type": "application/json"},
        )  # fmt: skip

    assert answer == '{"ok": true}'
    [(request, timeout)] = transport.seen
    assert (request.method, request.url, request.body) == (
        "POST",
        "https://carrier.example/api",
        b'{"a": 1}',
    )
    assert request.header("Content-Type") == "application/json"
    assert timeout == 7.5


def test_client_errors_reach_karrio_as_http_errors_with_their_body() -> None:
    transport = Recording(HttpResponse(400, b'{"errors": [{"code": "X"}]}'))
    seen: list[int] = []

    def on_error(error: urllib.error.HTTPError) -> str:
        seen.append(error.code)
        return error.read().decode()

    with karrio_http.transport_installed(transport):
        answer = karrio_lib.request(url="https://c.example/", on_error=on_error)

    assert seen == [400]
    assert answer == '{"errors": [{"code": "X"}]}'


@pytest.mark.parametrize(("status", "committed"), [(503, False), (429, False), (500, True)])
def test_server_errors_escape_karrio_as_retryable(status: int, committed: bool) -> None:
    with (
        karrio_http.transport_installed(Recording(HttpResponse(status, b"busy"))),
        pytest.raises(CarrierHttpUnavailable) as caught,
    ):
        karrio_lib.request(url="https://c.example/")
    assert caught.value.status == status
    assert caught.value.maybe_committed is committed


def test_install_and_uninstall_restore_karrio() -> None:
    original = karrio_helpers._urlopen_with_span
    outer, inner = StubTransport(), StubTransport()
    with karrio_http.transport_installed(outer):
        with karrio_http.transport_installed(inner):
            assert karrio_http.installed_transport() is inner
        assert karrio_http.installed_transport() is outer
    assert karrio_http.installed_transport() is None
    assert karrio_helpers._urlopen_with_span is original


class _Handler(BaseHTTPRequestHandler):
    release: threading.Event

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        if self.path == "/slow":
            self.release.wait(10)
        status = 404 if self.path == "/missing" else 200
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"echo:" + body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def server() -> Iterator[tuple[str, threading.Event]]:
    release = threading.Event()
    handler = type("Handler", (_Handler,), {"release": release})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}", release
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def post(url: str) -> HttpRequest:
    return HttpRequest("POST", url, {"content-type": "text/plain"}, b"hello")


@pytest.mark.integration  # a local HTTP server
def test_urllib_transport_returns_answers_and_error_statuses(
    server: tuple[str, threading.Event],
) -> None:
    base, _ = server
    transport = UrllibTransport()

    ok = transport.send(post(f"{base}/ok"), timeout=5)
    missing = transport.send(post(f"{base}/missing"), timeout=5)

    assert (ok.status, ok.body) == (200, b"echo:hello")
    assert missing.status == 404


@pytest.mark.integration  # a local HTTP server
def test_urllib_transport_times_out_on_a_silent_server(
    server: tuple[str, threading.Event],
) -> None:
    base, _ = server
    with pytest.raises(TransportTimeout):
        UrllibTransport().send(post(f"{base}/slow"), timeout=0.2)


@pytest.mark.integration  # loopback sockets
def test_urllib_transport_reports_refused_connections_as_not_sent() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransportConnectFailed):
        UrllibTransport().send(post(f"http://127.0.0.1:{port}/"), timeout=2)
