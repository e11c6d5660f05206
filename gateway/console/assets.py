"""The console's static files: htmx (vendored, see static/htmx.min.js.LICENSE), its script, its
stylesheet and its icon, served from the package under a content-hashed path.

`/console/static/<version>/<name>`: the version is a hash of every file, so browsers may keep
them for a year and any change of any file changes every URL. Only the files named in `FILES`
are served, looked up by exact name: no request path reaches the file system.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources

FILES = ("htmx.min.js", "console.js", "console.css", "favicon.svg")
_CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


@dataclass(frozen=True)
class Assets:
    version: str
    files: dict[str, Asset]

    def find(self, version: str, name: str) -> Asset | None:
        """The asset at `<version>/<name>`; None for an old version or an unknown name."""
        return self.files.get(name) if version == self.version else None


@functools.cache
def load_assets() -> Assets:
    """Read once per process from the installed package."""
    folder = resources.files("gateway.console") / "static"
    bodies = {name: (folder / name).read_bytes() for name in FILES}
    digest = hashlib.sha256()
    for name, body in sorted(bodies.items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(body).digest())
    files = {
        name: Asset(
            body,
            _CONTENT_TYPES[name[name.rindex(".") :]],
            '"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        )
        for name, body in bodies.items()
    }
    return Assets(digest.hexdigest()[:16], files)
