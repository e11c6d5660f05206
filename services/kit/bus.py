"""Connecting to NATS the way every crossdock process should."""

from __future__ import annotations

import logging
import os

import nats
from nats.aio.client import Client as NATS

NATS_URL_ENV = "CROSSDOCK_NATS_URL"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"

log = logging.getLogger(__name__)


def nats_url_from_env() -> str:
    return os.environ.get(NATS_URL_ENV, DEFAULT_NATS_URL)


def server_urls(url: str) -> list[str]:
    """`nats://a:4222,nats://b:4222` → each server's URL (a cluster's nodes, tried in turn)."""
    urls = [part.strip() for part in url.split(",") if part.strip()]
    if not urls:
        raise ValueError(f"no NATS server URL in {url!r}")
    return urls


async def connect(url: str, *, name: str, connect_timeout: float = 2.0) -> NATS:
    """Connect with endless reconnects: an outage must stall publishing, never end the process.

    The outbox keeps events safe while NATS is away, so the client only has to come back.
    `url` may list several servers separated by commas (a cluster's nodes): the client connects
    to one and fails over to the others.
    """

    async def on_disconnect() -> None:
        log.warning("nats disconnected", extra={"nats_client": name})

    async def on_reconnect() -> None:
        log.info("nats reconnected", extra={"nats_client": name})

    async def on_error(exc: Exception) -> None:
        log.debug("nats error: %s", exc, extra={"nats_client": name})

    return await nats.connect(
        server_urls(url),
        name=name,
        connect_timeout=connect_timeout,
        allow_reconnect=True,
        # -1: retry forever, the first connect included, so a service may start before NATS.
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        error_cb=on_error,
    )
