"""Examples for the OpenAPI document: every JSON request body and every response gets one.

Swagger UI pre-fills "try it out" with a body's example; without one it invents placeholders
("string", 0) that break the contract's rules. So each example keeps its schema: it is derived
from the schema itself, with realistic values taken by property name from `_VALUES` where they
fit the property's rules (a value that does not fit is never used). A few request bodies are
written out whole in `_REQUEST_BODIES`: the create-order one orders the seeded demo items, so it
succeeds as it stands against a local mesh (`make run`). Error examples are the gateway's own
problem+json bodies (gateway.problems.problem_body). tests/gateway/test_openapi_examples.py
validates every example against its schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import grpc

from gateway.jsonmap import Violation
from gateway.problems import Problem, problem_body

_ULID = "01JH7Q6M3N8R2V5X9Z4B6C8D0F"  # 26 Crockford base32 characters, as the kit's ids
_CORRELATION_ID = "6f1c2a9e0b7d4c58a3e2f1d0c9b8a7e6"
_MAX_DEPTH = 8  # past this an optional nested message is left out (the schemas are recursive)
_ID_PATTERN = re.compile(r"\^([a-z]{3})_\[0-9A-HJKMNP-TV-Z\]\{26\}\$$")

# Realistic values by JSON property name (array properties: the value of one item).
_VALUES: dict[str, Any] = {
    "orderId": f"ord_{_ULID}",
    "shipmentId": f"shp_{_ULID}",
    "invoiceId": f"inv_{_ULID}",
    "creditNoteId": f"crn_{_ULID}",
    "creditNoteIds": f"crn_{_ULID}",
    "returnId": f"rma_{_ULID}",
    "subscriptionId": f"whs_{_ULID}",
    "deliveryId": f"whd_{_ULID}",
    "partnerId": f"ptn_{_ULID}",
    "packageId": f"pkg_{_ULID}",
    "labelId": f"lbl_{_ULID}",
    "rateId": f"rte_{_ULID}",
    "pickId": f"pck_{_ULID}",
    "receiptId": f"rcp_{_ULID}",
    "eventId": "0b9f4c1e-7d2a-4e8b-9c3f-5a6d7e8f9a0b",
    "correlationId": _CORRELATION_ID,
    "externalOrderId": "PO-10042",
    "sku": "MUG-001",
    "skus": "MUG-001",
    "currencyCode": "USD",
    "countryCode": "US",
    "name": "Ada Lovelace",
    "company": "Analytical Engines Inc.",
    "lines": "100 Distribution Way",
    "city": "Newark",
    "region": "NJ",
    "postalCode": "07114",
    "email": "ada@example.com",
    "phone": "+15555550100",
    "partyId": "CUST-100",
    "description": "Ceramic mug, 350 ml",
    "reason": "customer changed their mind",
    "cancelReason": "customer cancelled",
    "url": "https://partner.example.com/hooks/crossdock",
    "carrier": "ups",
    "carrierAccountId": "ups-main",
    "serviceCode": "ups_ground",
    "serviceName": "UPS Ground",
    "trackingNumber": "1Z999AA10123456784",
    "invoiceNumber": "INV-2026-000042",
    "creditNoteNumber": "CN-2026-000007",
    "series": "INV-2026",
    "locationId": "WH-EAST",
    "locationIds": "WH-EAST",
    "returnLocationId": "WH-EAST",
    "location": "Newark, NJ",
    "signedBy": "A. LOVELACE",
    "secret": "whsec_3q2-7wfHgJ0bXm9Qz5kP1vR8tY4uE6iO",
    "lot": "LOT-2026-03",
    "units": 12,
    "nanos": 0,
    "quantity": 2,
    "quantityOrdered": 2,
    "quantityAllocated": 2,
    "quantityAuthorized": 1,
    "quantityOnHand": 500,
    "quantityReserved": 20,
    "quantityAvailable": 480,
    **dict.fromkeys(
        (
            "quantityBackordered",
            "quantityPicked",
            "quantityShipped",
            "quantityDelivered",
            "quantityInvoiced",
            "quantityCancelled",
            "quantityReturned",
            "quantityNonSellable",
            "quantityReceived",
        ),
        0,
    ),
    # Reasons and errors that are empty while all is well.
    **dict.fromkeys(("exceptionReason", "failureReason", "disabledReason", "error"), ""),
    "value": 0.4,
    "length": 12.0,
    "width": 9.0,
    "height": 10.0,
    "estimatedTransitDays": 3,
    "previousSecretTtlSeconds": 3600,
    "responseStatusCode": 200,
    "duration": "86400s",
    "active": True,
    "enabled": True,
    "residential": True,
    "itemKnown": True,
    "itemActive": True,
    "nextPageToken": "",
}
# Whole request bodies, by operationId, where a body made of required fields alone would not
# show what a partner sends.
_REQUEST_BODIES: dict[str, dict[str, Any]] = {
    "OrderService_CreateOrder": {
        "externalOrderId": "PO-10042",
        "customer": {"partyId": "CUST-100", "name": "Ada Lovelace", "email": "ada@example.com"},
        "shipTo": {
            "name": "Ada Lovelace",
            "lines": ["12 Analytical Way"],
            "city": "Newark",
            "region": "NJ",
            "postalCode": "07102",
            "countryCode": "US",
        },
        "lines": [
            {
                "sku": "MUG-001",
                "quantity": "2",
                "unitPrice": {"currencyCode": "USD", "units": "12", "nanos": 0},
            },
            {
                "sku": "TEE-BLK-M",
                "quantity": "1",
                "unitPrice": {"currencyCode": "USD", "units": "19", "nanos": 990000000},
            },
        ],
        "currencyCode": "USD",
        "serviceLevel": "SERVICE_LEVEL_STANDARD",
    },
    "OrderService_CancelOrder": {"reason": "customer cancelled"},
    "OrderService_CreateReturn": {
        "lines": [
            {
                "orderLineNumber": 1,
                "quantity": "1",
                "reason": "DAMAGED",
                "disposition": "RETURN_DISPOSITION_RESTOCK",
            }
        ]
    },
    "WebhookService_UpdateWebhookSubscription": {
        "description": "order milestones for the ERP bridge",
        "enabled": True,
    },
    "WebhookService_RotateWebhookSecret": {"previousSecretTtlSeconds": 3600},
}
# A representative problem for each error status: (detail, gRPC code, violations).
_PROBLEMS: dict[int, tuple[str, grpc.StatusCode, tuple[Violation, ...]]] = {
    400: (
        "the request is not valid",
        grpc.StatusCode.INVALID_ARGUMENT,
        (Violation("order.lines[0].quantity", "value must be greater than 0"),),
    ),
    401: ("the API key is not valid", grpc.StatusCode.UNAUTHENTICATED, ()),
    404: ("no such resource", grpc.StatusCode.NOT_FOUND, ()),
    405: ("PUT is not allowed here", grpc.StatusCode.UNIMPLEMENTED, ()),
    409: (
        "a request with this Idempotency-Key is in progress; retry later",
        grpc.StatusCode.ABORTED,
        (),
    ),
    413: ("the request body exceeds 1048576 bytes", grpc.StatusCode.RESOURCE_EXHAUSTED, ()),
    415: ("the request body must be application/json", grpc.StatusCode.INVALID_ARGUMENT, ()),
    422: (
        "this Idempotency-Key was used with a different request",
        grpc.StatusCode.INVALID_ARGUMENT,
        (),
    ),
    429: (
        "rate limit exceeded; retry after the Retry-After delay",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        (),
    ),
    501: ("this operation is not implemented yet", grpc.StatusCode.UNIMPLEMENTED, ()),
    503: ("OrderService is not available", grpc.StatusCode.UNAVAILABLE, ()),
    504: ("Deadline Exceeded", grpc.StatusCode.DEADLINE_EXCEEDED, ()),
}


def add_examples(document: dict[str, Any]) -> None:
    """Give every JSON request body and every response of `document` an example, in place."""
    schemas: Mapping[str, Any] = document["components"]["schemas"]
    for item in document["paths"].values():
        for operation in item.values():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                given = _REQUEST_BODIES.get(operation["operationId"])
                builder = _Examples(schemas, request=True)
                body["example"] = given if given is not None else builder.of(body["schema"], "")
            for status, response in operation["responses"].items():
                for media_type, content in response.get("content", {}).items():
                    if media_type == "application/problem+json":
                        content["example"] = _problem(int(status), operation)
                    else:
                        content["example"] = _Examples(schemas, request=False).of(
                            content["schema"], ""
                        )


def _problem(status: int, operation: Mapping[str, Any]) -> Any:
    detail, code, violations = _PROBLEMS.get(
        status, ("the request could not be completed", grpc.StatusCode.INTERNAL, ())
    )
    if status == 403:
        scope = operation.get("x-required-scope", "orders:read")
        detail, code = f"the API key lacks the {scope} scope", grpc.StatusCode.PERMISSION_DENIED
    body = problem_body(Problem(status, detail, code, violations), _CORRELATION_ID)
    return json.loads(body)


class _Examples:
    """Examples of schemas: request bodies hold required fields; responses, every field."""

    def __init__(self, schemas: Mapping[str, Any], *, request: bool) -> None:
        self.schemas = schemas
        self.request = request

    def of(self, schema: Mapping[str, Any], name: str, seen: tuple[str, ...] = ()) -> Any:
        """An example of `schema` (for property `name`), or None when it has none to offer."""
        if "$ref" in schema:
            target = schema["$ref"].rsplit("/", 1)[-1]
            if target in seen or len(seen) >= _MAX_DEPTH:
                return None
            return self.of(self.schemas[target], name, (*seen, target))
        if "const" in schema:
            return schema["const"]
        if "anyOf" in schema:  # a 64-bit integer: the decimal-string form, as proto3 JSON writes
            number = next(s for s in schema["anyOf"] if s.get("type") == "integer")
            number = {**number, "not": schema.get("not", {})}
            return str(_integer(number, _VALUES.get(name)))
        kinds = schema.get("type", [])
        kinds = [kinds] if isinstance(kinds, str) else [k for k in kinds if k != "null"]
        if "enum" in schema:
            return _enum_value(schema["enum"], _VALUES.get(name))
        kind = kinds[0] if kinds else None
        if kind == "object":
            return self._object(schema, seen)
        if kind == "array":
            item = self.of(schema.get("items", {}), name, seen)
            if item is None:
                return [] if not schema.get("minItems") else None
            return [item] * max(1, schema.get("minItems", 1))
        if kind == "string":
            return _string(schema, _VALUES.get(name))
        if kind == "integer":
            return _integer(schema, _VALUES.get(name))
        if kind == "number":
            return _number(schema, _VALUES.get(name))
        if kind == "boolean":
            value = _VALUES.get(name)
            return value if isinstance(value, bool) else False
        return None  # a free-form value (google.protobuf.Value): no example

    def _object(self, schema: Mapping[str, Any], seen: tuple[str, ...]) -> dict[str, Any] | None:
        required = set(schema.get("required", ()))
        example: dict[str, Any] = {}
        for name, field in schema.get("properties", {}).items():
            if self.request and name not in required:
                continue
            value = self.of(field, name, seen)
            if value is None:
                if name in required:
                    return None
                continue
            example[name] = value
        return example


def _enum_value(values: list[Any], preferred: Any) -> Any:
    if preferred in values and preferred is not None:
        return preferred
    named = [v for v in values if v is not None]
    meaningful = [v for v in named if not str(v).endswith("_UNSPECIFIED")]
    return (meaningful or named or [None])[0]


def _string(schema: Mapping[str, Any], preferred: Any) -> str:
    candidates = [preferred] if isinstance(preferred, str) else []
    fmt, pattern = schema.get("format"), schema.get("pattern", "")
    by_format = {
        "date-time": "2026-03-02T14:30:00Z",
        "uri": "https://partner.example.com/hooks/crossdock",
        "email": "ada@example.com",
        "byte": "aGVsbG8=",
        "uuid": "0b9f4c1e-7d2a-4e8b-9c3f-5a6d7e8f9a0b",
    }
    if fmt in by_format:
        candidates.append(by_format[fmt])
    found = _ID_PATTERN.search(pattern)
    if found:
        candidates.append(f"{found.group(1)}_{_ULID}")
    candidates += ["example", "EXAMPLE", ""]
    return next((c for c in candidates if _fits_string(c, schema)), candidates[0])


def _fits_string(value: str, schema: Mapping[str, Any]) -> bool:
    if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
        return False
    patterns = [schema.get("pattern")] + [p.get("pattern") for p in schema.get("allOf", ())]
    return all(re.search(p, value) for p in patterns if p)


def _integer(schema: Mapping[str, Any], preferred: Any) -> int:
    low = schema.get("minimum", -(2**63))
    if "exclusiveMinimum" in schema:
        low = max(low, schema["exclusiveMinimum"] + 1)
    high = schema.get("maximum", 2**64)
    if "exclusiveMaximum" in schema:
        high = min(high, schema["exclusiveMaximum"] - 1)
    forbidden = set(schema.get("not", {}).get("enum", ()))
    for candidate in (preferred, 1, low):
        usable = isinstance(candidate, int) and not isinstance(candidate, bool)
        if usable and low <= candidate <= high and candidate not in forbidden:
            return int(candidate)
    return int(low)


def _number(schema: Mapping[str, Any], preferred: Any) -> float:
    low = schema.get("minimum", schema.get("exclusiveMinimum", float("-inf")))
    high = schema.get("maximum", schema.get("exclusiveMaximum", float("inf")))
    for candidate in (preferred, 1.0):
        if isinstance(candidate, int | float) and low < candidate < high:
            return float(candidate)
    return float(low) + 1.0 if low != float("-inf") else 1.0
