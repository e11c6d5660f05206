"""The event catalog, read from the contracts.

Every business event is a message in `crossdock.events.v1` carrying the
`(crossdock.events.v1.event)` option. This module is the one place that turns those options into
Python values, so routing, stream declarations, schema registration and docs/events.md all agree
with the .proto files.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import crossdock.events.v1 as events_package
from crossdock.events.v1 import options_pb2
from google.protobuf.message import Message

# The services allowed as producers or consumers; a typo in a contract fails the catalog tests.
SERVICES = frozenset(
    {
        "order",
        "inventory",
        "shipment",
        "billing",
        "carrier-adapter",
        "schema-registry",
        "gateway",
        "control-tower",
    }
)

# Services that consume every event, whatever its contract lists: the control tower projects
# all of them read-only. Declared here, once, so a new event reaches it (and its NATS user,
# docs/events.md and the deploy checks follow) without a line in every contract.
OBSERVERS = ("control-tower",)


@dataclass(frozen=True)
class EventType:
    """One business event: its message class and where it travels."""

    message_class: type[Message]
    subject: str
    producer: str
    consumers: tuple[str, ...]
    aggregate: str
    milestone: bool

    @property
    def full_name(self) -> str:
        """The protobuf full name, e.g. "crossdock.events.v1.OrderPlaced"."""
        return str(self.message_class.DESCRIPTOR.full_name)

    @property
    def domain(self) -> str:
        """The subject's domain, e.g. "order" for "crossdock.order.placed.v1"."""
        return self.subject.split(".")[1]

    @property
    def source_file(self) -> str:
        """The .proto file that declares the event, relative to proto/."""
        return str(self.message_class.DESCRIPTOR.file.name)


def spec_of(message_class: type[Message]) -> options_pb2.EventSpec | None:
    """The EventSpec option of a message class, or None when it is not an event."""
    options = message_class.DESCRIPTOR.GetOptions()
    if not options.HasExtension(options_pb2.event):
        return None
    spec: options_pb2.EventSpec = options.Extensions[options_pb2.event]
    return spec


@cache
def load_catalog() -> tuple[EventType, ...]:
    """Every event declared in crossdock.events.v1, sorted by subject."""
    found: list[EventType] = []
    for module_info in pkgutil.iter_modules(events_package.__path__):
        if not module_info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"{events_package.__name__}.{module_info.name}")
        for name in module.DESCRIPTOR.message_types_by_name:
            message_class = getattr(module, name)
            spec = spec_of(message_class)
            if spec is None:
                continue
            found.append(
                EventType(
                    message_class=message_class,
                    subject=spec.subject,
                    producer=spec.producer,
                    consumers=_with_observers(spec.consumers),
                    aggregate=spec.aggregate,
                    milestone=spec.milestone,
                )
            )
    return tuple(sorted(found, key=lambda event: event.subject))


def _with_observers(declared: Iterable[str]) -> tuple[str, ...]:
    consumers = tuple(declared)
    return consumers + tuple(name for name in OBSERVERS if name not in consumers)


def by_subject() -> dict[str, EventType]:
    """The catalog keyed by subject."""
    return {event.subject: event for event in load_catalog()}
