"""The gateway's part in returns: the precise 422 for a broken return rule (and nothing else
remapped), the server-owned idempotency key, and the routes in the OpenAPI document."""

from __future__ import annotations

import grpc
import pytest
from crossdock.order.v1 import order_service_pb2 as svc

from gateway.problems import Problem, problem_of_rpc_error
from gateway.transcoder import Route, build_request, set_idempotency_key
from services.kit.errors import FailedPrecondition, PreconditionViolation
from services.kit.grpc_errors import grpc_status_of, rich_status, status_trailer
from services.order.domain.errors import OrderNotRetryable, ReturnNotAllowed
from tests.gateway.conftest import contract_routes

PARTNER = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"
ORDER = "ord_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"
RETURN_BODY = {
    "lines": [
        {
            "orderLineNumber": 1,
            "quantity": "3",
            "disposition": "RETURN_DISPOSITION_RESTOCK",
            "reason": "DAMAGED",
        }
    ]
}


def answered_with(error: FailedPrecondition) -> grpc.aio.AioRpcError:
    """The error a client sees when the order service raises `error` (the kit's one mapping)."""
    status = rich_status(error, domain="order.crossdock")
    return grpc.aio.AioRpcError(
        grpc_status_of(error),
        grpc.aio.Metadata(),
        grpc.aio.Metadata(status_trailer(status)),
        details=error.message,
    )


def test_a_broken_return_rule_is_422_naming_the_line_and_limit() -> None:
    violation = PreconditionViolation(
        "RETURN_QUANTITY_EXCEEDED",
        "order_return.lines[0].quantity",
        "line 1: 2 returnable, 3 requested",
    )
    problem = problem_of_rpc_error(
        answered_with(
            ReturnNotAllowed(
                "the return is not allowed: line 1: 2 returnable, 3 requested",
                violations=[violation],
            )
        )
    )
    assert problem.status == 422
    assert problem.grpc_code is grpc.StatusCode.FAILED_PRECONDITION
    assert [(v.field, v.description) for v in problem.violations] == [
        ("order_return.lines[0].quantity", "line 1: 2 returnable, 3 requested")
    ]
    assert "line 1: 2 returnable, 3 requested" in problem.detail


def test_other_failed_preconditions_stay_400_as_before() -> None:
    for error in (
        OrderNotRetryable(
            "the order is not in exception",
            violations=[PreconditionViolation("ORDER_STATUS", ORDER, "nothing to retry")],
        ),
        FailedPrecondition("no reason given"),
    ):
        problem = problem_of_rpc_error(answered_with(error))
        assert problem.status == 400
        assert list(problem.violations) == []


def route(method: str, name: str) -> Route:
    routes, _ = contract_routes()
    return next(
        r for r in routes if r.binding.method.name == name and r.binding.http_method == method
    )


def test_the_idempotency_key_comes_from_the_header_only() -> None:
    create = route("POST", "CreateReturn")
    message = build_request(create, {"order_id": ORDER}, [], RETURN_BODY, PARTNER)
    assert isinstance(message, svc.CreateReturnRequest)
    assert message.idempotency_key == ""
    set_idempotency_key(message, "key-1")
    assert message.idempotency_key == "key-1"
    assert message.partner_id == PARTNER
    for query in ([("idempotency_key", "k")], [("idempotencyKey", "k")]):
        with pytest.raises(Problem) as refused:
            build_request(create, {"order_id": ORDER}, query, RETURN_BODY, PARTNER)
        assert refused.value.status == 400
        assert [v.field for v in refused.value.violations] == ["idempotency_key"]
    # Requests without the field are left alone.
    cancel = route("POST", "CancelOrder")
    untouched = build_request(cancel, {"order_id": ORDER}, [], {"reason": "x"}, PARTNER)
    set_idempotency_key(untouched, "key-1")
    assert "idempotency_key" not in untouched.DESCRIPTOR.fields_by_name


def test_the_return_routes_are_documented() -> None:
    _, spec = contract_routes()
    create = spec["paths"]["/v1/orders/{order_id}/returns"]["post"]
    assert create["security"] == [{"bearerAuth": ["orders:write"]}]
    assert "201" in create["responses"] and "422" in create["responses"]
    assert "returnable" in create["responses"]["422"]["description"]
    names = {p["name"] for p in create["parameters"]}
    assert {"order_id", "Idempotency-Key"} <= names
    assert not names & {"idempotency_key", "partner_id"}  # server-owned: not offered
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("crossdock.order.v1.ReturnInput")
    listing = spec["paths"]["/v1/returns"]["get"]
    assert {"order_id", "status", "page_size", "page_token"} <= {
        p["name"] for p in listing["parameters"]
    }
    assert listing["security"] == [{"bearerAuth": ["orders:read"]}]
    assert "/v1/returns/{return_id}" in spec["paths"]
