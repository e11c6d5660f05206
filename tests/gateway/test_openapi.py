"""The OpenAPI document is generated from the same routes the gateway serves."""

from __future__ import annotations

import re

from tests.gateway.conftest import Stack, bearer


async def test_every_route_is_in_the_spec_and_every_spec_operation_is_routed(stack: Stack) -> None:
    spec = (await stack.client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    documented = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    routed = {(r.binding.http_method, r.template.openapi_path) for r in stack.routes}
    assert documented == routed
    assert ("POST", "/v1/orders/{order_id}:cancel") in routed
    # Each documented operation really is served: substitute a value for every path parameter
    # and check the gateway routes it (anything but 404-no-route / 405).
    for method, path in sorted(documented):
        concrete = re.sub(r"\{[^}]+\}", "x1", path)
        response = await stack.client.request(method, concrete, headers=bearer(stack.key_a))
        assert response.status_code != 405, (method, path)
        if response.status_code == 404:
            assert response.json()["detail"] != "no such resource", (method, path)


async def test_schemas_carry_proto_comments_and_protovalidate_rules(stack: Stack) -> None:
    spec = stack.openapi
    line = spec["components"]["schemas"]["crossdock.order.v1.OrderLineInput"]
    quantity = line["properties"]["quantity"]
    assert quantity["description"] == "quantity is the number of units the customer asked for."
    assert quantity["exclusiveMinimum"] == 0
    assert quantity["maximum"] == 1000000
    assert line["required"] == ["unitPrice"]
    order_input = spec["components"]["schemas"]["crossdock.order.v1.OrderInput"]
    assert order_input["properties"]["lines"]["minItems"] == 1
    assert order_input["properties"]["lines"]["maxItems"] == 200
    assert order_input["properties"]["currencyCode"]["pattern"] == "^[A-Z]{3}$"
    list_orders = spec["paths"]["/v1/orders"]["get"]
    page_size = next(p for p in list_orders["parameters"] if p["name"] == "page_size")
    assert page_size["schema"]["maximum"] == 500
    names = {p["name"] for p in list_orders["parameters"]}
    assert "partner_id" not in names  # server-owned fields are not offered to clients
    cancel = spec["paths"]["/v1/orders/{order_id}:cancel"]["post"]
    body = cancel["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"reason"}
    assert cancel["security"] == [{"bearerAuth": ["orders:write"]}]
    assert "201" in spec["paths"]["/v1/orders"]["post"]["responses"]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


async def test_docs_page_is_self_contained(stack: Stack) -> None:
    page = await stack.client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in page.text
    assert not re.search(r"(src|href)=\"https?://", page.text)  # no CDN


async def test_problem_types_resolve_to_anchors_on_the_docs_page(stack: Stack) -> None:
    page = (await stack.client.get("/docs")).text
    problem = (await stack.client.get("/v1/nowhere")).json()
    anchor = problem["type"].split("#", 1)[1]
    assert f'id="{anchor}"' in page
