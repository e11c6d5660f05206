"""Webhook subscription CRUD over real HTTP: the gateway's own WebhookService behind the
generic transcoder (scopes, isolation, validation, 201, idempotent replays, pagination)."""

from __future__ import annotations

from typing import Any

from tests.gateway.conftest import Stack, bearer

BASE = "/v1/webhooks/subscriptions"
PLACED = "crossdock.order.placed.v1"
DELIVERED = "crossdock.shipment.delivered.v1"


def subscription_body(url: str = "https://hooks.example.com/crossdock", **extra: Any) -> dict:
    return {"url": url, "eventTypes": [PLACED, DELIVERED], **extra}


async def create(stack: Stack, key: str, **extra: Any) -> dict[str, Any]:
    response = await stack.client.post(BASE, json=subscription_body(**extra), headers=bearer(key))
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_returns_201_with_the_secret_once(stack: Stack) -> None:
    created = await create(stack, stack.key_a, description="orders to ERP")
    subscription = created["subscription"]
    assert created["secret"].startswith("whsec_")
    assert subscription["subscriptionId"].startswith("whs_")
    assert subscription["eventTypes"] == [PLACED, DELIVERED]
    assert subscription["enabled"] is True
    assert subscription["description"] == "orders to ERP"
    fetched = await stack.client.get(
        f"{BASE}/{subscription['subscriptionId']}", headers=bearer(stack.key_a)
    )
    assert fetched.status_code == 200
    assert fetched.json()["subscription"] == subscription
    assert "secret" not in fetched.text


async def test_list_update_rotate_delete(stack: Stack) -> None:
    ids = [(await create(stack, stack.key_a))["subscription"]["subscriptionId"] for _ in range(3)]
    first = await stack.client.get(BASE, params={"page_size": 2}, headers=bearer(stack.key_a))
    assert first.status_code == 200
    page = first.json()
    assert [s["subscriptionId"] for s in page["subscriptions"]] == ids[::-1][:2]
    second = await stack.client.get(
        BASE, params={"page_token": page["nextPageToken"]}, headers=bearer(stack.key_a)
    )
    assert [s["subscriptionId"] for s in second.json()["subscriptions"]] == [ids[0]]
    assert second.json()["nextPageToken"] == ""

    target = f"{BASE}/{ids[0]}"
    updated = await stack.client.patch(
        target,
        json={"eventTypes": ["crossdock.billing.invoice_posted.v1"], "enabled": False},
        headers=bearer(stack.key_a),
    )
    assert updated.status_code == 200, updated.text
    body = updated.json()["subscription"]
    assert body["eventTypes"] == ["crossdock.billing.invoice_posted.v1"]
    assert body["enabled"] is False
    assert body["disabledReason"]
    assert body["url"] == "https://hooks.example.com/crossdock"  # untouched

    rotated = await stack.client.post(
        f"{target}:rotateSecret", json={"previousSecretTtlSeconds": 60}, headers=bearer(stack.key_a)
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"].startswith("whsec_")

    deleted = await stack.client.delete(target, headers=bearer(stack.key_a))
    assert deleted.status_code == 200
    gone = await stack.client.get(target, headers=bearer(stack.key_a))
    assert gone.status_code == 404


async def test_another_partners_subscription_is_404_everywhere(stack: Stack) -> None:
    theirs = (await create(stack, stack.key_b))["subscription"]["subscriptionId"]
    target = f"{BASE}/{theirs}"
    mine = bearer(stack.key_a)
    calls = [
        stack.client.get(target, headers=mine),
        stack.client.patch(target, json={"enabled": False}, headers=mine),
        stack.client.delete(target, headers=mine),
        stack.client.post(f"{target}:rotateSecret", json={}, headers=mine),
        stack.client.get(f"{target}/deliveries", headers=mine),
        stack.client.post(f"{target}:redrive", json={}, headers=mine),
    ]
    for call in calls:
        response = await call
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == "application/problem+json"
    listed = await stack.client.get(BASE, headers=mine)
    assert listed.json()["subscriptions"] == []
    # B still has it, unchanged.
    still = await stack.client.get(target, headers=bearer(stack.key_b))
    assert still.status_code == 200
    assert still.json()["subscription"]["enabled"] is True


async def test_the_webhooks_manage_scope_is_required(stack: Stack) -> None:
    _, key = await stack.new_partner("reader", scopes=["orders:read"])
    for response in (
        await stack.client.get(BASE, headers=bearer(key)),
        await stack.client.post(BASE, json=subscription_body(), headers=bearer(key)),
    ):
        assert response.status_code == 403
        assert "webhooks:manage" in response.json()["detail"]
    assert (await stack.client.get(BASE)).status_code == 401


async def test_bad_input_is_400_with_field_pointers(stack: Stack) -> None:
    cases = [
        (subscription_body(url="http://hooks.example.com/x"), "subscription.url"),
        (subscription_body(url="not a url"), "subscription.url"),
        ({"url": "https://hooks.example.com", "eventTypes": []}, "subscription.event_types"),
        (
            {"url": "https://hooks.example.com", "eventTypes": ["crossdock.inventory.reserved.v1"]},
            "subscription.event_types[0]",
        ),
        ({**subscription_body(), "partnerId": "ptn_x"}, "subscription.partner_id"),
        ({**subscription_body(), "enabled": "yes"}, "subscription.enabled"),
    ]
    for body, field in cases:
        response = await stack.client.post(BASE, json=body, headers=bearer(stack.key_a))
        assert response.status_code == 400, (body, response.text)
        fields = [v["field"] for v in response.json()["violations"]]
        assert field in fields, (body, fields)
    bad_id = await stack.client.get(f"{BASE}/nope", headers=bearer(stack.key_a))
    assert bad_id.status_code == 400
    assert [v["field"] for v in bad_id.json()["violations"]] == ["subscription_id"]
    bad_token = await stack.client.get(
        BASE, params={"page_token": "bm9wZQ"}, headers=bearer(stack.key_a)
    )
    assert bad_token.status_code == 400
    assert [v["field"] for v in bad_token.json()["violations"]] == ["page_token"]


async def test_loopback_http_urls_are_accepted_for_local_runs(stack: Stack) -> None:
    for url in ("http://127.0.0.1:9000/hook", "http://localhost/hook", "http://[::1]:8000/"):
        await create(stack, stack.key_a, url=url)


async def test_an_idempotent_create_replays_and_creates_once(stack: Stack) -> None:
    headers = {**bearer(stack.key_a), "Idempotency-Key": "sub-1"}
    first = await stack.client.post(BASE, json=subscription_body(), headers=headers)
    again = await stack.client.post(BASE, json=subscription_body(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    listed = await stack.client.get(BASE, headers=bearer(stack.key_a))
    assert len(listed.json()["subscriptions"]) == 1
    other = await stack.client.post(
        BASE, json=subscription_body(url="https://elsewhere.example.com"), headers=headers
    )
    assert other.status_code == 422


async def test_the_routes_are_in_the_openapi_document(stack: Stack) -> None:
    paths = stack.openapi["paths"]
    assert set(paths[BASE]) == {"get", "post"}
    assert set(paths[BASE + "/{subscription_id}"]) == {"get", "patch", "delete"}
    assert "get" in paths[BASE + "/{subscription_id}/deliveries"]
    assert paths[BASE]["post"]["x-required-scope"] == "webhooks:manage"
    assert "201" in paths[BASE]["post"]["responses"]
