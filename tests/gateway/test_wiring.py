"""Config and wiring: settings from CROSSDOCK_GATEWAY_*, targets per domain, the built app."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gateway.adapters.store import migrate
from gateway.config import GatewayConfig
from gateway.descriptors import contract_services
from gateway.main import build, seed_demo_partner
from services.kit.config import ConfigError


def test_admin_token_is_required() -> None:
    with pytest.raises(ConfigError) as raised:
        GatewayConfig.from_env({})
    assert any("CROSSDOCK_GATEWAY_ADMIN_TOKEN" in p for p in raised.value.problems)


def test_targets_are_per_contract_domain() -> None:
    config = GatewayConfig.from_env(
        {
            "CROSSDOCK_GATEWAY_ADMIN_TOKEN": "t",
            "CROSSDOCK_GATEWAY_ORDER_TARGET": "order:50051",
            "CROSSDOCK_GATEWAY_BILLING_TARGET": "billing:50051",
        }
    )
    targets = config.targets_for(contract_services())
    assert targets == {
        "crossdock.order.v1.OrderService": "order:50051",
        "crossdock.billing.v1.BillingService": "billing:50051",
    }


async def test_built_gateway_serves_the_contract_routes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/gw.db"
    config = GatewayConfig.from_env(
        {"CROSSDOCK_GATEWAY_ADMIN_TOKEN": "t", "CROSSDOCK_GATEWAY_DB_URL": url}
    )
    migrate(url)
    built = build(config)
    try:
        key = await seed_demo_partner(built.db, {})
        transport = httpx.ASGITransport(app=built.gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            spec = (await client.get("/openapi.json")).json()
            assert "/v1/orders" in spec["paths"]
            # No targets configured: routed and authenticated, then 503 from the missing backend.
            response = await client.get("/v1/orders", headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 503
    finally:
        await built.backends.close()
        await built.db.close()
