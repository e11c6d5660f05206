"""The generic transcoder over real HTTP and gRPC: routes, parameters, bodies, input errors."""

from __future__ import annotations

from typing import Any

import httpx

from tests.gateway.conftest import Stack, bearer, order_body


async def create_order(stack: Stack, key: str, external_id: str = "PO-1") -> dict[str, Any]:
    response = await stack.client.post(
        "/v1/orders", json=order_body(external_id), headers=bearer(key)
    )
    assert response.status_code == 201, response.text
    return response.json()["order"]


def violation_fields(response: httpx.Response) -> list[str]:
    assert response.headers["content-type"] == "application/problem+json"
    return [v["field"] for v in response.json()["violations"]]


async def test_create_order_answers_201_with_proto3_json_and_the_callers_partner(
    stack: Stack,
) -> None:
    order = await create_order(stack, stack.key_a)
    assert order["orderId"].startswith("ord_")
    assert order["status"] == "ORDER_STATUS_PLACED"
    assert order["externalOrderId"] == "PO-1"
    # The gateway set partner_id from the key; the client never sent it.
    assert order["partnerId"] == stack.partner_a


async def test_snake_case_input_is_accepted_like_camel_case(stack: Stack) -> None:
    body = {
        "external_order_id": "PO-SNAKE",
        "customer": {"party_id": "C-1"},
        "ship_to": {
            "name": "Ada",
            "lines": ["1 Way"],
            "city": "London",
            "postal_code": "N1",
            "country_code": "GB",
        },
        "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price": {"currency_code": "GBP"}}],
        "currency_code": "GBP",
    }
    response = await stack.client.post("/v1/orders", json=body, headers=bearer(stack.key_a))
    assert response.status_code == 201, response.text
    assert response.json()["order"]["externalOrderId"] == "PO-SNAKE"


async def test_get_order_by_path_and_the_timeline(stack: Stack) -> None:
    order = await create_order(stack, stack.key_a)
    got = await stack.client.get(f"/v1/orders/{order['orderId']}", headers=bearer(stack.key_a))
    assert got.status_code == 200
    assert got.json()["order"]["orderId"] == order["orderId"]
    timeline = await stack.client.get(
        f"/v1/orders/{order['orderId']}/timeline", headers=bearer(stack.key_a)
    )
    assert timeline.status_code == 200
    assert timeline.json()["entries"][0]["toStatus"] == "ORDER_STATUS_PLACED"


async def test_cancel_custom_verb_routes_to_cancel_order_with_body_star(stack: Stack) -> None:
    order = await create_order(stack, stack.key_a)
    response = await stack.client.post(
        f"/v1/orders/{order['orderId']}:cancel",
        json={"reason": "customer changed mind"},
        headers=bearer(stack.key_a),
    )
    assert response.status_code == 200, response.text
    cancelled = response.json()["order"]
    assert cancelled["status"] == "ORDER_STATUS_CANCELLED"
    assert cancelled["cancelReason"] == "customer changed mind"
    assert stack.orders.calls[-1][0] == "CancelOrder"


async def test_list_orders_maps_query_parameters(stack: Stack) -> None:
    for n in range(3):
        await create_order(stack, stack.key_a, f"PO-{n}")
    response = await stack.client.get(
        "/v1/orders",
        params={"page_size": "2", "status": "ORDER_STATUS_PLACED"},
        headers=bearer(stack.key_a),
    )
    assert response.status_code == 200
    assert len(response.json()["orders"]) == 2
    camel = await stack.client.get(
        "/v1/orders", params={"pageSize": "1"}, headers=bearer(stack.key_a)
    )
    assert len(camel.json()["orders"]) == 1


async def test_repeated_query_parameters_fill_repeated_fields(stack: Stack) -> None:
    response = await stack.client.get(
        "/v1/inventory/availability",
        params=[
            ("skus", "SKU-1"),
            ("skus", "SKU-2"),
            ("location_ids", "DC-1"),
            ("locationIds", "DC-2"),
        ],
        headers=bearer(stack.key_a),
    )
    assert response.status_code == 200, response.text
    availability = response.json()["availability"]
    assert [a["sku"] for a in availability] == ["SKU-1", "SKU-2"]
    assert availability[0]["quantityAvailable"] == "2"  # int64 is a string in proto3 JSON


async def test_items_routes(stack: Stack) -> None:
    listed = await stack.client.get("/v1/items", headers=bearer(stack.key_a))
    assert listed.status_code == 200
    assert [i["sku"] for i in listed.json()["items"]] == ["SKU-0", "SKU-1", "SKU-2"]
    one = await stack.client.get("/v1/items/AB-7", headers=bearer(stack.key_a))
    assert one.json()["item"]["sku"] == "AB-7"


