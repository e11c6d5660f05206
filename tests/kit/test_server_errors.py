"""What a caller sees when a request is invalid, a domain rule says no, or a handler crashes."""

from __future__ import annotations

import grpc
import pytest
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as order
from crossdock.order.v1 import order_service_pb2_grpc as order_grpc
from google.rpc import error_details_pb2

from services.kit.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    NotFound,
    PreconditionViolation,
    Unavailable,
)
from services.kit.grpc_errors import details_of, status_from_error
from services.kit.metrics import ServiceMetrics
from services.kit.request_context import CORRELATION_ID_KEY
from tests.kit.server_support import (
    ORDER_ID,
    captured_json_logs,
    create_order_request,
    order_stub,
)

# The tests here serve gRPC on loopback ports.
pytestmark = pytest.mark.integration

SECRET = "password=hunter2 at db-7.internal:5432"


class ErrorOrders(order_grpc.OrderServiceServicer):
    """CreateOrder succeeds; the other methods fail, ListOrders as its page_token says."""

    def __init__(self) -> None:
        self.created = 0

    async def CreateOrder(
        self, request: order.CreateOrderRequest, context: grpc.aio.ServicerContext
    ) -> order.CreateOrderResponse:
        self.created += 1
        return order.CreateOrderResponse(order=order_pb2.Order(order_id=ORDER_ID))

    async def GetOrder(
        self, request: order.GetOrderRequest, context: grpc.aio.ServicerContext
    ) -> order.GetOrderResponse:
        raise NotFound(
            f"order {request.order_id} not found",
            resource_type="crossdock.order.v1.Order",
            resource_name=request.order_id,
        )

    async def CancelOrder(
        self, request: order.CancelOrderRequest, context: grpc.aio.ServicerContext
    ) -> order.CancelOrderResponse:
        raise RuntimeError(f"could not connect: {SECRET}")

    async def ListOrders(
        self, request: order.ListOrdersRequest, context: grpc.aio.ServicerContext
    ) -> order.ListOrdersResponse:
        raise {
            "ALREADY_EXISTS": AlreadyExists(
                "external_order_id PO-1001 is already order " + ORDER_ID,
                resource_type="crossdock.order.v1.Order",
                resource_name=ORDER_ID,
                reason="EXTERNAL_ORDER_ID_TAKEN",
                metadata={"order_id": ORDER_ID, "external_order_id": "PO-1001"},
            ),
            "FAILED_PRECONDITION": FailedPrecondition(
                "the order has shipped",
                reason="ORDER_SHIPPED",
                violations=[PreconditionViolation("ORDER_STATUS", ORDER_ID, "shipped")],
            ),
            "ABORTED": Conflict("the order changed meanwhile; retry"),
            "UNAVAILABLE": Unavailable("inventory is down", retry_after_seconds=1.5),
        }[request.page_token]


@pytest.fixture
def metrics() -> ServiceMetrics:
    return ServiceMetrics("kit-test")


async def test_invalid_request_names_exactly_the_bad_fields(metrics: ServiceMetrics) -> None:
    servicer = ErrorOrders()
    request = create_order_request()
    request.order.lines[0].quantity = 0
    request.order.currency_code = "usd"
    request.order.lines[0].unit_price.currency_code = "usd"
    async with order_stub(servicer, metrics=metrics) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CreateOrder(request)

    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = status_from_error(error)
    assert status is not None
    (bad_request,) = details_of(status, error_details_pb2.BadRequest)
    violations = {v.field: v.reason for v in bad_request.field_violations}
    assert violations == {
        "order.lines[0].quantity": "int64.gt_lte",
        "order.currency_code": "string.pattern",
        "order.lines[0].unit_price.currency_code": "string.pattern",
    }
    assert all(v.description for v in bad_request.field_violations)
    assert servicer.created == 0, "an invalid request must never reach the handler"
    assert _count(metrics, "CreateOrder", "INVALID_ARGUMENT") == 1


async def test_unexpected_exception_is_internal_and_leaks_nothing(metrics: ServiceMetrics) -> None:
    async with order_stub(ErrorOrders(), metrics=metrics) as stub:
        with captured_json_logs() as logs, pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CancelOrder(
                order.CancelOrderRequest(order_id=ORDER_ID, reason="customer asked"),
                metadata=((CORRELATION_ID_KEY, "cid-internal-1"),),
            )

    error = caught.value
    assert error.code() == grpc.StatusCode.INTERNAL
    told = f"{error.details()} {error.trailing_metadata()} {error.debug_error_string()}"
    for leak in ("hunter2", "db-7.internal", "RuntimeError", "Traceback", "could not connect"):
        assert leak not in told
    assert "cid-internal-1" in (error.details() or "")
    assert (CORRELATION_ID_KEY, "cid-internal-1") in tuple(error.trailing_metadata() or ())

    (logged,) = [line for line in logs if line["level"] == "ERROR"]
    assert logged["correlation_id"] == "cid-internal-1"
    assert logged["exception_type"] == "RuntimeError"
    assert "Traceback (most recent call last)" in logged["exception"]
    assert "hunter2" in logged["exception"], "the log, unlike the caller, gets the whole story"
    assert "CancelOrder" in logged["message"]
    assert _count(metrics, "CancelOrder", "INTERNAL") == 1


