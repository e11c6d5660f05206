"""Event metadata read from the contracts: routing options, CloudEvents header names, schema ids.

A business event is a generated Protobuf message carrying the `crossdock.events.v1.event` option
(EventSpec). The kit reads subject, producer and aggregate from it, so routing lives in the
contract and services never spell subjects by hand.
"""

from __future__ import annotations

from crossdock.events.v1 import options_pb2
from google.protobuf.message import Message

from services.kit.catalog import spec_of

# CloudEvents 1.0 binary-mode attributes carried as NATS headers, plus our own.
CE_SPECVERSION = "ce-specversion"
CE_ID = "ce-id"
CE_TYPE = "ce-type"
CE_SOURCE = "ce-source"
CE_TIME = "ce-time"
CE_SUBJECT = "ce-subject"
CE_DATASCHEMA = "ce-dataschema"
CONTENT_TYPE = "content-type"
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
CORRELATION_ID = "x-correlation-id"
NATS_MSG_ID = "Nats-Msg-Id"

PROTOBUF_CONTENT_TYPE = "application/protobuf"
SUBJECT_ROOT = "crossdock"


_specs: dict[type[Message], options_pb2.EventSpec] = {}


def event_spec(message_class: type[Message]) -> options_pb2.EventSpec:
    """The EventSpec of a generated event message class; ValueError if it is not an event."""
    cached = _specs.get(message_class)
    if cached is not None:
        return cached
    spec = spec_of(message_class)
    if spec is None:
        raise ValueError(
            f"{message_class.DESCRIPTOR.full_name} is not an event: it lacks the "
            "(crossdock.events.v1.event) option"
        )
    if not spec.subject.startswith(f"{SUBJECT_ROOT}.") or not spec.producer:
        raise ValueError(f"{message_class.DESCRIPTOR.full_name} has an incomplete EventSpec")
    _specs[message_class] = spec
    return spec


def dataschema_for(message_full_name: str) -> str:
    """The `ce-dataschema` value for a message type.

    Placeholder until the schema registry exists: the registry issue replaces this one function
    with a lookup of the registered schema id (the consumer's decoder resolves it back).
    """
    return f"urn:crossdock:schema:{message_full_name}"


def domain_of(subject: str) -> str:
    """`crossdock.order.placed.v1` → `order`."""
    parts = subject.split(".")
    if len(parts) < 3 or parts[0] != SUBJECT_ROOT:
        raise ValueError(f"not a crossdock event subject: {subject!r}")
    return parts[1]


def event_name_of(subject: str) -> str:
    """`crossdock.order.placed.v1` → `crossdock.order.placed` (the subject without its version)."""
    head, _, version = subject.rpartition(".")
    if not head or not version.startswith("v"):
        raise ValueError(f"event subject lacks a version suffix: {subject!r}")
    return head
