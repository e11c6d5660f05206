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
    # int64: a JSON number with the bounds, or a decimal string matching exactly the same range.
    number, text = quantity["anyOf"]
    assert number["exclusiveMinimum"] == 0
    assert number["maximum"] == 1000000
    assert re.fullmatch(text["pattern"], "1000000")
    assert not re.fullmatch(text["pattern"], "0") and not re.fullmatch(text["pattern"], "1000001")
    # proto3 has no "absent" scalar: a field whose zero value breaks its rules is required.
    assert line["required"] == ["sku", "quantity", "unitPrice"]
    assert line["additionalProperties"] is False  # unknown fields are rejected
    order_input = spec["components"]["schemas"]["crossdock.order.v1.OrderInput"]
    assert order_input["properties"]["lines"]["minItems"] == 1
    assert order_input["properties"]["lines"]["maxItems"] == 200
    assert order_input["properties"]["currencyCode"]["pattern"] == "^[A-Z]{3}$"
    # CEL rules cannot be JSON Schema; they are stated in the description instead.
    assert (
        "every line's unit_price must be in the order's currency_code"
        in (order_input["description"])
    )
    # Optional fields may be null (proto3 JSON reads null as the default).
    company = spec["components"]["schemas"]["crossdock.common.v1.Address"]["properties"]["company"]
    assert "null" in company["type"]
    weight = spec["components"]["schemas"]["crossdock.common.v1.Weight"]
    unit = weight["properties"]["unit"]
    assert "WEIGHT_UNIT_UNSPECIFIED" not in unit["enum"]  # not_in: [0]
    list_orders = spec["paths"]["/v1/orders"]["get"]
    page_size = next(p for p in list_orders["parameters"] if p["name"] == "page_size")
    assert page_size["schema"]["maximum"] == 500
    names = {p["name"] for p in list_orders["parameters"]}
    assert "partner_id" not in names  # server-owned fields are not offered to clients
    cancel = spec["paths"]["/v1/orders/{order_id}:cancel"]["post"]
    body = cancel["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"reason", "lines"}
    assert cancel["security"] == [{"bearerAuth": ["orders:write"]}]
    create_responses = spec["paths"]["/v1/orders"]["post"]["responses"]
    assert "201" in create_responses
    # Every status the gateway can answer is documented, 422 (Idempotency-Key reuse) on POSTs.
    assert {"400", "401", "403", "404", "409", "413", "415", "422", "429", "503", "504"} <= set(
        create_responses
    )
    assert "422" not in list_orders["responses"]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
