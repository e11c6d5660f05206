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


async def connect(url: str, *, name: str, connect_timeout: float = 2.0) -> NATS:
    """Connect with endless reconnects: an outage must stall publishing, never end the process.

    The outbox keeps events safe while NATS is away, so the client only has to come back.
    """

    async def on_disconnect() -> None:
        log.warning("nats disconnected", extra={"nats_client": name})

    async def on_reconnect() -> None:
        log.info("nats reconnected", extra={"nats_client": name})

    async def on_error(exc: Exception) -> None:
        log.debug("nats error: %s", exc, extra={"nats_client": name})

    return await nats.connect(
        url,
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
