"""No control character enters the mesh through the partner API.

A NUL (or any other C0 control character, or DEL) in any text field of any partner route that
takes a body is a 400 problem naming the field, and nothing is created. The bodies below must
reach every free-text field the contracts give those routes: a new field without a sample here
fails `test_the_samples_reach_every_free_text_field`, so the rule cannot be forgotten.
"""

from __future__ import annotations

import copy
import random
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from gateway.descriptors import bindings_of, contract_services
from localmesh import Mesh
from localmesh.demo import sample_order
from tests.e2e.test_partner_api import Partner, new_partner

# Opaque tokens are decoded by the service, and anything it did not issue is already a 400. The
# partner id is the gateway's to set from the API key; a body that names it is refused as is.
EXEMPT_FIELDS = {"page_token", "partner_id"}
# The carrier push route carries the carrier's raw bytes, verified by signature, not JSON text.
EXEMPT_ROUTES = {"/v1/carriers/{carrier}/webhooks"}
CONTROL_CHARACTERS = ["\u0000", "\u0007", "\n", "\u001f", "\u007f"]
# A well-formed shipment id nobody has (reship and cancel-and-credit name one in their path).
NO_SHIPMENT = "shp_" + "0" * 26


def full_order(external_id: str) -> dict[str, Any]:
    """A sample order that fills every optional text field too."""
    body = sample_order(external_id, random.Random(external_id))
    body["customer"]["email"] = "ada@example.com"
    body["shipTo"].update(company="Analytical Engines", phone="+15555550100")
    body["shipTo"]["email"] = "ada@example.com"
    return body


def return_body() -> dict[str, Any]:
    """A return of every text field; the contract refuses a control character before the order
    service looks at the order (which is not delivered here)."""
    return {
        "lines": [
            {
                "orderLineNumber": 1,
                "quantity": "1",
                "disposition": "RETURN_DISPOSITION_RESTOCK",
                "reason": "DAMAGED",
            }
        ],
        "returnLocationId": "WH-EAST",
    }


def subscription_body() -> dict[str, Any]:
    return {
        "url": "http://127.0.0.1:9/hooks",
        "eventTypes": ["crossdock.order.placed.v1"],
        "description": "order feed",
    }


def write_routes() -> dict[str, tuple[str, Descriptor, str]]:
    """Partner routes that take a body: template → (HTTP method, request message, body field)."""
    return {
        b.template: (b.http_method, b.method.input_type, b.body)
        for b in bindings_of(contract_services())
        if b.body and b.template not in EXEMPT_ROUTES
    }


def path_variables(template: str) -> list[str]:
    return re.findall(r"{(\w+)}", template)


def body_message(request: Descriptor, body_field: str) -> Descriptor:
    return request if body_field == "*" else request.fields_by_name[body_field].message_type


def free_text_fields(message: Descriptor, seen: set[str] | None = None) -> set[tuple[str, str]]:
    """Every (message, field) of text a caller writes, below `message`."""
    seen = set() if seen is None else seen
    if message.full_name in seen:
        return set()
    seen.add(message.full_name)
    found: set[tuple[str, str]] = set()
    for field in message.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if not field.message_type.full_name.startswith("google."):
                found |= free_text_fields(field.message_type, seen)
        elif field.type == FieldDescriptor.TYPE_STRING and field.name not in EXEMPT_FIELDS:
            found.add((message.full_name, field.name))
    return found


def text_leaves(
    message: Descriptor, body: Any, path: tuple[Any, ...] = ()
) -> Iterator[tuple[tuple[Any, ...], str, str]]:
    """(JSON path, message, field) of every text value in `body`, a JSON form of `message`."""
    for key, value in body.items():
        field = next(f for f in message.fields if f.json_name == key)
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            items = value if field.is_repeated else [value]
            for index, item in enumerate(items):
                at = (*path, key, index) if field.is_repeated else (*path, key)
                yield from text_leaves(field.message_type, item, at)
        elif field.type == FieldDescriptor.TYPE_STRING:
            items = value if field.is_repeated else [value]
            for index, _ in enumerate(items):
                at = (*path, key, index) if field.is_repeated else (*path, key)
                yield at, message.full_name, field.name


def with_text(body: dict[str, Any], path: tuple[Any, ...], extra: str) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    node: Any = changed
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = f"{node[path[-1]]}{extra}ok"
    return changed


