"""What a consumer calls: handler registration, decoding, and the permanent-error type.

A handler is a plain function `handler(event, headers, conn)`:
- `event` is the decoded protobuf message;
- `headers` are the NATS message headers (CloudEvents attributes, `traceparent`,
  `x-correlation-id`, ...), so trace extraction and correlation live in one place;
- `conn` is the unit of work's connection: its writes, the inbox row and any outbox rows it
  appends commit together.

A batch handler `handler(events, conn)` gets a run of consecutive events of one type as
`[(event, headers), ...]` in stream order, for high-volume projections that want one
`executemany` per batch instead of one statement per event. If it raises, the kit retries its
events one by one (a list of one) to isolate the bad one.

Handlers run on the DB worker thread, inside the batch transaction. They must not do I/O other
than through `conn` (publishing goes through the outbox), because a batch may be re-run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from google.protobuf.message import DecodeError, Message
from sqlalchemy import Connection

from services.kit import events as ev
from services.kit.streams import stream_for_subject

M = TypeVar("M", bound=Message)
Headers = Mapping[str, str]
Handler = Callable[[Any, Headers, Connection], None]
BatchHandler = Callable[[Sequence[tuple[Any, Headers]], Connection], None]


class PermanentError(Exception):
    """The event can never be applied as it is: dead-letter it instead of retrying.

    The kit raises it for undecodable, invalid and unknown-type events; handlers raise it for
    business-level poison (e.g. an event referring to something that can never exist).
    """


@dataclass(frozen=True)
class Route:
    """How to decode and handle one subject."""

    subject: str
    message_class: type[Message]
    handler: Handler | None = None
    batch_handler: BatchHandler | None = None

    @functools.cached_property
    def type_name(self) -> str:
        # Cached: read per consumed event (schema check, latency metric), never changes.
        return str(self.message_class.DESCRIPTOR.full_name)


class HandlerRegistry:
    """Handlers keyed by event subject (= ce-type), read from the events' EventSpec option."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}

    def on(
        self, message_class: type[M]
    ) -> Callable[
        [Callable[[M, Headers, Connection], None]], Callable[[M, Headers, Connection], None]
    ]:
        """Decorator: `@registry.on(ShipmentDelivered) def handle(event, headers, conn): ...`."""

        def register(
            handler: Callable[[M, Headers, Connection], None],
        ) -> Callable[[M, Headers, Connection], None]:
            self.add(message_class, handler)
            return handler

        return register

    def add(
        self, message_class: type[M], handler: Callable[[M, Headers, Connection], None]
    ) -> None:
        self.add_subject(ev.event_spec(message_class).subject, message_class, handler)

    def add_batch(
        self,
        message_class: type[M],
        handler: Callable[[Sequence[tuple[M, Headers]], Connection], None],
    ) -> None:
        """Register a batch handler (see the module doc) for an event type."""
        subject = ev.event_spec(message_class).subject
        self.add_subject(subject, message_class, batch_handler=handler)

    def add_subject(
        self,
        subject: str,
        message_class: type[Message],
        handler: Handler | None = None,
        *,
        batch_handler: BatchHandler | None = None,
    ) -> None:
        """Low-level registration for a message without the `event` option (tests, tools)."""
        if (handler is None) == (batch_handler is None):
            raise ValueError("give exactly one of handler and batch_handler")
        if subject in self._routes:
            raise ValueError(f"a handler for {subject} is already registered")
        stream_for_subject(subject)  # fail at wiring time, not at the first message
        self._routes[subject] = Route(subject, message_class, handler, batch_handler)

    def route(self, subject: str) -> Route | None:
        return self._routes.get(subject)

    def subjects(self) -> list[str]:
        return sorted(self._routes)

    def streams(self) -> set[str]:
        return {stream_for_subject(subject) for subject in self._routes}

    def subjects_in(self, stream: str) -> list[str]:
        return [s for s in self.subjects() if stream_for_subject(s) == stream]

    def knows_event(self, subject: str) -> bool:
        """True if some version of this subject's event is handled (`...placed.v2` vs `.v1`)."""
        try:
            name = ev.event_name_of(subject)
        except ValueError:
            return False
        return any(ev.event_name_of(s) == name for s in self._routes)

    def routes(self) -> list[Route]:
        return [self._routes[s] for s in self.subjects()]


class EventDecoder(Protocol):
    """Turns message bytes into the route's message. Raise PermanentError when it cannot.

    Pluggable. It stays sync: the consumer resolves `ce-dataschema` ids through the schema
    registry (services.kit.schema_ids.SchemaResolver) for the whole batch before decoding, so a
    decoder never waits on I/O.
    """

    def __call__(self, route: Route, headers: Headers, data: bytes) -> Message: ...


class ProtobufDecoder:
    """The default decoder: binary protobuf, optionally checked with protovalidate."""

    def __init__(self, *, validate: bool = True) -> None:
        self._validator: Any = None
        if validate:
            import protovalidate

            self._validator = protovalidate.Validator()

    def __call__(self, route: Route, headers: Headers, data: bytes) -> Message:
        content_type = headers.get(ev.CONTENT_TYPE, ev.PROTOBUF_CONTENT_TYPE)
        if content_type != ev.PROTOBUF_CONTENT_TYPE:
            raise PermanentError(f"unsupported content-type {content_type!r}")
        try:
            message = route.message_class.FromString(data)
        except DecodeError as exc:
            raise PermanentError(f"undecodable {route.type_name}: {exc}") from exc
        if self._validator is not None:
            import protovalidate

            try:
                self._validator.validate(message)
            except protovalidate.ValidationError as exc:
                raise PermanentError(f"invalid {route.type_name}: {exc}") from exc
        return message
