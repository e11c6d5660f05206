"""Repositioning a durable consumer (`crossdock replay`).

JetStream cannot move an existing durable, so replay deletes it and recreates it with the same
configuration but a new start (`by_start_sequence` or `by_start_time`). Re-processing stays
idempotent: every event already applied is a duplicate in the consumer's inbox.

A running service notices by itself. Its pull requests address the durable by name, so once the
durable is recreated its next fetch is served from the new position. In the moment between delete
and create, fetches fail; the consumer loop then waits `recreate_grace` before it would recreate
the durable itself (with its default config), which leaves replay ample time to win. If a service
still wins that race, the create here fails with "already exists" and we delete and create again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging

from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, ConsumerInfo, DeliverPolicy
from nats.js.errors import APIError, NotFoundError

log = logging.getLogger(__name__)


async def streams_with_consumer(js: JetStreamContext, consumer: str) -> list[str]:
    """Names of the streams on which a durable consumer of that name exists."""
    found = []
    for info in await js.streams_info():
        name = info.config.name
        if name is None:
            continue
        try:
            await js.consumer_info(name, consumer)
        except NotFoundError:
            continue
        found.append(name)
    return found


async def reposition(
    js: JetStreamContext,
    *,
    consumer: str,
    stream: str | None = None,
    from_seq: int | None = None,
    since: dt.datetime | None = None,
    attempts: int = 3,
) -> list[ConsumerInfo]:
    """Make `consumer` redeliver from a stream sequence or a time; returns the new consumers."""
    if (from_seq is None) == (since is None):
        raise ValueError("give exactly one of from_seq and since")
    if from_seq is not None and from_seq < 1:
        raise ValueError("from_seq starts at 1")
    streams = [stream] if stream else await streams_with_consumer(js, consumer)
    if not streams:
        raise LookupError(f"no durable consumer named {consumer!r}")
    if from_seq is not None and len(streams) > 1:
        raise ValueError(
            f"{consumer!r} exists on streams {', '.join(streams)}; sequences are per stream, "
            "so pass --stream"
        )
    result = []
    for name in streams:
        config = (await js.consumer_info(name, consumer)).config
        moved = _moved(config, from_seq, since)
        result.append(await _recreate(js, name, consumer, moved, attempts))
        log.info("replayed %s on %s from %s", consumer, name, from_seq or since)
    return result


def _moved(
    config: ConsumerConfig, from_seq: int | None, since: dt.datetime | None
) -> ConsumerConfig:
    if from_seq is not None:
        return config.evolve(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=from_seq,
            opt_start_time=None,
        )
    assert since is not None
    if since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    return config.evolve(
        deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since, opt_start_seq=None
    )


async def _recreate(
    js: JetStreamContext, stream: str, consumer: str, config: ConsumerConfig, attempts: int
) -> ConsumerInfo:
    last_error: Exception | None = None
    for _ in range(attempts):
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(stream, consumer)
        try:
            return await js.add_consumer(stream, config)
        except APIError as exc:  # a running service recreated it first: go again
            last_error = exc
    raise RuntimeError(f"could not recreate {consumer} on {stream}: {last_error}")
