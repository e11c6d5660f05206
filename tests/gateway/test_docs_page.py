"""/docs: Swagger UI from the installed package, its assets, caching, and no path traversal.

What the page does in a browser is tested in tests/pages (headless Chromium).
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit

import pytest

from gateway.docs_page import ASSETS_PREFIX, bundle_directory
from gateway.openapi import PROBLEM_STATUSES
from tests.gateway.conftest import Stack

_ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def _asset_urls(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', page)


async def test_the_page_is_swagger_ui_with_every_asset_from_this_gateway(stack: Stack) -> None:
    page = await stack.client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "connect-src 'self'" in csp  # "try it out" may only call this gateway
    urls = _asset_urls(page.text)
    assert not [url for url in urls if urlsplit(url).netloc], "no CDN or other host"
    assets = [url for url in urls if url.startswith(ASSETS_PREFIX)]
    names = {url.rsplit("/", 1)[1] for url in assets}
    assert {"swagger-ui-bundle.js", "swagger-ui.css", "crossdock-docs.js"} <= names
    for url in assets:
        answer = await stack.client.get(url)
        assert answer.status_code == 200, url
        suffix = url[url.rindex(".") :]
        assert answer.headers["content-type"].startswith(_ASSET_TYPES[suffix]), url
        assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert answer.headers["x-content-type-options"] == "nosniff"
    bundle = next(url for url in assets if url.endswith("/swagger-ui-bundle.js"))
    served = (await stack.client.get(bundle)).content
    assert served == (bundle_directory() / "swagger-ui-bundle.js").read_bytes()
    starter = next(url for url in assets if url.endswith("/crossdock-docs.js"))
    script = (await stack.client.get(starter)).text
    assert '"/openapi.json"' in script and "validatorUrl: null" in script


async def test_assets_are_gzipped_on_request_and_revalidate_with_their_etag(stack: Stack) -> None:
    page = (await stack.client.get("/docs")).text
    bundle = next(url for url in _asset_urls(page) if url.endswith("/swagger-ui-bundle.js"))
    original = (bundle_directory() / "swagger-ui-bundle.js").read_bytes()
    plain = await stack.client.get(bundle, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert int(plain.headers["content-length"]) == len(original)
    zipped = await stack.client.get(bundle, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["vary"] == "Accept-Encoding"
    assert int(zipped.headers["content-length"]) < len(original) // 2
    assert zipped.content == original  # httpx decoded it
    assert zipped.headers["etag"] != plain.headers["etag"]  # one strong ETag per encoding
    again = await stack.client.get(
        bundle, headers={"Accept-Encoding": "identity", "If-None-Match": plain.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""
    docs = await stack.client.get("/docs")
    revalidated = await stack.client.get("/docs", headers={"If-None-Match": docs.headers["etag"]})
    assert revalidated.status_code == 304
    changed = await stack.client.get("/docs", headers={"If-None-Match": '"something-else"'})
    assert changed.status_code == 200


async def _raw_get(stack: Stack, path: str) -> tuple[int, bytes]:
    """GET `path` byte for byte (an HTTP client would normalize dot segments first)."""
    url = urlsplit(str(stack.client.base_url))
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: docs\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    response = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize(
    "tail",
    [
        "../../../../../../etc/passwd",
        "..%2f..%2f..%2f..%2fpyproject.toml",
        "%2e%2e/%2e%2e/%2e%2e/gateway/docs_page.py",
        "../swagger_ui/__init__.py",
        "/etc/passwd",
        "swagger-editor-bundle.js",  # in the package's directory, but not an asset of the page
        "LICENSE",
        "",
    ],
)
async def test_nothing_outside_the_asset_list_is_served(stack: Stack, tail: str) -> None:
    page = (await stack.client.get("/docs")).text
    base = next(url for url in _asset_urls(page) if url.endswith("/swagger-ui.css"))
    base = base.rsplit("/", 1)[0] + "/"
    for path in (base + tail, ASSETS_PREFIX + tail, ASSETS_PREFIX + "0000000000000000/" + tail):
        status, body = await _raw_get(stack, path)
        assert status == 404, path
        assert b"no such" in body and b"root:" not in body and b"[project]" not in body


async def test_an_asset_of_another_bundle_version_is_not_found(stack: Stack) -> None:
    answer = await stack.client.get(ASSETS_PREFIX + "0000000000000000/swagger-ui-bundle.js")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"


async def test_every_problem_type_resolves_to_an_anchor_on_the_docs_page(stack: Stack) -> None:
    page = (await stack.client.get("/docs")).text
    problem = (await stack.client.get("/v1/nowhere")).json()
    path, anchor = problem["type"].split("#", 1)
    assert path == "/docs"
    assert f'id="{anchor}"' in page
    for status in PROBLEM_STATUSES:
        assert f'id="problem-{status}"' in page
