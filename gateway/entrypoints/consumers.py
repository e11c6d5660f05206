"""The gateway's event consumers: `gateway-webhooks`, one durable per stream it reads.

Every milestone event of the catalog (the events partners may subscribe to) is handled by
`gateway.webhooks.intake.enqueue`. deploy/gen_nats_auth.py reads PURPOSE to name the durable in
the gateway's NATS permissions.
"""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf.message import Message
from sqlalchemy import Connection

from gateway.webhooks.intake import enqueue
from services.kit.catalog import EventType, load_catalog
from services.kit.handlers import HandlerRegistry

PURPOSE = "webhooks"


def milestone_events() -> list[EventType]:
    """The events partners may subscribe to, from the catalog."""
    return [event for event in load_catalog() if event.milestone]


def event_handlers(retry_seconds: float) -> HandlerRegistry:
    """Handlers that turn each milestone event into deliveries retried for `retry_seconds`."""
    registry = HandlerRegistry()

    def handle(event: Message, headers: Mapping[str, str], conn: Connection) -> None:
        enqueue(conn, event, headers, retry_seconds)

    for event_type in milestone_events():
        registry.add_subject(event_type.subject, event_type.message_class, handle)
    return registry
