"""What a partner receives: the delivery body, its signature, and whose event it is.

Body (JSON, compact, built once per delivery so every retry sends the same bytes):

    {"id": "whd_…", "type": "crossdock.order.placed.v1", "created": "2026-11-22T10:00:00.000000Z",
     "data": {...the event in proto3 JSON (lowerCamelCase), every field present...}}

Header `Crossdock-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]` where
v1 = HMAC-SHA256(secret, f"{t}.{body}"): Stripe's scheme. During a secret rotation's grace
period the old secret signs too, so a receiver may verify with either.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from collections.abc import Sequence

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

SIGNATURE_HEADER = "Crossdock-Signature"
DELIVERY_ID_HEADER = "Crossdock-Delivery-Id"
EVENT_TYPE_HEADER = "Crossdock-Event-Type"
PARTNER_FIELD = "partner_id"


def delivery_body(delivery_id: str, event_type: str, created: str, event: Message) -> bytes:
    data = json_format.MessageToDict(event, always_print_fields_with_no_presence=True)
    document = {"id": delivery_id, "type": event_type, "created": created, "data": data}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of `f"{timestamp}.{body}"` under `secret`."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """`t=<timestamp>,v1=<hex>` with one v1 per secret (current first)."""
    parts = [f"t={timestamp}"] + [f"v1={signature(s, timestamp, body)}" for s in secrets]
    return ",".join(parts)


def partner_path(descriptor: Descriptor) -> tuple[str, ...] | None:
    """Where an event message keeps its owner's partner id: `partner_id` at the top, or in a
    singular message field one level down (`order.partner_id`, `shipment.partner_id`)."""
    if PARTNER_FIELD in descriptor.fields_by_name:
        return (PARTNER_FIELD,)
    for field in descriptor.fields:
        nested = field.message_type
        if field.cpp_type != FieldDescriptor.CPPTYPE_MESSAGE or field.is_repeated:
            continue
        if nested is not None and PARTNER_FIELD in nested.fields_by_name:
            return (field.name, PARTNER_FIELD)
    return None


# Per message type, computed once: every consumed event asks.
_partner_path_of = functools.cache(partner_path)


def partner_of(event: Message) -> str:
    """The partner that owns an event; "" when the event names none."""
    descriptor: Descriptor = event.DESCRIPTOR  # type: ignore[assignment]
    path = _partner_path_of(descriptor)
    if path is None:
        return ""
    value: object = event
    for name in path:
        value = getattr(value, name)
    return str(value)
