"""The event catalog in the contracts: every event is routable, owned and round-trips."""

from __future__ import annotations

import re

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from services.kit.catalog import SERVICES, EventType, load_catalog

CATALOG = load_catalog()
SUBJECT = re.compile(r"^crossdock\.(?P<domain>[a-z]+)\.(?P<event>[a-z_]+)\.v(?P<version>\d+)$")

# The core event catalog: every one of these must exist, with these producers.
REQUIRED = {
    "crossdock.order.placed.v1": "order",
    "crossdock.order.allocated.v1": "order",
    "crossdock.order.backordered.v1": "order",
    "crossdock.order.released.v1": "order",
    "crossdock.order.cancelled.v1": "order",
    "crossdock.order.completed.v1": "order",
    "crossdock.inventory.reserved.v1": "inventory",
    "crossdock.inventory.reservation_released.v1": "inventory",
    "crossdock.inventory.pick_completed.v1": "inventory",
    "crossdock.inventory.adjusted.v1": "inventory",
    "crossdock.inventory.received.v1": "inventory",
    "crossdock.shipment.created.v1": "shipment",
    "crossdock.shipment.manifested.v1": "shipment",
    "crossdock.shipment.picked_up.v1": "shipment",
    "crossdock.shipment.out_for_delivery.v1": "shipment",
    "crossdock.shipment.delivered.v1": "shipment",
    "crossdock.shipment.delivery_exception.v1": "shipment",
    "crossdock.shipment.returned_to_sender.v1": "shipment",
    "crossdock.billing.invoice_posted.v1": "billing",
    "crossdock.billing.credit_note_posted.v1": "billing",
    "crossdock.billing.freight_charge_finalized.v1": "billing",
    "crossdock.return.authorized.v1": "order",
    "crossdock.return.received.v1": "order",
}


def _ids(event: EventType) -> str:
    return event.subject


def test_catalog_covers_the_design_catalog() -> None:
    producers = {event.subject: event.producer for event in CATALOG}
    missing = sorted(set(REQUIRED) - set(producers))
    assert not missing, f"events missing from the contracts: {missing}"
    wrong = {s: producers[s] for s, owner in REQUIRED.items() if producers[s] != owner}
    assert not wrong, f"events with the wrong producer: {wrong}"


def test_subjects_are_unique() -> None:
    subjects = [event.subject for event in CATALOG]
    assert len(subjects) == len(set(subjects))


@pytest.mark.parametrize("event", CATALOG, ids=_ids)
def test_event_has_subject_owner_and_known_consumers(event: EventType) -> None:
    match = SUBJECT.match(event.subject)
    assert match, (
        f"{event.full_name}: subject {event.subject!r} is not crossdock.<domain>.<event>.vN"
    )
    # The subject version matches the package version: a v2 message never rides a v1 subject.
    assert event.full_name.startswith(f"crossdock.events.v{match['version']}.")
    assert event.producer in SERVICES, f"{event.full_name}: unknown producer {event.producer!r}"
    unknown = set(event.consumers) - SERVICES
    assert not unknown, f"{event.full_name}: unknown consumers {sorted(unknown)}"
    assert event.aggregate, f"{event.full_name}: no aggregate, so no ordering key"


@pytest.mark.parametrize("event", CATALOG, ids=_ids)
def test_event_round_trips_encode_decode(event: EventType) -> None:
    original = event.message_class()
    _fill(original, depth=0)
    # Filling must have set every top-level field, or the round trip proves little.
    unset = [f.name for f in original.DESCRIPTOR.fields if not _is_set(original, f)]
    assert not unset, f"fields left unset: {unset}"

    wire = original.SerializeToString(deterministic=True)
    decoded = event.message_class.FromString(wire)

    assert decoded == original
    assert decoded.SerializeToString(deterministic=True) == wire


def _is_set(message: Message, field: FieldDescriptor) -> bool:
    if field.is_repeated:
        return len(getattr(message, field.name)) > 0
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return message.HasField(field.name)
    return getattr(message, field.name) != field.default_value


def _fill(message: Message, depth: int) -> None:
    """Set every field of message to a non-default value, nested messages included."""
    descriptor: Descriptor = message.DESCRIPTOR
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            getattr(message, field.name)["key"] = _scalar(
                field.message_type.fields_by_name["value"]
            )
            continue
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth > 4:
                continue
            if field.is_repeated:
                _fill(getattr(message, field.name).add(), depth + 1)
            else:
                _fill(getattr(message, field.name), depth + 1)
                if not message.HasField(field.name):
                    getattr(message, field.name).SetInParent()
            continue
        value = _scalar(field)
        if field.is_repeated:
            getattr(message, field.name).append(value)
        else:
            setattr(message, field.name, value)


def _scalar(field: FieldDescriptor) -> object:
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values[-1].number
    if field.type in (FieldDescriptor.TYPE_STRING,):
        return f"{field.name}-value"
    if field.type == FieldDescriptor.TYPE_BYTES:
        return field.name.encode()
    if field.type == FieldDescriptor.TYPE_BOOL:
        return True
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return 1.5
    return 7
