"""The partner-facing ASGI app: route → authenticate → limit → transcode → call → respond.

Every response, errors included, carries X-Correlation-Id; the same id travels to the backends in
gRPC metadata (the kit's client interceptor reads it from the contextvar set here).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send

from gateway.adapters.backends import Backends, BackendUnavailable
from gateway.adapters.store import idempotency
from gateway.adapters.store.queries import Admission, BucketPolicy, admit, take_token
from gateway.auth import bearer_token, is_signed_push, route_class_of, scope_for
from gateway.carrier_push import PUSH_ROUTE_CLASS, bucket_key, signature_headers
from gateway.docs_page import DOCS_HTML
from gateway.jsonmap import Violation
from gateway.metrics import GatewayMetrics
from gateway.problems import Problem, bad_request, problem_of_rpc_error, problem_response
from gateway.transcoder import RawBody, Route, build_request, response_json, set_idempotency_key
from services.kit.db import Database
from services.kit.request_context import (
    accept_correlation_id,
    correlation_scope,
    current_correlation_id,
)

log = logging.getLogger(__name__)

CORRELATION_HEADER = "X-Correlation-Id"
_JSON_TYPES = ("application/json",)


@dataclass(frozen=True)
class Limits:
    """Request limits; every replica must use the same values (they share the buckets)."""

    max_body_bytes: int = 1024 * 1024
    idempotency_retention_seconds: float = 24 * 3600
    # How long a claimed key stays "running" before another request may take it over.
    idempotency_lock_seconds: float = 60.0
    read_bucket: BucketPolicy = field(default_factory=lambda: BucketPolicy(100, 50))
    write_bucket: BucketPolicy = field(default_factory=lambda: BucketPolicy(50, 20))
    # Carrier pushes: one bucket per (carrier, client address).
    push_bucket: BucketPolicy = field(default_factory=lambda: BucketPolicy(100, 50))


class PartnerGateway:
    """The ASGI app. Build it with the routes, backends, database and limits from `main`."""

    def __init__(
        self,
        routes: Sequence[Route],
        backends: Backends,
        db: Database,
        openapi: dict[str, Any],
        limits: Limits | None = None,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.routes = list(routes)
        self.metrics = metrics
        self.backends = backends
        self.db = db
        self.limits = limits or Limits()
        self._openapi_body = json.dumps(openapi).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no websockets; lifespan is off (main owns start and stop)
        request = Request(scope, receive)
        response = await self.handle(request)
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        correlation_id = accept_correlation_id(request.headers.get(CORRELATION_HEADER))
        started = time.perf_counter()
        with correlation_scope(correlation_id):
            try:
                response = await self._handle(request)
            except Problem as problem:
                response = problem_response(problem, correlation_id)
            except Exception:
                log.exception("unhandled error", extra={"path": request.url.path})
                response = problem_response(
                    Problem(500, "the request could not be completed", grpc.StatusCode.INTERNAL),
                    correlation_id,
                )
            elapsed = time.perf_counter() - started
            if self.metrics is not None:
                self.metrics.observe(request.method, response.status_code, elapsed)
            # One line per request (the JSON formatter adds the correlation id).
            log.info(
                "http request",
                extra={
                    "method": request.method,
                    "path": request.url.path,
                    "status": response.status_code,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
        response.headers[CORRELATION_HEADER] = correlation_id
        return response

    async def _handle(self, request: Request) -> Response:
        path = request.url.path
        if request.method == "GET" and path == "/openapi.json":
            return Response(self._openapi_body, media_type="application/json")
        if request.method == "GET" and path == "/docs":
            return HTMLResponse(DOCS_HTML)
        if request.method == "GET" and path == "/healthz":
            return JSONResponse({"status": "ok"})
        route, path_values = self._match(request)
        signed_push = is_signed_push(route.binding)
        if signed_push:
            admission = await self._admit_push(request, path_values)
        else:
            admission = await self._admit(request, route)
        rate_headers = {
            "RateLimit-Limit": str(admission.limit),
            "RateLimit-Remaining": str(admission.remaining),
            "RateLimit-Reset": str(admission.reset_seconds),
        }
        if admission.outcome == "limited":
            raise Problem(
                429,
                "rate limit exceeded; retry after the Retry-After delay",
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                headers={**rate_headers, "Retry-After": str(admission.retry_after_seconds)},
            )
        try:
            if signed_push:  # no partner: the backend verifies the forwarded signature
                pushed = signature_headers(request.headers.items())
                response = await self._transcode(request, route, path_values, None, pushed)
            else:
                response = await self._transcode(request, route, path_values, admission.partner_id)
        except Problem as problem:
            problem.headers = {**rate_headers, **problem.headers}
            raise
        response.headers.update(rate_headers)
        return response

    def _match(self, request: Request) -> tuple[Route, dict[str, str]]:
        raw = request.scope.get("raw_path") or request.url.path.encode()
        raw_path = raw.decode("latin-1").split("?", 1)[0]
        matched = [(r, v) for r in self.routes if (v := r.template.match(raw_path)) is not None]
        if any(route.template.verb for route, _ in matched):
            # `/v1/orders/X:cancel` names the custom method, not an order "X:cancel": a plain
            # `{order_id}` template must not claim it (nor offer its methods in Allow).
            matched = [(route, values) for route, values in matched if route.template.verb]
        allowed: list[str] = []
        for route, values in matched:
            if route.binding.http_method == request.method:
                return route, values
            allowed.append(route.binding.http_method)
        if allowed:
            raise Problem(
                405,
                f"{request.method} is not allowed here",
                grpc.StatusCode.UNIMPLEMENTED,
                headers={"Allow": ", ".join(sorted(set(allowed)))},
            )
        raise Problem(404, "no such resource", grpc.StatusCode.NOT_FOUND)

    async def _admit(self, request: Request, route: Route) -> Admission:
        token = bearer_token(request.headers.get("authorization"))
        challenge = {"WWW-Authenticate": 'Bearer realm="crossdock"'}
        if token is None:
            raise Problem(
                401, "an API key is required", grpc.StatusCode.UNAUTHENTICATED, (), challenge
            )
        route_class = route_class_of(route.binding)
        policy = self.limits.read_bucket if route_class == "read" else self.limits.write_bucket
        scope = scope_for(route.binding)
        admission = await self.db.run(admit, token, scope, route_class, policy, time.time())
        if admission.outcome == "unauthenticated":
            raise Problem(
                401, "the API key is not valid", grpc.StatusCode.UNAUTHENTICATED, (), challenge
            )
        if admission.outcome == "forbidden":
            raise Problem(
                403, f"the API key lacks the {scope} scope", grpc.StatusCode.PERMISSION_DENIED
            )
        return admission

    async def _admit_push(self, request: Request, path_values: dict[str, str]) -> Admission:
        """No API key: a carrier push is rate-limited per (carrier, client address)."""
        client_host = request.client.host if request.client else ""
        bucket = bucket_key(path_values.get("carrier", ""), client_host)
        policy = self.limits.push_bucket
        return await self.db.run(take_token, bucket, PUSH_ROUTE_CLASS, policy, time.time())

    async def _read_body(self, request: Request) -> bytes:
        limit = self.limits.max_body_bytes
        too_large = Problem(
            413, f"the request body exceeds {limit} bytes", grpc.StatusCode.RESOURCE_EXHAUSTED
        )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    def _parse_json(self, request: Request, body: bytes) -> Any | None:
        if not body.strip():
            return None
        media_type = request.headers.get("content-type", "application/json").split(";")[0]
        media_type = media_type.strip().lower()
        if media_type not in _JSON_TYPES and not media_type.endswith("+json"):
            raise Problem(
                415, "the request body must be application/json", grpc.StatusCode.INVALID_ARGUMENT
            )
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError) as error:
            where = ""
            if isinstance(error, json.JSONDecodeError):
                where = f" at line {error.lineno} column {error.colno}: {error.msg}"
            raise bad_request(
                "the request body is not valid JSON", [Violation("", "malformed JSON" + where)]
            ) from None
        if parsed is None:  # a body of `null` is not "no body": the schemas say an object
            raise bad_request("the request body is null", [Violation("", "must not be null")])
        return parsed

    async def _transcode(
        self,
        request: Request,
        route: Route,
        path_values: dict[str, str],
        partner_id: str | None,
        pushed_headers: dict[str, str] | None = None,
    ) -> Response:
        body = await self._read_body(request)
        query = list(request.query_params.multi_items())
        content: Any
        if route.raw_body:
            content = RawBody(body, request.headers.get("content-type", ""))
        else:
            content = self._parse_json(request, body)
        message = build_request(route, path_values, query, content, partner_id, pushed_headers)
        key = request.headers.get("idempotency-key")
        if request.method != "POST" or key is None or partner_id is None:
            return await self._call(route, message)
        if not idempotency.valid_key(key):
            raise bad_request(
                "the Idempotency-Key header is not valid",
                [Violation("Idempotency-Key", "must be 1-255 printable ASCII characters")],
            )
        set_idempotency_key(message, key)
        return await self._call_once(request, route, message, partner_id, key, query, body)

    async def _call_once(
        self,
        request: Request,
        route: Route,
        message: Message,
        partner_id: str,
        key: str,
        query: list[tuple[str, str]],
        body: bytes,
    ) -> Response:
        limits = self.limits
        request_fingerprint = idempotency.fingerprint(request.method, request.url.path, query, body)
        claim = await self.db.run(
            idempotency.claim,
            partner_id,
            key,
            request_fingerprint,
            time.time(),
            limits.idempotency_retention_seconds,
            limits.idempotency_lock_seconds,
        )
        if claim.outcome == "replay" and claim.stored is not None:
            stored = claim.stored
            return Response(
                stored.body,
                status_code=stored.status_code,
                media_type=stored.content_type,
                headers={"Idempotent-Replayed": "true"},
            )
        if claim.outcome == "mismatch":
            raise Problem(
                422,
                "this Idempotency-Key was used with a different request",
                grpc.StatusCode.INVALID_ARGUMENT,
            )
        if claim.outcome == "running":
            raise Problem(
                409,
                "a request with this Idempotency-Key is in progress; retry later",
                grpc.StatusCode.ABORTED,
                headers={"Retry-After": "1"},
            )
        try:
            response = await self._call(route, message)
        except Problem as problem:
            response = problem_response(problem, current_correlation_id() or "")
        except BaseException:
            await self.db.run(idempotency.release, partner_id, key)
            raise
        if response.status_code >= 500 or response.status_code == 429:
            await self.db.run(idempotency.release, partner_id, key)
        else:
            stored = idempotency.StoredResponse(
                response.status_code, bytes(response.body), response.media_type or ""
            )
            await self.db.run(idempotency.complete, partner_id, key, stored)
        return response

    async def _call(self, route: Route, message: Message) -> Response:
        try:
            call = self.backends.callable_for(route)
        except BackendUnavailable:
            raise Problem(
                503,
                f"{route.binding.service.name} is not available",
                grpc.StatusCode.UNAVAILABLE,
                headers={"Retry-After": "5"},
            ) from None
        try:
            reply = await call(message)
        except grpc.aio.AioRpcError as error:
            raise problem_of_rpc_error(error) from None
        return JSONResponse(response_json(route, reply), status_code=route.success_status)
