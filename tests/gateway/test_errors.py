"""Backend gRPC errors become RFC 9457 problems with the issue's status mapping."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import Stack, bearer, order_body

MAPPING = [
    ("INVALID_ARGUMENT", 400),
    ("FAILED_PRECONDITION", 400),
    ("OUT_OF_RANGE", 400),
    ("UNAUTHENTICATED", 401),
    ("PERMISSION_DENIED", 403),
    ("NOT_FOUND", 404),
    ("ALREADY_EXISTS", 409),
    ("ABORTED", 409),
    ("RESOURCE_EXHAUSTED", 429),
    ("UNAVAILABLE", 503),
    ("DEADLINE_EXCEEDED", 504),
    ("INTERNAL", 500),
]


async def _cancel_with(stack: Stack, reason: str):  # type: ignore[no-untyped-def]
    created = await stack.client.post("/v1/orders", json=order_body(), headers=bearer(stack.key_a))
    order_id = created.json()["order"]["orderId"]
    return await stack.client.post(
        f"/v1/orders/{order_id}:cancel",
        json={"reason": reason},
        headers={**bearer(stack.key_a), "X-Correlation-Id": "corr-errors-1"},
    )


@pytest.mark.parametrize(("code", "status"), MAPPING)
async def test_grpc_status_maps_to_http(stack: Stack, code: str, status: int) -> None:
    response = await _cancel_with(stack, f"abort:{code}")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert problem["grpc_code"] == code
    assert problem["correlation_id"] == "corr-errors-1"
    assert set(problem) == {
        "type",
        "title",
        "status",
        "detail",
        "grpc_code",
        "correlation_id",
        "violations",
    }
    if status == 500:
        # Unmapped codes never leak the backend's message.
        assert "aborted with" not in problem["detail"]


async def test_invalid_argument_bad_request_details_become_violations(stack: Stack) -> None:
    response = await _cancel_with(stack, "abort:INVALID_ARGUMENT")
    assert response.json()["violations"] == [
        {"field": "reason", "description": "is not an allowed reason"}
    ]


async def test_a_domain_without_a_configured_backend_is_503(stack: Stack) -> None:
    # The test stack configures only order and inventory targets; shipments have none.
    response = await stack.client.get(
        "/v1/shipments/shp_00000000000000000000000001", headers=bearer(stack.key_a)
    )
    assert response.status_code == 503
    assert response.json()["grpc_code"] == "UNAVAILABLE"
    assert response.headers["retry-after"] == "5"