def send(partner: Partner, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
    """One write, waiting out the partner's rate limit (this test sends ~200 writes)."""
    for _ in range(50):
        answer = partner.http.request(
            method, path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
        )
        if answer.status_code != 429:
            return answer
        time.sleep(float(answer.headers.get("Retry-After", "1")))
    raise AssertionError(f"still rate-limited: {method} {path}")


@pytest.fixture(scope="module")
def partner(mesh: Mesh) -> Partner:
    return Partner(mesh, new_partner(mesh, f"control chars {uuid.uuid4().hex[:6]}"))


@pytest.fixture(scope="module")
def cases(partner: Partner) -> dict[str, tuple[str, dict[str, Any]]]:
    """Route template → (a real path to call, a valid body)."""
    order = partner.post("/v1/orders", full_order(f"CC-{uuid.uuid4().hex[:8]}"))
    assert order.status_code == 201, order.text
    order_id = order.json()["order"]["orderId"]
    subscription = partner.post("/v1/webhooks/subscriptions", subscription_body())
    assert subscription.status_code == 201, subscription.text
    subscription_id = subscription.json()["subscription"]["subscriptionId"]
    base = f"/v1/webhooks/subscriptions/{subscription_id}"
    return {
        "/v1/orders": ("/v1/orders", full_order("CC-TEMPLATE")),
        "/v1/orders/{order_id}:cancel": (f"/v1/orders/{order_id}:cancel", {"reason": "no longer"}),
        "/v1/orders/{order_id}/returns": (f"/v1/orders/{order_id}/returns", return_body()),
        # The contract refuses the text before the order service looks for the shipment.
        "/v1/orders/{order_id}/shipments/{shipment_id}:reship": (
            f"/v1/orders/{order_id}/shipments/{NO_SHIPMENT}:reship",
            {"reason": "new address"},
        ),
        "/v1/orders/{order_id}/shipments/{shipment_id}:cancelAndCredit": (
            f"/v1/orders/{order_id}/shipments/{NO_SHIPMENT}:cancelAndCredit",
            {"reason": "undeliverable"},
        ),
        "/v1/webhooks/subscriptions": ("/v1/webhooks/subscriptions", subscription_body()),
        "/v1/webhooks/subscriptions/{subscription_id}": (
            base,
            {**subscription_body(), "description": "renamed"},
        ),
        "/v1/webhooks/subscriptions/{subscription_id}:rotateSecret": (f"{base}:rotateSecret", {}),
        "/v1/webhooks/subscriptions/{subscription_id}:redrive": (
            f"{base}:redrive",
            {"deliveryId": "whd_" + "0" * 26},
        ),
    }


def test_the_samples_reach_every_free_text_field(
    cases: dict[str, tuple[str, dict[str, Any]]],
) -> None:
    routes = write_routes()
    assert set(routes) == set(cases), "a partner route that takes a body has no sample here"
    for template, (_, request, body_field) in routes.items():
        message = body_message(request, body_field)
        reached = {(m, f) for _, m, f in text_leaves(message, cases[template][1])}
        in_path = {(message.full_name, name) for name in path_variables(template)}
        missing = free_text_fields(message) - reached - in_path
        assert not missing, f"{template}: no sample value for {sorted(missing)}"


def test_a_control_character_in_any_text_field_is_a_400_naming_it(
    partner: Partner, cases: dict[str, tuple[str, dict[str, Any]]]
) -> None:
    routes = write_routes()
    tried = 0
    for template, (path, body) in cases.items():
        method, request, body_field = routes[template]
        for leaf, _, field in text_leaves(body_message(request, body_field), body):
            for character in CONTROL_CHARACTERS:
                answer = send(partner, method, path, with_text(body, leaf, character))
                assert answer.status_code == 400, (template, leaf, repr(character), answer.text)
                problem = answer.json()
                assert answer.headers["content-type"].startswith("application/problem+json")
                assert any(field in v["field"] for v in problem["violations"]), (leaf, problem)
                tried += 1
    assert tried >= 5 * 15  # every order text field and the others, each character


def test_a_rejected_order_leaves_nothing_behind(partner: Partner) -> None:
    body = full_order(f"CC-NOTHING-{uuid.uuid4().hex[:6]}")
    body["shipTo"]["name"] = "Ada\u0000Lovelace"
    answer = partner.post("/v1/orders", body)
    assert answer.status_code == 400, answer.text
    listed = partner.get("/v1/orders", externalOrderId=body["externalOrderId"])
    assert listed.status_code == 200 and listed.json().get("orders", []) == []


def test_the_openapi_document_shows_the_rule(mesh: Mesh) -> None:
    spec = httpx.get(f"{mesh.gateway_url}/openapi.json", timeout=10).json()
    address = spec["components"]["schemas"]["crossdock.common.v1.Address"]["properties"]
    assert address["name"]["pattern"] == "^[^\\x00-\\x1F\\x7F]*$"
    assert address["lines"]["items"]["pattern"] == "^[^\\x00-\\x1F\\x7F]*$"
