"""One HTTP exchange of the partner API on raw ASGI: what the request says, and the reply.

The partner app used starlette's Request and Response; on a carrier push (the gateway's most
frequent request) building them, their URL and header views, and rendering the response cost a
tenth of the push's CPU. `Incoming` reads the ASGI scope directly, and `Reply` holds the raw
header pairs the ASGI server needs. Both give exactly what starlette gave: the same path and
header values, and the same response headers in the same order (content-length and
content-type added as starlette's Response adds them).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import URL
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

# starlette's JSONResponse rendering, with the encoder built once instead of per response.
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
# Characters starlette's URL escapes or that urlsplit strips or reads as an authority: a path
# with one takes starlette's own URL, so odd paths are logged and fingerprinted as before.
_URL_SENSITIVE = frozenset("?#\\")


class Incoming:
    """The request of one exchange, read from the ASGI scope (values as starlette decodes them)."""

    __slots__ = ("_headers", "_path", "method", "receive", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self.method: str = scope["method"]
        self._headers: dict[bytes, bytes] | None = None
        self._path: str | None = None

    def header(self, name: bytes, default: str | None = None) -> str | None:
        """The first value of the (lower-case) header `name`, as starlette's Headers.get."""
        if self._headers is None:
            headers: dict[bytes, bytes] = {}
            for key, value in self.scope["headers"]:
                headers.setdefault(key, value)
            self._headers = headers
        value = self._headers.get(name)
        return default if value is None else value.decode("latin-1")

    def header_items(self, keep: Callable[[bytes], bool] | None = None) -> list[tuple[str, str]]:
        """Every header pair, in order (starlette's Headers.items); with `keep`, only those
        whose raw name it keeps (decoding only them)."""
        return [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in self.scope["headers"]
            if keep is None or keep(k)
        ]

    @property
    def path(self) -> str:
        """starlette's `request.url.path`: the decoded path, after its URL's escaping."""
        if self._path is None:
            path: str = self.scope["path"]
            plain = path.isascii() and path.isprintable() and not path.startswith("//")
            if not plain or not _URL_SENSITIVE.isdisjoint(path):
                path = URL(scope=self.scope).path
            self._path = path
        return self._path

    def query(self) -> list[tuple[str, str]]:
        """starlette's `request.query_params.multi_items()`."""
        query_string: bytes = self.scope["query_string"]
        if not query_string:
            return []
        return parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)

    @property
    def client_host(self) -> str:
        client = self.scope.get("client")
        return client[0] if client else ""

    async def read_body(self, limit: int) -> bytes | None:
        """The body (as starlette's `request.stream()` delivers it), or None past `limit` bytes;
        raises ClientDisconnect if the client goes away first."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                if chunk:
                    size += len(chunk)
                    if size > limit:
                        return None
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
            elif message["type"] == "http.disconnect":
                raise ClientDisconnect()


class Reply:
    """A response: status, raw header pairs (starlette's order) and the body bytes."""

    __slots__ = ("body", "media_type", "raw_headers", "status_code")

    def __init__(
        self,
        body: bytes,
        status_code: int = 200,
        media_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status_code = status_code
        self.body = body
        self.media_type = media_type
        raw: list[tuple[bytes, bytes]] = []
        if headers:
            raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        given = {name for name, _ in raw}
        if b"content-length" not in given and not (status_code < 200 or status_code in (204, 304)):
            raw.append((b"content-length", str(len(body)).encode("latin-1")))
        if media_type is not None and b"content-type" not in given:
            content_type = media_type
            if content_type.startswith("text/") and "charset=" not in content_type.lower():
                content_type += "; charset=utf-8"
            raw.append((b"content-type", content_type.encode("latin-1")))
        self.raw_headers = raw

    @classmethod
    def json(cls, content: Any, status_code: int = 200) -> Reply:
        """starlette's JSONResponse(content, status_code)."""
        body = _JSON_ENCODER.encode(content).encode("utf-8")
        return cls(body, status_code, "application/json")

    def set_header(self, name: str, value: str) -> None:
        """Set `name` (replacing every earlier value), as starlette's MutableHeaders does."""
        key, encoded = name.lower().encode("latin-1"), value.encode("latin-1")
        raw = self.raw_headers
        found = [index for index, (existing, _) in enumerate(raw) if existing == key]
        for index in reversed(found[1:]):
            del raw[index]
        if found:
            raw[found[0]] = (key, encoded)
        else:
            raw.append((key, encoded))

    def set_headers(self, headers: Mapping[str, str]) -> None:
        """`set_header` for each pair (starlette's MutableHeaders.update)."""
        present = {name for name, _ in self.raw_headers}
        for name, value in headers.items():
            key = name.lower().encode("latin-1")
            if key in present:
                self.set_header(name, value)
            else:
                self.raw_headers.append((key, value.encode("latin-1")))
                present.add(key)

    async def send(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send({"type": "http.response.body", "body": self.body})
