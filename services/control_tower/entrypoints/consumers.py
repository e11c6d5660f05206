"""The control tower's consumers: `control-tower-projections`, one durable per domain stream,
subscribed to every event of the catalog (services.kit.catalog.OBSERVERS declares the tower a
consumer of all of them, so its NATS user may subscribe to them; it publishes only its own
reconciliation findings).

Translation only, and cheap on purpose (the tower sees every event of every lifecycle):
- bodies are not decoded nor validated on the way in (`RawBodies`): the owners validated them
  when they published, and the tower only records what happened. The few types that carry
  references are parsed in the handler (adapters.contracts.links_of);
- every event type has the same batch handler: a run of events becomes one executemany of
  events, one of links, one of flow milestones and the exceptions' signals (opened or fixed)
  on the batch transaction, next to the kit's inbox rows;
- no consumer span per handler: the entries keep the trace id instead of joining the trace.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf import wrappers_pb2
from google.protobuf.message import Message
from nats.aio.msg import Msg
from sqlalchemy import Connection

from services.control_tower import app
from services.control_tower.adapters import contracts, exception_contracts, flow_contracts
from services.control_tower.adapters.store import SERVICE
from services.control_tower.adapters.store.repository import EventRow
from services.control_tower.domain.exceptions import Signal
from services.control_tower.domain.flows import MilestoneSeen
from services.control_tower.domain.references import Link
from services.kit import events as ev
from services.kit.catalog import load_catalog
from services.kit.consumer import ConsumerSettings, EventConsumer
from services.kit.handlers import HandlerRegistry, Headers, PermanentError, Route
from services.kit.metrics import ServiceMetrics
from services.kit.runtime import EventRuntime
from services.kit.schema_ids import SchemaResolver
from services.kit.uow import UnitOfWork

PURPOSE = "projections"


class SequencedHeaders(dict[str, str]):
    """An event's headers, plus its stream sequence (JetStream keeps it out of the headers).

    An attribute rather than a header, so a dead letter's headers stay the event's own.
    """

    __slots__ = ("stream_seq",)

    def __init__(self, headers: Headers, stream_seq: int) -> None:
        super().__init__(headers)
        self.stream_seq = stream_seq


class RawBodies:
    """The tower's decoder: the body as it came (a BytesValue), neither parsed nor validated."""

    def __call__(self, route: Route, headers: Headers, data: bytes) -> Message:
        content_type = headers.get(ev.CONTENT_TYPE, ev.PROTOBUF_CONTENT_TYPE)
        if content_type != ev.PROTOBUF_CONTENT_TYPE:
            raise PermanentError(f"unsupported content-type {content_type!r}")
        return wrappers_pb2.BytesValue(value=data)


class ProjectionConsumer(EventConsumer):
    """The kit's durable pull consumer, handing each event's stream sequence to the handler."""

    def headers_of(self, msg: Msg, stream_seq: int) -> Headers:
        return SequencedHeaders(super().headers_of(msg, stream_seq), stream_seq)


def _stream_seq(headers: Headers) -> int:
    return headers.stream_seq if isinstance(headers, SequencedHeaders) else 0


def record(events: Sequence[tuple[Message, Headers]], conn: Connection) -> None:
    """The batch handler of every event type: store the run and the links it carries."""
    rows: list[EventRow] = []
    links: list[Link] = []
    milestones: list[MilestoneSeen] = []
    signals: list[Signal] = []
    for message, headers in events:
        body = message.value if isinstance(message, wrappers_pb2.BytesValue) else b""
        event = contracts.recorded_event(headers, _stream_seq(headers))
        rows.append(EventRow(event, body))
        carried = (
            contracts.links_of(event.subject, event.aggregate_id, body)
            if contracts.carries_references(event.subject)
            else []
        )
        links += carried
        if flow_contracts.marks_milestones(event.subject):
            milestones += flow_contracts.milestones_of(event, carried, body)
        if exception_contracts.signals_event(event.subject):
            signals += exception_contracts.signals_of(event, body)
    app.record_events(UnitOfWork.of(conn), rows, links, milestones, signals)


def event_handlers() -> HandlerRegistry:
    """`record` for every event in the catalog, whatever its domain."""
    registry = HandlerRegistry()
    for event_type in load_catalog():
        registry.add_subject(event_type.subject, event_type.message_class, batch_handler=record)
    return registry


async def start_consumers(
    runtime: EventRuntime,
    registry: HandlerRegistry,
    settings: ConsumerSettings,
    metrics: ServiceMetrics | None,
) -> list[ProjectionConsumer]:
    """One durable per stream the registry reads, started; `runtime` stops them on shutdown."""
    client = runtime.schema_registry
    resolver = SchemaResolver(client) if client is not None else None
    started: list[ProjectionConsumer] = []
    for stream in sorted(registry.streams()):
        consumer = ProjectionConsumer(
            service=SERVICE,
            purpose=PURPOSE,
            stream=stream,
            registry=registry,
            db=runtime.db,
            nc=runtime.nc,
            settings=settings,
            metrics=metrics,
            decoder=RawBodies(),
            schema_resolver=resolver,
        )
        await consumer.ensure()
        consumer.start()
        runtime.consumers.append(consumer)  # stopped by the runtime's "close consumers" hook
        started.append(consumer)
    return started
