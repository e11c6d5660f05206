"""Event metadata read from the contracts: routing options, CloudEvents header names, schema ids.

A business event is a generated Protobuf message carrying the `crossdock.events.v1.event` option
(EventSpec). The kit reads subject, producer and aggregate from it, so routing lives in the
contract and services never spell subjects by hand.
"""

from __future__ import annotations

from collections.abc import Mapping

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


# ---- schema ids (`ce-dataschema`) ------------------------------------------------------------
#
# With a schema registry, `ce-dataschema` names the registered schema by id as the absolute URI
# `crossdock-registry:/schemas/ids/<id>` (CloudEvents wants a URI; the path is the registry's REST
# path that returns the schema, `GET <registry>/schemas/ids/<id>`). The mapping message full name
# → id is process-wide: `start_events(..., registry_target=...)` fills it at start, after
# registering the service's schemas. Without a registry (unit tests, a service run without
# CROSSDOCK_<SVC>_SCHEMA_REGISTRY_TARGET) events carry the placeholder
# `urn:crossdock:schema:<message full name>`, which consumers accept without resolving.

DATASCHEMA_ID_PREFIX = "crossdock-registry:/schemas/ids/"
PLACEHOLDER_PREFIX = "urn:crossdock:schema:"

_schema_ids: dict[str, int] = {}
_installs = 0


class UnregisteredSchemaError(LookupError):
    """A service appended an event whose schema it did not register at start."""


def install_schema_ids(ids: Mapping[str, int]) -> None:
    """Use registered ids for `ce-dataschema` (message full name → id); see the note above.

    Every install is paired with `uninstall_schema_ids` when its runtime closes; while one is in
    force, appending an event without an id fails instead of stamping the placeholder.
    """
    global _installs
    _schema_ids.update(ids)
    _installs += 1


def uninstall_schema_ids(ids: Mapping[str, int]) -> None:
    """Undo one `install_schema_ids`; the last one returns to the placeholder mode."""
    global _installs
    _installs = max(0, _installs - 1)
    if _installs == 0:
        _schema_ids.clear()
    else:
        for name in ids:
            _schema_ids.pop(name, None)


def schema_ids_installed() -> bool:
    """True while a schema registry supplies the ids (see `install_schema_ids`)."""
    return _installs > 0


def dataschema_uri(schema_id: int) -> str:
    """`42` → `crossdock-registry:/schemas/ids/42`."""
    return f"{DATASCHEMA_ID_PREFIX}{schema_id}"


def dataschema_for(message_full_name: str) -> str:
    """The `ce-dataschema` value for a message type.

    With a registry: the URI of the id registered at start; UnregisteredSchemaError when the
    service never registered the type (its schema would be unknown to consumers). Without one:
    the placeholder `urn:crossdock:schema:<message full name>`.
    """
    if _installs == 0:
        return f"{PLACEHOLDER_PREFIX}{message_full_name}"
    schema_id = _schema_ids.get(message_full_name)
    if schema_id is None:
        raise UnregisteredSchemaError(
            f"{message_full_name} has no registered schema id: a service appends only the events "
            "it produces, and registers them at start (start_events)"
        )
    return dataschema_uri(schema_id)


def schema_id_of(dataschema: str | None) -> int | None:
    """The schema id a `ce-dataschema` value names; None when it names none (placeholder, absent).

    ValueError when it has the id form with something other than a positive integer.
    """
    if not dataschema or not dataschema.startswith(DATASCHEMA_ID_PREFIX):
        return None
    tail = dataschema[len(DATASCHEMA_ID_PREFIX) :]
    if not tail.isascii() or not tail.isdigit() or int(tail) <= 0:
        raise ValueError(f"malformed ce-dataschema {dataschema!r}")
    return int(tail)


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
