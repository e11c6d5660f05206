"""The partner REST API over real HTTP against the running mesh (localmesh, every service its own
process): an order placed with the demo key reaches invoiced, and the BOLA matrix — partner A
tries every one of partner B's ids (orders, shipments, invoices, returns...) on every route that
takes one, and gets 404 each time.

The matrix is built from /openapi.json, so a new route with an id parameter that this test does
not know how to fill fails it instead of going unchecked.
"""

from __future__ import annotations

import itertools
import random
import re
import uuid
from typing import Any

import httpx
import pytest

from localmesh import Mesh
from localmesh.demo import sample_order
from tests.fixtures.waiting import wait_until

COMPLETED = "ORDER_STATUS_COMPLETED"
# A well-formed id of each kind that exists nowhere, for kinds partner B has none of.
NOBODY = "01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"
# Route parameters that name no partner-owned resource.
NOT_OWNED = {"sku", "carrier"}
# Valid bodies for routes that take one, so only ownership can refuse the call.
BODIES: dict[str, dict[str, Any]] = {
    "returns": {
        "lines": [
            {
                "orderLineNumber": 1,
                "quantity": "1",
                "disposition": "RETURN_DISPOSITION_RESTOCK",
                "reason": "DAMAGED",
            }
        ]
    },
    "cancel": {"reason": "changed my mind"},
    "redrive": {},
    "rotateSecret": {},
    "subscriptions": {"url": "http://127.0.0.1:9/hooks"},
}


def body_for(template: str, method: str) -> dict[str, Any] | None:
    if method not in {"post", "patch", "put"}:
        return None
    last = re.split(r"[/:]", template)[-1]
    if last in BODIES:
        return BODIES[last]
    return BODIES["subscriptions"] if "subscriptions" in template else {}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Partner:
    def __init__(self, mesh: Mesh, key: str) -> None:
        self.http = httpx.Client(base_url=mesh.gateway_url, headers=bearer(key), timeout=15)

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.http.get(path, params=params)

    def place_and_complete(self, external_id: str) -> dict[str, Any]:
        created = self.post("/v1/orders", sample_order(external_id, random.Random(external_id)))
        assert created.status_code == 201, created.text
        order_id = created.json()["order"]["orderId"]
        order = wait_until(
            lambda: self.get(f"/v1/orders/{order_id}").json()["order"],
            lambda o: o["status"] == COMPLETED,
            timeout=60,
            interval=0.5,
        )
        assert order["status"] == COMPLETED, order
        return dict(order)


def new_partner(mesh: Mesh, name: str) -> str:
    admin = httpx.Client(base_url=mesh.admin_url, headers=bearer(mesh.admin_token), timeout=10)
    partner = admin.post("/admin/partners", json={"name": name})
    assert partner.status_code == 201, partner.text
    key = admin.post(f"/admin/partners/{partner.json()['partner_id']}/keys", json={})
    assert key.status_code == 201, key.text
    return str(key.json()["api_key"])


@pytest.fixture(scope="module")
def partner_b(mesh: Mesh) -> dict[str, list[str]]:
    """Partner B's resources after one completed order: its ids by kind."""
    b = Partner(mesh, new_partner(mesh, "partner B"))
    order = b.place_and_complete("B-0001")
    order_id = order["orderId"]
    shipments = b.get("/v1/shipments", orderId=order_id).json()["shipments"]
    invoices = b.get("/v1/invoices", orderId=order_id).json()["invoices"]
    ids: dict[str, list[str]] = {
        "order": [order_id],
        "shipment": [s["shipmentId"] for s in shipments],
        "invoice": [i["invoiceId"] for i in invoices],
    }
    returned = b.post(f"/v1/orders/{order_id}/returns", BODIES["returns"])
    assert returned.status_code == 201, returned.text
    ids["return"] = [returned.json()["orderReturn"]["returnId"]]
    subscription = b.post(
        "/v1/webhooks/subscriptions",
        {"url": "http://127.0.0.1:9/hooks", "eventTypes": ["crossdock.order.completed.v1"]},
    )
    if subscription.status_code == 201:
        ids["subscription"] = [subscription.json()["subscription"]["subscriptionId"]]
    assert ids["shipment"] and ids["invoice"], ids
    return ids


def test_an_order_placed_with_the_demo_key_reaches_invoiced(mesh: Mesh) -> None:
    a = Partner(mesh, mesh.demo_api_key)
    order = a.place_and_complete("A-0001")
    invoices = a.get("/v1/invoices", orderId=order["orderId"]).json()["invoices"]
    assert invoices and {i["orderId"] for i in invoices} == {order["orderId"]}
    shipped = sum(int(line.get("quantityShipped", 0)) for line in order["lines"])
    invoiced = sum(int(line.get("quantityInvoiced", 0)) for line in order["lines"])
    assert shipped == invoiced > 0


