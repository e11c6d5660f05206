"""A fake HTTP transport for karrio: canned answers by method + URL, every request recorded.

It sits under karrio at the one seam we own (carriers.karrio_http), so karrio's real request
builders and parsers run; only the network is replaced. An unexpected request fails the test.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.carrier_adapter.adapters.carriers.karrio_http import HttpRequest, HttpResponse

PAYLOADS = Path(__file__).parent / "payloads"


def payload(carrier: str, name: str) -> bytes:
    return (PAYLOADS / carrier / name).read_bytes()


# An answer: a canned response, an exception to raise, or a function of the request (which may
# block, to play a carrier that never answers).
Answer = HttpResponse | BaseException | Callable[[HttpRequest], HttpResponse]


@dataclass
class _Route:
    method: str
    pattern: re.Pattern[str]
    responses: list[Answer]


class UnexpectedRequest(AssertionError):
    pass


class StubTransport:
    def __init__(self) -> None:
        self.requests: list[HttpRequest] = []
        self._routes: list[_Route] = []
        self._lock = threading.Lock()
        self.unexpected: list[HttpRequest] = []

    def route(
        self,
        method: str,
        url_pattern: str,
        *answers: Answer,
    ) -> StubTransport:
        """Answer matching requests with `answers` in turn; the last one repeats."""
        self._routes.append(_Route(method.upper(), re.compile(url_pattern), list(answers)))
        return self

    def json(self, method: str, url_pattern: str, body: bytes, status: int = 200) -> StubTransport:
        return self.route(
            method, url_pattern, HttpResponse(status, body, {"Content-Type": "application/json"})
        )

    def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        with self._lock:
            self.requests.append(request)
            for route in self._routes:
                if route.method == request.method and route.pattern.search(request.url):
                    answer = (
                        route.responses[0] if len(route.responses) == 1 else route.responses.pop(0)
                    )
                    break
            else:
                self.unexpected.append(request)
                raise UnexpectedRequest(f"no stub for {request.method} {request.url}")
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            return answer(request)
        return answer

    def sent(self, method: str, url_fragment: str) -> list[HttpRequest]:
        return [r for r in self.requests if r.method == method and url_fragment in r.url]
