"""API keys: 401/403, scopes per route, rotation, revocation, partner isolation, admin API."""

from __future__ import annotations

from tests.gateway.conftest import Stack, bearer, order_body


async def test_missing_or_wrong_key_is_401(stack: Stack) -> None:
    missing = await stack.client.get("/v1/orders")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json()["grpc_code"] == "UNAUTHENTICATED"
    key_id = stack.key_a.split("_")[1]
    forged = await stack.client.get("/v1/orders", headers=bearer(f"cdk_{key_id}_not-the-secret"))
    assert forged.status_code == 401
    garbage = await stack.client.get("/v1/orders", headers=bearer("hello"))
    assert garbage.status_code == 401


async def test_missing_scope_is_403(stack: Stack) -> None:
    _, reader = await stack.new_partner("reader", scopes=["orders:read"])
    listed = await stack.client.get("/v1/orders", headers=bearer(reader))
    assert listed.status_code == 200
    write = await stack.client.post("/v1/orders", json=order_body(), headers=bearer(reader))
    assert write.status_code == 403
    assert "orders:write" in write.json()["detail"]
    inventory = await stack.client.get("/v1/items", headers=bearer(reader))
    assert inventory.status_code == 403


async def test_two_keys_rotate_and_a_revoked_key_stops_working(stack: Stack) -> None:
    keys_url = f"/admin/partners/{stack.partner_a}/keys"
    second = await stack.admin.post(keys_url, json={"scopes": ["orders:read"]})
    assert second.status_code == 201
    new_key = second.json()["api_key"]
    third = await stack.admin.post(keys_url, json={})
    assert third.status_code == 409
    for key in (stack.key_a, new_key):
        assert (await stack.client.get("/v1/orders", headers=bearer(key))).status_code == 200
    old_id = stack.key_a.split("_")[1]
    revoked = await stack.admin.delete(f"{keys_url}/{old_id}")
    assert revoked.status_code == 204
    assert (await stack.client.get("/v1/orders", headers=bearer(stack.key_a))).status_code == 401
    assert (await stack.client.get("/v1/orders", headers=bearer(new_key))).status_code == 200
    listed = (await stack.admin.get(keys_url)).json()["keys"]
    assert [k["revoked_at"] is None for k in listed] == [False, True]


async def test_another_partners_order_answers_404(stack: Stack) -> None:
    created = await stack.client.post("/v1/orders", json=order_body(), headers=bearer(stack.key_b))
    order_id = created.json()["order"]["orderId"]
    for method, path, body in [
        ("GET", f"/v1/orders/{order_id}", None),
        ("GET", f"/v1/orders/{order_id}/timeline", None),
        ("POST", f"/v1/orders/{order_id}:cancel", {"reason": "mine now"}),
    ]:
        response = await stack.client.request(method, path, json=body, headers=bearer(stack.key_a))
        assert response.status_code == 404, (path, response.text)
    mine = await stack.client.get("/v1/orders", headers=bearer(stack.key_a))
    assert mine.json()["orders"] == []


async def test_keys_are_stored_hashed(stack: Stack) -> None:
    from sqlalchemy import select

    from gateway.adapters.store.tables import api_keys

    def rows(conn):  # type: ignore[no-untyped-def]
        return conn.execute(select(api_keys)).mappings().all()

    stored = await stack.db.run(rows)
    secret = stack.key_a.split("_", 2)[2]
    for row in stored:
        assert secret.encode() not in row["secret_sha256"]
        assert len(row["secret_sha256"]) == 32


async def test_admin_api_needs_its_own_token(stack: Stack) -> None:
    no_token = await stack.admin.post(
        "/admin/partners", json={"name": "x"}, headers={"Authorization": "Bearer wrong"}
    )
    assert no_token.status_code == 401
    # A partner key is not an admin credential either.
    partner_key = await stack.admin.post(
        "/admin/partners", json={"name": "x"}, headers=bearer(stack.key_a)
    )
    assert partner_key.status_code == 401
    bad_scope = await stack.admin.post(
        f"/admin/partners/{stack.partner_b}/keys", json={"scopes": ["root"]}
    )
    assert bad_scope.status_code == 400


async def test_demo_partner_seed_uses_the_configured_key(stack: Stack) -> None:
    from gateway.main import seed_demo_partner

    chosen = "cdk_demokey1_s3cret-value"
    env = {"CROSSDOCK_DEMO_API_KEY": chosen}
    assert await seed_demo_partner(stack.db, env) == chosen
    assert await seed_demo_partner(stack.db, env) == chosen  # a restart keeps it
    assert (await stack.client.get("/v1/orders", headers=bearer(chosen))).status_code == 200
    generated = await seed_demo_partner(stack.db, {})
    assert generated.startswith("cdk_") and generated != chosen
    assert (await stack.client.get("/v1/items", headers=bearer(generated))).status_code == 200