def _kind(parameter: str) -> str:
    """`orderId` / `order_id` → `order`."""
    return re.sub(r"_?id$", "", re.sub(r"(?<!^)(?=[A-Z])", "_", parameter).lower()).replace("_", "")


def _unknown_id(operations: dict[str, Any], parameter: str) -> str:
    """A well-formed id nobody has, from the parameter's documented pattern (e.g. ^crn_...)."""
    for operation in operations.values():
        for declared in operation.get("parameters", []):
            if declared.get("name") == parameter:
                pattern = declared.get("schema", {}).get("pattern", "")
                prefix = re.match(r"\^(?:\^\$\|\^)?([a-z]+)_", pattern)
                if prefix:
                    return f"{prefix.group(1)}_{NOBODY}"
    raise AssertionError(f"no id pattern documented for {parameter}")


def test_partner_a_gets_404_for_every_id_of_partner_b(
    mesh: Mesh, partner_b: dict[str, list[str]]
) -> None:
    a = Partner(mesh, mesh.demo_api_key)
    spec = httpx.get(mesh.openapi_url, timeout=10).json()
    tried: list[tuple[str, str]] = []
    for template, operations in spec["paths"].items():
        parameters = re.findall(r"{([^}]+)}", template)
        owned = [p for p in parameters if p not in NOT_OWNED]
        if not owned:
            continue
        # Every id in the path is partner B's (e.g. B's order and B's shipment of it).
        choices = [partner_b.get(_kind(p)) or [_unknown_id(operations, p)] for p in owned]
        for b_ids in itertools.product(*choices):
            path = template
            for parameter, b_id in zip(owned, b_ids, strict=True):
                path = path.replace("{" + parameter + "}", b_id)
            for method in operations:
                if method not in {"get", "post", "patch", "delete", "put"}:
                    continue
                body = body_for(template, method)
                answer = a.http.request(
                    method.upper(),
                    path,
                    json=body,
                    headers={"Idempotency-Key": str(uuid.uuid4())},
                )
                tried.append((method.upper(), path))
                assert answer.status_code == 404, (method, path, answer.status_code, answer.text)
                assert answer.headers["content-type"].startswith("application/problem+json")
    kinds_tried = {_kind(p) for t in spec["paths"] for p in re.findall(r"{([^}]+)}", t)}
    assert {"order", "shipment", "invoice", "return"} <= kinds_tried
    assert len(tried) >= 8, tried

    # Lists never show B's resources, even filtered by B's order.
    b_order = partner_b["order"][0]
    for path, key in (
        ("/v1/orders", "orders"),
        ("/v1/shipments", "shipments"),
        ("/v1/invoices", "invoices"),
        ("/v1/returns", "returns"),
    ):
        listed = a.get(path)
        assert listed.status_code == 200, listed.text
        assert all(item.get("orderId") != b_order for item in listed.json().get(key, [])), path
    for path, key in (
        ("/v1/shipments", "shipments"),
        ("/v1/invoices", "invoices"),
        ("/v1/returns", "returns"),
    ):
        filtered = a.get(path, orderId=b_order)
        assert filtered.status_code == 200, filtered.text
        assert filtered.json().get(key, []) == [], path


def test_partners_find_an_order_by_their_own_id_and_only_their_own(mesh: Mesh) -> None:
    """GET /v1/orders?externalOrderId=… finds the partner's order; another partner using the same
    external id sees only its own; a malformed id is a precise 400."""
    first = Partner(mesh, new_partner(mesh, f"lookup A {uuid.uuid4().hex[:6]}"))
    second = Partner(mesh, new_partner(mesh, f"lookup B {uuid.uuid4().hex[:6]}"))
    shared_id = f"PO-{uuid.uuid4().hex[:10]}"
    placed = {}
    for partner in (first, second):
        for external_id in (shared_id, f"{shared_id}-OTHER"):
            created = partner.post("/v1/orders", sample_order(external_id, random.Random(1)))
            assert created.status_code == 201, created.text
            placed[(id(partner), external_id)] = created.json()["order"]["orderId"]

    for partner in (first, second):
        found = partner.get("/v1/orders", externalOrderId=shared_id)
        assert found.status_code == 200, found.text
        orders = found.json()["orders"]
        assert [o["orderId"] for o in orders] == [placed[(id(partner), shared_id)]]
        assert orders[0]["externalOrderId"] == shared_id

    assert first.get("/v1/orders", externalOrderId="PO-NEVER-PLACED").json().get("orders", []) == []
    bad = first.get("/v1/orders", externalOrderId="bad id\u0000")
    assert bad.status_code == 400, bad.text
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert "external_order_id" in bad.text or "externalOrderId" in bad.text
