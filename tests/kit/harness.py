"""The kit's test service, shared by in-process tests and the child processes of tests/kit/app.py.

It is a miniature crossdock service: its own migrations (tests/kit/service), an effect table, a
handler that records one effect row per applied event, and a relay.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from sqlalchemy import Connection, select

from services.kit.db import Database
from services.kit.handlers import HandlerRegistry, PermanentError
from services.kit.migrations import migrate
from services.kit.outbox import append
from tests.kit.service.tables import effects

SERVICE = "kittest"
MIGRATIONS = Path(__file__).resolve().parent / "service" / "migrations"


def open_db(url: str, **kwargs: Any) -> Database:
    """Migrate (as an embedded service does at boot) and open the service database."""
    migrate(url, MIGRATIONS)
    return Database(url, service=SERVICE, **kwargs)


class Switch:
    """The 'fix' for poison events: while off, a note of "poison" is rejected permanently.

    Backed by a file when given one, so a test can flip it for a child process.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._on = False

    def turn_on(self) -> None:
        self._on = True
        if self.path is not None:
            self.path.write_text("fixed")

    @property
    def on(self) -> bool:
        return self._on or (self.path is not None and self.path.exists())


def effect_handler(
    consumer: str, fix: Switch | None = None, fail: Callable[[Any], bool] | None = None
) -> Callable[[Any, Mapping[str, str], Connection], None]:
    """Record one `effects` row per applied event (no unique key: doubles would show)."""

    def handle(event: Any, headers: Mapping[str, str], conn: Connection) -> None:
        if event.note == "poison" and not (fix is not None and fix.on):
            raise PermanentError("poison note")
        if fail is not None and fail(event):
            raise RuntimeError("transient test failure")
        conn.execute(
            effects.insert().values(
                event_id=headers["ce-id"], thing_id=event.thing_id, n=event.n, consumer=consumer
            )
        )

    return handle


def registry_for(
    pb: ModuleType, consumer: str, fix: Switch | None = None, **kw: Any
) -> HandlerRegistry:
    registry = HandlerRegistry()
    registry.add(pb.ThingHappened, effect_handler(consumer, fix, **kw))
    return registry


def produce(
    conn: Connection, pb: ModuleType, things: list[tuple[str, int]], note: str = ""
) -> list[str]:
    """Append one ThingHappened per (thing_id, n) in the caller's unit of work."""
    return [
        append(
            conn,
            pb.ThingHappened(thing_id=thing_id, n=n, note=note),
            thing_id,
            correlation_id=f"corr-{thing_id}-{n}",
        )
        for thing_id, n in things
    ]


def read_effects(conn: Connection) -> list[tuple[str, str, int]]:
    rows = conn.execute(
        select(effects.c.event_id, effects.c.thing_id, effects.c.n).order_by(effects.c.id)
    )
    return [(r.event_id, r.thing_id, int(r.n)) for r in rows]


async def stream_messages(js: JetStreamContext, stream: str) -> list[Any]:
    """Every message stored in a stream, in stream order (RawStreamMsg objects)."""
    info = await js.stream_info(stream)
    out: list[Any] = []
    seq = info.state.first_seq
    while seq and seq <= info.state.last_seq:
        with contextlib.suppress(NotFoundError):  # deleted messages leave gaps
            out.append(await js.get_msg(stream, seq))
        seq += 1
    return out


async def publish_event(
    js: JetStreamContext,
    event: Any,
    *,
    event_id: str,
    msg_id: str | None = None,
    subject: str | None = None,
    data: bytes | None = None,
) -> int:
    """Publish as the relay would, but with explicit ids, to stage duplicates and bad input."""
    from services.kit.events import dataschema_for, event_spec
    from services.kit.outbox import build_headers

    subject = subject or event_spec(type(event)).subject
    headers = build_headers(
        event_id=event_id,
        subject=subject,
        source=f"crossdock/{SERVICE}",
        aggregate_id=event.thing_id,
        dataschema=dataschema_for(event.DESCRIPTOR.full_name),
        correlation_id="corr",
        created_at=time.time(),
    )
    headers["Nats-Msg-Id"] = msg_id or event_id
    ack = await js.publish(
        subject, event.SerializeToString() if data is None else data, headers=headers
    )
    return int(ack.seq)