async def test_unknown_field_is_400_naming_it(stack: Stack) -> None:
    body = order_body()
    body["lines"][0]["colour"] = "red"
    response = await stack.client.post("/v1/orders", json=body, headers=bearer(stack.key_a))
    assert response.status_code == 400
    assert violation_fields(response) == ["order.lines[0].colour"]


async def test_wrong_type_is_400_naming_the_field(stack: Stack) -> None:
    response = await stack.client.post(
        "/v1/orders", json=order_body(quantity="lots"), headers=bearer(stack.key_a)
    )
    assert response.status_code == 400
    assert violation_fields(response) == ["order.lines[0].quantity"]
    wrong_shape = await stack.client.post(
        "/v1/orders", json={**order_body(), "lines": {"sku": "x"}}, headers=bearer(stack.key_a)
    )
    assert violation_fields(wrong_shape) == ["order.lines"]


async def test_contract_rules_are_400_with_protovalidate_paths(stack: Stack) -> None:
    response = await stack.client.post(
        "/v1/orders", json=order_body(quantity=0), headers=bearer(stack.key_a)
    )
    assert response.status_code == 400
    assert "order.lines[0].quantity" in violation_fields(response)
    too_big = await stack.client.get(
        "/v1/orders", params={"page_size": "501"}, headers=bearer(stack.key_a)
    )
    assert too_big.status_code == 400
    assert violation_fields(too_big) == ["page_size"]


async def test_malformed_json_is_400(stack: Stack) -> None:
    response = await stack.client.post(
        "/v1/orders",
        content=b'{"externalOrderId": ',
        headers={**bearer(stack.key_a), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    problem = response.json()
    assert problem["violations"][0]["description"].startswith("malformed JSON at line 1")
    assert "Traceback" not in response.text


async def test_bad_query_parameter_values_are_400(stack: Stack) -> None:
    response = await stack.client.get(
        "/v1/orders",
        params={"page_size": "ten", "status": "NOPE", "colour": "red"},
        headers=bearer(stack.key_a),
    )
    assert response.status_code == 400
    assert sorted(violation_fields(response)) == ["colour", "page_size", "status"]


async def test_client_supplied_partner_id_is_rejected(stack: Stack) -> None:
    in_query = await stack.client.get(
        "/v1/orders", params={"partner_id": stack.partner_b}, headers=bearer(stack.key_a)
    )
    assert in_query.status_code == 400
    assert violation_fields(in_query) == ["partner_id"]
    order = await create_order(stack, stack.key_a)
    in_body = await stack.client.post(
        f"/v1/orders/{order['orderId']}:cancel",
        json={"partnerId": stack.partner_b},
        headers=bearer(stack.key_a),
    )
    assert in_body.status_code == 400
    assert violation_fields(in_body) == ["partner_id"]


async def test_path_bound_field_in_body_is_rejected(stack: Stack) -> None:
    order = await create_order(stack, stack.key_a)
    response = await stack.client.post(
        f"/v1/orders/{order['orderId']}:cancel",
        json={"orderId": "ord_00000000000000000000000099"},
        headers=bearer(stack.key_a),
    )
    assert response.status_code == 400
    assert violation_fields(response) == ["order_id"]


async def test_unknown_route_is_404_and_wrong_method_is_405(stack: Stack) -> None:
    missing = await stack.client.get("/v1/nothing", headers=bearer(stack.key_a))
    assert missing.status_code == 404
    assert missing.json()["status"] == 404
    wrong = await stack.client.delete("/v1/orders", headers=bearer(stack.key_a))
    assert wrong.status_code == 405
    assert set(wrong.headers["allow"].split(", ")) == {"GET", "POST"}


async def test_custom_method_path_allows_only_its_own_method(stack: Stack) -> None:
    # `/v1/orders/X:cancel` is the cancel method, not an order "X:cancel" for GET /v1/orders/{id}.
    path = "/v1/orders/ord_00000000000000000000000000:cancel"
    response = await stack.client.get(path, headers=bearer(stack.key_a))
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


async def test_body_over_the_limit_is_413(stack: Stack) -> None:
    huge = {**order_body(), "externalOrderId": "x" * (1024 * 1024 + 10)}
    response = await stack.client.post("/v1/orders", json=huge, headers=bearer(stack.key_a))
    assert response.status_code == 413
    assert response.json()["grpc_code"] == "RESOURCE_EXHAUSTED"


async def test_a_null_body_is_rejected_not_read_as_empty(stack: Stack) -> None:
    response = await stack.client.post(
        "/v1/orders",
        content=b"null",
        headers={**bearer(stack.key_a), "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert violation_fields(response) == [""]
