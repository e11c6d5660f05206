"""X-Correlation-Id: accepted or generated, returned, and sent to the backend in gRPC metadata."""

from __future__ import annotations

from tests.gateway.conftest import Stack, bearer


async def test_given_id_is_returned_and_propagated(stack: Stack) -> None:
    response = await stack.client.get(
        "/v1/items", headers={**bearer(stack.key_a), "X-Correlation-Id": "partner-req-42"}
    )
    assert response.headers["x-correlation-id"] == "partner-req-42"
    name, metadata = stack.inventory.calls[-1]
    assert name == "ListItems"
    assert metadata["x-correlation-id"] == "partner-req-42"


async def test_missing_or_unusable_id_is_generated(stack: Stack) -> None:
    response = await stack.client.get("/v1/items", headers=bearer(stack.key_a))
    generated = response.headers["x-correlation-id"]
    assert len(generated) == 32
    assert stack.inventory.calls[-1][1]["x-correlation-id"] == generated
    unusable = await stack.client.get(
        "/v1/items", headers={**bearer(stack.key_a), "X-Correlation-Id": "x" * 500}
    )
    assert len(unusable.headers["x-correlation-id"]) == 32


async def test_errors_carry_the_correlation_id(stack: Stack) -> None:
    response = await stack.client.get("/v1/nowhere", headers={"X-Correlation-Id": "c-404"})
    assert response.status_code == 404
    assert response.headers["x-correlation-id"] == "c-404"
    assert response.json()["correlation_id"] == "c-404"
