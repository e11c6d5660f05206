"""The gateway's part in a parcel returned to sender: reship and cancel-and-credit are routed
from the contract, and the order's state conflicts answer 409 naming the shipment's state."""

from __future__ import annotations

import grpc
from crossdock.order.v1 import order_service_pb2 as svc

from gateway.problems import problem_of_rpc_error
from services.kit.errors import PreconditionViolation
from services.kit.validation import violations_of
from services.order.domain.errors import (
    ReturnedShipmentAlreadyResolved,
    ShipmentNotReturnedToSender,
)
from tests.gateway.conftest import contract_routes
from tests.gateway.test_return_routes import answered_with

SHIPMENT = "shp_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"
ORDER = "ord_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"


def test_a_state_conflict_on_a_returned_shipment_is_409_naming_the_state() -> None:
    for error in (
        ShipmentNotReturnedToSender(
            f"shipment {SHIPMENT} of order ord_1 was not returned to sender (it is delivered)",
            violations=[PreconditionViolation("SHIPMENT_STATUS", SHIPMENT, "delivered")],
        ),
        ReturnedShipmentAlreadyResolved(
            f"shipment {SHIPMENT} of order ord_1 was already reshipped",
            violations=[PreconditionViolation("SHIPMENT_RESOLUTION", SHIPMENT, "reshipped")],
        ),
    ):
        problem = problem_of_rpc_error(answered_with(error))
        assert problem.status == 409
        assert problem.grpc_code is grpc.StatusCode.FAILED_PRECONDITION
        assert SHIPMENT in problem.detail
        assert [v.field for v in problem.violations] == [SHIPMENT]


def test_both_decisions_are_partner_routes_with_the_order_and_shipment_in_the_path() -> None:
    routes, _ = contract_routes()
    bound = {
        r.binding.method.name: (r.binding.http_method, r.binding.template, r.binding.body)
        for r in routes
        if r.binding.method.name.endswith("ReturnedShipment")
    }
    assert bound == {
        "ReshipReturnedShipment": (
            "POST",
            "/v1/orders/{order_id}/shipments/{shipment_id}:reship",
            "*",
        ),
        "CancelAndCreditReturnedShipment": (
            "POST",
            "/v1/orders/{order_id}/shipments/{shipment_id}:cancelAndCredit",
            "*",
        ),
    }


def test_the_contract_refuses_control_characters_and_malformed_ids() -> None:
    for request_type in (
        svc.ReshipReturnedShipmentRequest,
        svc.CancelAndCreditReturnedShipmentRequest,
    ):
        valid = request_type(order_id=ORDER, shipment_id=SHIPMENT, reason="new address")
        assert violations_of(valid) == []
        bad = request_type(order_id=ORDER, shipment_id="shp_nope", reason="new\naddress")
        assert {v.field for v in violations_of(bad)} == {"shipment_id", "reason"}
