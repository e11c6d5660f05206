"""The HTTP seam under karrio: every carrier request karrio makes goes through our transport.

karrio builds requests and parses answers itself, and performs HTTP in exactly one function,
`karrio.core.utils.helpers._urlopen_with_span(request, timeout)`, which both `lib.request` and
`lib.request_with_response` call by module-global name. We replace that one function for the
process with an adapter that hands an `HttpRequest` to an `HttpTransport` we own. That gives us:
- a socket timeout on every call (karrio passes none by default, and a karrio call running in a
  worker thread cannot be cancelled, so the socket must give up on its own);
- a typed, retryable error for 429/5xx instead of karrio folding it into "messages";
- tests that stub HTTP at the transport only, with karrio's real request builders and parsers.
We replace `_urlopen_with_span` rather than `urlopen` because, when sentry_sdk is installed, the
former re-sends a request whose first attempt raised (an HTTP 4xx included), and a second label
POST is exactly what must never happen.
"""

from __future__ import annotations

import http.client
import io
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "RETRYABLE_STATUSES",
    "CarrierHttpUnavailable",
    "HttpRequest",
    "HttpResponse",
    "HttpTransport",
    "TransportConnectFailed",
    "TransportTimeout",
    "UrllibTransport",
    "install_transport",
    "installed_transport",
    "transport_installed",
    "uninstall_transport",
]

# 429 and 503 mean "not processed, come back later"; 500/502/504 may hide a processed request.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_NOT_PROCESSED_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: Mapping[str, str]  # names lower-cased
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


class HttpTransport(Protocol):
    """Sends one request; called from karrio's worker threads, so it must be thread-safe."""

    def send(self, request: HttpRequest, timeout: float) -> HttpResponse: ...


class TransportTimeout(TimeoutError):
    """No answer in time; the carrier may have received and acted on the request."""


class TransportConnectFailed(ConnectionError):
    """No connection was made (DNS, refused, TLS handshake): the carrier saw nothing."""


class CarrierHttpUnavailable(Exception):
    """The carrier answered 429 or 5xx. Not an OSError, so karrio's own retry loops skip it and
    our retry policy (with its clock and jitter) decides."""

    def __init__(self, status: int, body: bytes, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}")
        self.status = status
        self.body = body
        self.retry_after = retry_after
        self.maybe_committed = status not in _NOT_PROCESSED_STATUSES


class UrllibTransport:
    """Real HTTP with the standard library (what karrio itself uses), on a private opener."""

    def __init__(self) -> None:
        # build_opener, not the global urlopen: another library's install_opener cannot reroute us.
        self._opener = urllib.request.build_opener()

    def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        outgoing = urllib.request.Request(
            request.url,
            data=request.body or None,
            headers=dict(request.headers),
            method=request.method,
        )
        try:
            with self._opener.open(outgoing, timeout=timeout) as answer:
                return HttpResponse(answer.status, answer.read(), dict(answer.headers.items()))
        except urllib.error.HTTPError as error:
            return HttpResponse(error.code, error.read(), dict(error.headers.items()))
        except TimeoutError as error:
            raise TransportTimeout(str(error)) from error
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError | socket.timeout):
                raise TransportTimeout(str(error.reason)) from error
            raise TransportConnectFailed(str(error.reason)) from error


class _Answer:
    """What karrio reads from urlopen: read(), status, headers, url, and a context manager."""

    def __init__(self, url: str, response: HttpResponse) -> None:
        self.url = url
        self.status = response.status
        self.headers = _message(response.headers)
        self._body = response.body

    def read(self) -> bytes:
        return self._body

    def __enter__(self) -> _Answer:
        return self

    def __exit__(self, *_: object) -> None:
        return None


_state_lock = threading.Lock()
_installed: tuple[HttpTransport, float] | None = None
_original: Any = None


def _karrio_helpers() -> Any:
    import karrio.core.utils.helpers as helpers

    if not callable(getattr(helpers, "_urlopen_with_span", None)):
        raise RuntimeError(
            "karrio no longer performs HTTP through helpers._urlopen_with_span; "
            "update services/carrier_adapter/carriers/karrio_http.py for the new karrio"
        )
    return helpers


def _send_through_transport(request: urllib.request.Request, timeout: float | None = None) -> Any:
    current = _installed
    if current is None:
        raise RuntimeError("no carrier HTTP transport installed")
    transport, default_timeout = current
    outgoing = HttpRequest(
        method=request.get_method(),
        url=request.full_url,
        headers={name.lower(): value for name, value in request.header_items()},
        body=_body_bytes(request.data),
    )
    response = transport.send(outgoing, timeout or default_timeout)
    if response.status in RETRYABLE_STATUSES:
        raise CarrierHttpUnavailable(response.status, response.body, _retry_after(response.headers))
    if response.status >= 400:
        # karrio parses carrier error bodies from HTTPError, so give it one.
        raise urllib.error.HTTPError(
            request.full_url,
            response.status,
            http.client.responses.get(response.status, "error"),
            _message(response.headers),
            io.BytesIO(response.body),
        )
    return _Answer(request.full_url, response)


def install_transport(transport: HttpTransport, default_timeout: float = 20.0) -> None:
    """Route all karrio HTTP in this process through `transport` (socket timeout in seconds)."""
    global _installed, _original
    helpers = _karrio_helpers()
    with _state_lock:
        if _original is None:
            _original = helpers._urlopen_with_span
        helpers._urlopen_with_span = _send_through_transport
        _installed = (transport, default_timeout)


def uninstall_transport() -> None:
    global _installed, _original
    helpers = _karrio_helpers()
    with _state_lock:
        if _original is not None:
            helpers._urlopen_with_span = _original
        _installed, _original = None, None


def installed_transport() -> HttpTransport | None:
    current = _installed
    return current[0] if current else None


@contextmanager
def transport_installed(
    transport: HttpTransport, default_timeout: float = 20.0
) -> Iterator[HttpTransport]:
    """Install for a block (tests), restoring whatever was installed before."""
    previous = _installed
    install_transport(transport, default_timeout)
    try:
        yield transport
    finally:
        if previous is None:
            uninstall_transport()
        else:
            install_transport(*previous)


def _body_bytes(data: object) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    return str(data).encode("utf-8")


def _message(headers: Mapping[str, str]) -> http.client.HTTPMessage:
    message = http.client.HTTPMessage()
    for name, value in headers.items():
        message[name] = value
    return message


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None
