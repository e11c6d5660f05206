"""`/docs`: Swagger UI over /openapi.json, served from the installed `swagger-ui-py` package.

No CDN and no network: the page, its scripts and styles all come from this gateway, and the
page's Content-Security-Policy forbids any other origin. Assets live under a content-hashed
path (`/docs/assets/<hash>/<name>`), so browsers may cache them for a year and an upgrade of the
bundle (or of the page's own script) changes every URL. Only the files named in `_BUNDLE_FILES`
and `_OWN_FILES` are served, looked up by exact name: no request path ever reaches the file
system, so there is nothing to traverse.

The page also carries the problem-type anchors (`/docs#problem-404`) that every problem+json
`type` points at (gateway.problems.TYPE_BASE).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import html
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.problems import TITLES

DOCS_PATH = "/docs"
ASSETS_PREFIX = "/docs/assets/"
# Swagger UI's own files, copied byte for byte from the package's static directory.
_BUNDLE_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "favicon-16x16.png")
_CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
}
_IMMUTABLE = "public, max-age=31536000, immutable"
# The page itself is revalidated on every visit (cheap: ETag), so a new asset hash is seen.
_REVALIDATE = "no-cache"
# Everything from this origin only; Swagger UI sets inline styles and uses data: images.
_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
_COMPRESSIBLE = (".js", ".css")

# Started from the page's own script, not inline, so the CSP needs no 'unsafe-inline' scripts.
# validatorUrl null: Swagger UI would otherwise send the document to an online validator.
_INIT_JS = """"use strict";
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    displayRequestDuration: true,
    showExtensions: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
"""
_PAGE_CSS = """body{margin:0;background:#fafafa}
#problems{max-width:1460px;margin:0 auto 48px;padding:0 20px;font-family:sans-serif;color:#3b4151}
#problems table{border-collapse:collapse;width:100%;background:#fff}
#problems td,#problems th{border:1px solid #d9dde3;padding:6px 10px;text-align:left}
#problems td{vertical-align:top}
#problems code{font-family:monospace}
"""
_OWN_FILES = {"crossdock-docs.js": _INIT_JS.encode(), "crossdock-docs.css": _PAGE_CSS.encode()}


@dataclass(frozen=True)
class DocsAnswer:
    """What to answer: the partner app turns it into its HTTP reply."""

    status: int
    body: bytes
    media_type: str | None
    headers: dict[str, str]


@dataclass(frozen=True)
class _Resource:
    body: bytes
    gzipped: bytes | None
    content_type: str
    cache_control: str
    etag: str
    headers: Mapping[str, str]


def bundle_directory() -> Path:
    """The installed Swagger UI static files (found without importing the package)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed: /docs serves its Swagger UI files")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def _resource(body: bytes, name: str, cache_control: str, **headers: str) -> _Resource:
    suffix = Path(name).suffix
    # mtime=0: the same bytes on every replica, so their ETags agree.
    gzipped = gzip.compress(body, mtime=0) if suffix in _COMPRESSIBLE else None
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    content_type = _CONTENT_TYPES.get(suffix, "text/html; charset=utf-8")
    return _Resource(body, gzipped, content_type, cache_control, etag, headers)


def problems_section(problems: Mapping[int, str]) -> str:
    """The table every problem `type` URI points into: one row, with its anchor, per status."""
    rows = "".join(
        f'<tr id="problem-{status}"><td><code>{status}</code></td>'
        f"<td>{html.escape(TITLES.get(status, 'Error'))}</td><td>{html.escape(text)}</td></tr>"
        for status, text in sorted(problems.items())
    )
    return (
        '<section id="problems"><h2>Problems</h2><p>Every error is '
        "<code>application/problem+json</code> (RFC 9457) with <code>type</code>, "
        "<code>title</code>, <code>status</code>, <code>detail</code>, <code>grpc_code</code>, "
        "<code>correlation_id</code> and <code>violations</code> "
        "(<code>[{field, description}]</code>). Its <code>type</code> links to a row here."
        "</p><table><tr><th>status</th><th>title</th><th>meaning</th></tr>"
        f"{rows}</table></section>"
    )


def _page(asset_base: str, problems: Mapping[int, str]) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>crossdock partner API</title>
<link rel="stylesheet" href="{asset_base}swagger-ui.css">
<link rel="stylesheet" href="{asset_base}crossdock-docs.css">
<link rel="icon" type="image/png" href="{asset_base}favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="{asset_base}favicon-16x16.png" sizes="16x16">
</head><body>
<noscript>This page needs JavaScript; the document itself is at
<a href="/openapi.json">/openapi.json</a>.</noscript>
<div id="swagger-ui"></div>
{problems_section(problems)}
<script src="{asset_base}swagger-ui-bundle.js" charset="utf-8"></script>
<script src="{asset_base}crossdock-docs.js" charset="utf-8"></script>
</body></html>
"""


@functools.cache
def _assets() -> tuple[str, dict[str, _Resource]]:
    """(the content hash of every asset, each asset by name); read once per process."""
    directory = bundle_directory()
    files = {name: (directory / name).read_bytes() for name in _BUNDLE_FILES}
    files.update(_OWN_FILES)
    digest = hashlib.sha256()
    for name, body in sorted(files.items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(body).digest())
    version = digest.hexdigest()[:16]
    resources = {
        name: _resource(body, name, _IMMUTABLE, **{"X-Content-Type-Options": "nosniff"})
        for name, body in files.items()
    }
    return version, resources


class DocsSite:
    """The `/docs` page and its assets, with ETags, gzip and caching headers."""

    def __init__(self, problems: Mapping[int, str]) -> None:
        version, self._assets = _assets()
        self.asset_base = f"{ASSETS_PREFIX}{version}/"
        page = _page(self.asset_base, problems).encode()
        self._page = _resource(
            page,
            "docs.html",
            _REVALIDATE,
            **{"Content-Security-Policy": _PAGE_CSP, "X-Content-Type-Options": "nosniff"},
        )

    def handles(self, path: str) -> bool:
        return path == DOCS_PATH or path.startswith(ASSETS_PREFIX)

    def answer(
        self, path: str, if_none_match: str | None, accept_encoding: str | None
    ) -> DocsAnswer | None:
        """The page or an asset; None for any other path (the caller answers 404)."""
        if path == DOCS_PATH:
            resource = self._page
        else:
            name = path.removeprefix(self.asset_base) if path.startswith(self.asset_base) else ""
            found = self._assets.get(name)
            if found is None:
                return None
            resource = found
        gzipped = resource.gzipped is not None and _accepts_gzip(accept_encoding)
        # A strong ETag names one representation: the gzip one gets its own.
        etag = resource.etag[:-1] + '-gzip"' if gzipped else resource.etag
        headers = {"Cache-Control": resource.cache_control, "ETag": etag, **resource.headers}
        if resource.gzipped is not None:
            headers["Vary"] = "Accept-Encoding"
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        if if_none_match is not None and _etag_matches(if_none_match, etag):
            return DocsAnswer(304, b"", None, headers)
        body = resource.gzipped if gzipped and resource.gzipped is not None else resource.body
        return DocsAnswer(200, body, resource.content_type, headers)


def _etag_matches(if_none_match: str, etag: str) -> bool:
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


def _accepts_gzip(accept_encoding: str | None) -> bool:
    for coding in (accept_encoding or "").lower().split(","):
        name, _, params = coding.strip().partition(";")
        if name.strip() in ("gzip", "*") and params.replace(" ", "") not in ("q=0", "q=0.0"):
            return True
    return False
