"""RFC 9457 problem details: every error the gateway answers is one of these.

Each problem carries the gRPC code (the gateway's own errors use the code a gRPC service would
have used), the correlation id and field violations; never a stack trace or exception text from
inside the gateway.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2
from starlette.responses import Response

from gateway.jsonmap import Violation
from services.kit.grpc_errors import details_of, status_from_error

PROBLEM_TYPE = "application/problem+json"
# Problem `type` URIs are relative references under the API docs, one per HTTP status.
TYPE_BASE = "/docs#problem-"

HTTP_STATUS_OF_GRPC: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    # Declared in a contract but not built yet (google.rpc.Code's own HTTP mapping).
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

# Backend errors answered with another status than their code's, by google.rpc.ErrorInfo reason
# (e.g. a well-formed request that breaks a business rule with a stated limit is 422, not the
# generic 400 of FAILED_PRECONDITION); their PreconditionFailure violations (each field and its
# limit) become the problem's violations.
HTTP_STATUS_OF_REASON: dict[tuple[grpc.StatusCode, str], int] = {
    # CreateReturn: more units than are returnable, not delivered, or past the return window.
    (grpc.StatusCode.FAILED_PRECONDITION, "RETURN_NOT_ALLOWED"): 422,
    # CancelOrder once a carrier has the parcels (or the units were picked, for a partial
    # cancel): the order's state conflicts with the request; the detail says a return is the way.
    (grpc.StatusCode.FAILED_PRECONDITION, "ORDER_NOT_CANCELLABLE"): 409,
    # Reship / cancel-and-credit a shipment the carrier did not return to sender, or one already
    # decided the other way: the shipment's state conflicts with the request.
    (grpc.StatusCode.FAILED_PRECONDITION, "SHIPMENT_NOT_RETURNED_TO_SENDER"): 409,
    (grpc.StatusCode.FAILED_PRECONDITION, "RETURNED_SHIPMENT_ALREADY_RESOLVED"): 409,
}

TITLES: dict[int, str] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class Problem(Exception):
    """An error answered as problem+json. Raise it anywhere in request handling."""

    status: int
    detail: str
    grpc_code: grpc.StatusCode
    violations: Sequence[Violation] = ()
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.detail)


def bad_request(detail: str, violations: Sequence[Violation] = ()) -> Problem:
    return Problem(400, detail, grpc.StatusCode.INVALID_ARGUMENT, violations)


def problem_of_rpc_error(error: grpc.aio.AioRpcError) -> Problem:
    """The problem for a backend's gRPC error, with its BadRequest violations if it sent any
    (and its PreconditionFailure violations when HTTP_STATUS_OF_REASON remaps it)."""
    code = error.code()
    status = HTTP_STATUS_OF_GRPC.get(code, 500)
    violations: list[Violation] = []
    rich = status_from_error(error)
    if rich is not None:
        for bad in details_of(rich, error_details_pb2.BadRequest):
            violations += [Violation(v.field, v.description) for v in bad.field_violations]
        for info in details_of(rich, error_details_pb2.ErrorInfo):
            reason_status = HTTP_STATUS_OF_REASON.get((code, info.reason))
            if reason_status is not None:
                status = reason_status
                for failure in details_of(rich, error_details_pb2.PreconditionFailure):
                    violations += [Violation(v.subject, v.description) for v in failure.violations]
                break
    detail = error.details() or code.name
    if status == 500:
        # Unmapped codes (INTERNAL, UNKNOWN, DATA_LOSS...) may carry internals: say nothing.
        detail = "the request could not be completed"
    headers = {"Retry-After": "1"} if status in (429, 503) else {}
    return Problem(status, detail, code, violations, headers)


def problem_response(problem: Problem, correlation_id: str) -> Response:
    return Response(
        problem_body(problem, correlation_id),
        status_code=problem.status,
        media_type=PROBLEM_TYPE,
        headers=dict(problem.headers),
    )


def problem_body(problem: Problem, correlation_id: str) -> bytes:
    """The problem+json document of `problem`, as every error response carries it."""
    body = {
        "type": TYPE_BASE + str(problem.status),
        "title": TITLES.get(problem.status, "Error"),
        "status": problem.status,
        "detail": problem.detail,
        "grpc_code": problem.grpc_code.name,
        "correlation_id": correlation_id,
        "violations": [
            {"field": v.field, "description": v.description} for v in problem.violations
        ],
    }
    return json.dumps(body).encode("utf-8")
