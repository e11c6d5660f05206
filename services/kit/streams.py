"""JetStream streams, declared in code: one per event domain plus the dead-letter stream.

`ensure_streams` creates or updates them idempotently at every service start, so the running
configuration always matches this file (and the settings from config).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from nats import errors as nats_errors
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

from services.kit.events import SUBJECT_ROOT, domain_of

log = logging.getLogger(__name__)

# Domain → stream name. `return` and `carrier` have their own streams even though order and
# carrier-adapter produce them, because consumers subscribe by domain.
DOMAIN_STREAMS: dict[str, str] = {
    "order": "ORDER",
    "inventory": "INVENTORY",
    "shipment": "SHIPMENT",
    "billing": "BILLING",
    "return": "RETURN",
    "carrier": "CARRIER",
    # The control tower's reconciliation findings: a domain of their own, not a domain's facts.
    "reconciliation": "RECONCILIATION",
}
DLQ_STREAM = "DLQ"
DLQ_SUBJECT_PREFIX = f"{SUBJECT_ROOT}.dlq"

DAY = 24 * 3600.0


@dataclass(frozen=True)
class StreamSettings:
    """Stream knobs that come from config (production: R3, longer windows)."""

    replicas: int = 1
    max_age_seconds: float = 7 * DAY
    # Must exceed the longest time a relay may take to republish after a crash; the consumers'
    # inbox still dedups anything older.
    duplicate_window_seconds: float = 10 * 60.0
    dlq_max_age_seconds: float = 30 * DAY
    max_bytes: int = -1


def stream_for_subject(subject: str) -> str:
    """The stream an event subject lands in (`crossdock.order.placed.v1` → ORDER)."""
    domain = domain_of(subject)
    if domain == "dlq":
        return DLQ_STREAM
    try:
        return DOMAIN_STREAMS[domain]
    except KeyError:
        raise ValueError(f"no stream for domain {domain!r} ({subject})") from None


def dlq_subject(consumer: str) -> str:
    return f"{DLQ_SUBJECT_PREFIX}.{consumer}"


def stream_configs(settings: StreamSettings) -> list[StreamConfig]:
    configs = [
        StreamConfig(
            name=name,
            description=f"crossdock {domain} events",
            subjects=[f"{SUBJECT_ROOT}.{domain}.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=settings.max_age_seconds,
            max_bytes=settings.max_bytes,
            duplicate_window=settings.duplicate_window_seconds,
            num_replicas=settings.replicas,
        )
        for domain, name in DOMAIN_STREAMS.items()
    ]
    configs.append(
        StreamConfig(
            name=DLQ_STREAM,
            description="crossdock dead letters: events a consumer could not apply",
            subjects=[f"{DLQ_SUBJECT_PREFIX}.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=settings.dlq_max_age_seconds,
            max_bytes=settings.max_bytes,
            duplicate_window=settings.duplicate_window_seconds,
            num_replicas=settings.replicas,
        )
    )
    return configs


_COMPARED = (
    "subjects",
    "storage",
    "max_age",
    "max_bytes",
    "duplicate_window",
    "num_replicas",
    "discard",
    "description",
)


def _differs(current: StreamConfig, wanted: StreamConfig) -> bool:
    for field in _COMPARED:
        have, want = getattr(current, field), getattr(wanted, field)
        if isinstance(want, float) or isinstance(have, float):
            if abs(float(have or 0) - float(want or 0)) > 1e-6:
                return True
        elif have != want:
            return True
    return False


# A JetStream cluster answers stream requests only once its meta leader and the stream's own
# leader are elected: right after a start or a node's restart, a request may time out or be
# refused "temporarily unavailable" (503) for a few seconds. A starting service waits that out.
ENSURE_PATIENCE_SECONDS = 60.0


async def ensure_streams(
    js: JetStreamContext,
    settings: StreamSettings | None = None,
    *,
    patience_seconds: float = ENSURE_PATIENCE_SECONDS,
) -> list[str]:
    """Create missing streams and update drifted ones; returns the names changed."""
    changed: list[str] = []
    for config in stream_configs(settings or StreamSettings()):
        deadline = time.monotonic() + patience_seconds
        delay = 0.25
        while True:
            try:
                if await _ensure_stream(js, config):
                    changed.append(str(config.name))
                break
            except (nats_errors.TimeoutError, ServiceUnavailableError) as error:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("stream %s not ready yet (%r); retrying", config.name, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 4.0)
    return changed


async def _ensure_stream(js: JetStreamContext, config: StreamConfig) -> bool:
    """Create or update one stream; True when it changed."""
    assert config.name is not None
    try:
        info = await js.stream_info(config.name)
    except NotFoundError:
        try:
            await js.add_stream(config)
        except ServiceUnavailableError:
            raise
        except APIError:
            # Another service starting at the same moment created it first: fine if so.
            info = await js.stream_info(config.name)
        else:
            log.info("created stream %s", config.name)
            return True
    if _differs(info.config, config):
        await js.update_stream(config)
        log.info("updated stream %s", config.name)
        return True
    return False
