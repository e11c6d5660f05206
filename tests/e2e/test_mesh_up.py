"""The local mesh comes up whole: docs, the demo key, seeded data, every service SERVING."""

from __future__ import annotations

from typing import Any

import httpx
import nats
import pytest

from localmesh import Mesh
from localmesh.probes import grpc_health
from localmesh.seed import DEMO_ITEMS, DEMO_WAREHOUSES, seed_demo_data
from localmesh.services import mesh_services


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_docs_and_openapi_answer(mesh: Mesh) -> None:
    docs = httpx.get(mesh.docs_url, timeout=10)
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]
    spec = httpx.get(mesh.openapi_url, timeout=10).json()
    assert spec["openapi"].startswith("3.")
    assert "/v1/orders" in spec["paths"]


def test_demo_key_sees_the_seeded_items(mesh: Mesh) -> None:
    answer = httpx.get(mesh.gateway_url + "/v1/items", headers=bearer(mesh.demo_api_key))
    assert answer.status_code == 200, answer.text
    items = {item["sku"]: item for item in answer.json()["items"]}
    assert {item.sku for item in DEMO_ITEMS} <= set(items)
    mug = items["MUG-001"]
    assert mug["weight"] == {"value": 0.4, "unit": "WEIGHT_UNIT_KILOGRAM"}
    assert mug["unitPrice"]["currencyCode"] == "USD"
    assert mug["dimensions"]["unit"] == "DIMENSION_UNIT_CENTIMETER"


def test_requests_without_the_key_are_refused(mesh: Mesh) -> None:
    assert httpx.get(mesh.gateway_url + "/v1/items").status_code == 401
    wrong = bearer(mesh.demo_api_key[:-4] + "xxxx")
    assert httpx.get(mesh.gateway_url + "/v1/items", headers=wrong).status_code == 401


def test_admin_api_takes_the_admin_token(mesh: Mesh) -> None:
    partners = mesh.admin_url + "/admin/partners"
    created = httpx.post(
        partners, json={"name": "e2e partner"}, headers=bearer(mesh.admin_token), timeout=10
    )
    assert created.status_code == 201, created.text
    partner_id = created.json()["partner_id"]
    found = httpx.get(f"{partners}/{partner_id}", headers=bearer(mesh.admin_token), timeout=10)
    assert found.json()["name"] == "e2e partner"
    assert httpx.get(f"{partners}/{partner_id}", headers=bearer("nope")).status_code == 401


def test_every_service_reports_serving(mesh: Mesh) -> None:
    grpc_services = {spec.name for spec in mesh_services() if spec.serves_grpc}
    assert set(mesh.grpc_targets) == grpc_services
    statuses = {name: grpc_health(target) for name, target in mesh.grpc_targets.items()}
    assert statuses == {name: "SERVING" for name in grpc_services}
    for name, url in mesh.metrics_urls.items():
        assert httpx.get(url, timeout=10).status_code == 200, name
    # The gateway counts partner requests (this module's requests included).
    httpx.get(mesh.gateway_url + "/v1/items", headers=bearer(mesh.demo_api_key), timeout=10)
    exposition = httpx.get(mesh.metrics_urls["gateway"], timeout=10).text
    assert 'crossdock_http_requests_total{code="200",method="GET"}' in exposition


def test_seeding_again_duplicates_nothing(mesh: Mesh) -> None:
    def stock() -> dict[tuple[str, str], Any]:
        positions = {}
        for warehouse in DEMO_WAREHOUSES:
            answer = httpx.get(
                mesh.gateway_url + "/v1/inventory/availability",
                params=[("skus", sku) for sku in warehouse.stock]
                + [("locationIds", warehouse.location_id)],
                headers=bearer(mesh.demo_api_key),
            )
            assert answer.status_code == 200, answer.text
            for entry in answer.json()["availability"]:
                positions[(warehouse.location_id, entry["sku"])] = entry["quantityAvailable"]
        return positions

    before = stock()
    report = seed_demo_data(mesh.grpc_targets["inventory"])
    assert (report.items_created, report.locations_created) == (0, 0)
    assert stock() == before


async def test_admin_credential_reads_the_streams(mesh: Mesh) -> None:
    client = await nats.connect(mesh.nats_admin_url)
    try:
        names = {info.config.name for info in await client.jetstream().streams_info()}
    finally:
        await client.close()
    assert {"ORDER", "INVENTORY", "BILLING", "DLQ"} <= names


@pytest.mark.slow
def test_an_order_placed_through_the_gateway_reaches_invoiced(mesh: Mesh) -> None:
    assert "shipment" in mesh.services
    from localmesh.demo import PartnerApi, run_demo

    class Quiet:
        def write(self, _text: str) -> int:
            return 0

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return False

    api = PartnerApi(mesh.gateway_url, mesh.demo_api_key)
    (order,) = run_demo(api, count=1, timeout_seconds=90, out=Quiet(), seed=1)  # type: ignore[arg-type]
    assert order.status == "COMPLETED", order
    assert order.shipments and order.invoices