async def test_domain_not_found_maps_to_not_found_with_resource_info() -> None:
    async with order_stub(ErrorOrders()) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetOrder(order.GetOrderRequest(order_id=ORDER_ID))

    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == f"order {ORDER_ID} not found"
    status = status_from_error(caught.value)
    assert status is not None
    (resource,) = details_of(status, error_details_pb2.ResourceInfo)
    assert (resource.resource_type, resource.resource_name) == (
        "crossdock.order.v1.Order",
        ORDER_ID,
    )


async def _list_orders_failure(page_token: str) -> grpc.aio.AioRpcError:
    async with order_stub(ErrorOrders(), service="order") as stub:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListOrders(order.ListOrdersRequest(page_token=page_token))
    return caught.value


async def test_already_exists_carries_its_details() -> None:
    error = await _list_orders_failure("ALREADY_EXISTS")

    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    status = status_from_error(error)
    assert status is not None
    (info,) = details_of(status, error_details_pb2.ErrorInfo)
    assert info.reason == "EXTERNAL_ORDER_ID_TAKEN"
    assert info.domain == "order.crossdock"
    assert dict(info.metadata) == {"order_id": ORDER_ID, "external_order_id": "PO-1001"}
    (resource,) = details_of(status, error_details_pb2.ResourceInfo)
    assert resource.resource_name == ORDER_ID


@pytest.mark.parametrize(
    ("page_token", "code", "detail_type"),
    [
        ("FAILED_PRECONDITION", grpc.StatusCode.FAILED_PRECONDITION, "PreconditionFailure"),
        ("ABORTED", grpc.StatusCode.ABORTED, "ErrorInfo"),
        ("UNAVAILABLE", grpc.StatusCode.UNAVAILABLE, "RetryInfo"),
    ],
)
async def test_other_domain_errors_map_to_their_codes(
    page_token: str, code: grpc.StatusCode, detail_type: str
) -> None:
    error = await _list_orders_failure(page_token)

    assert error.code() == code
    status = status_from_error(error)
    assert status is not None
    assert details_of(status, getattr(error_details_pb2, detail_type))


async def test_successful_calls_are_counted_as_ok(metrics: ServiceMetrics) -> None:
    async with order_stub(ErrorOrders(), metrics=metrics) as stub:
        for _ in range(3):
            await stub.CreateOrder(create_order_request())

    assert _count(metrics, "CreateOrder", "OK") == 3
    latency_count = metrics.registry.get_sample_value(
        "crossdock_grpc_server_handling_seconds_count",
        {"method": "/crossdock.order.v1.OrderService/CreateOrder"},
    )
    assert latency_count == 3


def _count(metrics: ServiceMetrics, method: str, code: str) -> float | None:
    return metrics.registry.get_sample_value(
        "crossdock_grpc_requests_total",
        {"method": f"/crossdock.order.v1.OrderService/{method}", "code": code},
    )


async def test_calls_are_counted_by_method_and_code_each_time(metrics: ServiceMetrics) -> None:
    """Each method's metric children are looked up once and kept: counts must still land on
    the right (method, code) whatever the order of methods and outcomes."""
    async with order_stub(ErrorOrders(), metrics=metrics) as stub:
        for _ in range(2):
            await stub.CreateOrder(create_order_request())
            for page_token in ("ABORTED", "UNAVAILABLE", "ABORTED"):
                with pytest.raises(grpc.aio.AioRpcError):
                    await stub.ListOrders(order.ListOrdersRequest(page_token=page_token))
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.GetOrder(order.GetOrderRequest(order_id=ORDER_ID))

    assert _count(metrics, "CreateOrder", "OK") == 2
    assert _count(metrics, "ListOrders", "ABORTED") == 4
    assert _count(metrics, "ListOrders", "UNAVAILABLE") == 2
    assert _count(metrics, "ListOrders", "OK") is None
    assert _count(metrics, "GetOrder", "NOT_FOUND") == 2
    for method, calls in (("CreateOrder", 2), ("ListOrders", 6), ("GetOrder", 2)):
        latency_count = metrics.registry.get_sample_value(
            "crossdock_grpc_server_handling_seconds_count",
            {"method": f"/crossdock.order.v1.OrderService/{method}"},
        )
        assert latency_count == calls, method
