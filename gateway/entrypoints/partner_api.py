"""The partner-facing ASGI app: route → authenticate → limit → transcode → call → respond.

A POST with an Idempotency-Key is read ahead and its key claimed in the admission's transaction
(gateway.entrypoints.idempotent_posts), so every request takes one unit of work before its call.

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
from sqlalchemy import exc as sa_exc
from starlette.types import Receive, Scope, Send

from gateway.adapters.backends import Backends, BackendUnavailable
from gateway.adapters.push_buckets import DEFAULT_MAX_BUCKETS, PushBuckets
from gateway.adapters.store import idempotency
from gateway.adapters.store.queries import Admission, BucketPolicy, admit
from gateway.auth import bearer_token, is_signed_push, route_class_of, scope_for
from gateway.carrier_push import bucket_key, keeps_contract, may_be_signature, signature_headers
from gateway.docs_page import DocsSite
from gateway.entrypoints.http_exchange import Incoming, Reply
from gateway.entrypoints.idempotent_posts import Claimed, ReadAhead, admit_and_claim
from gateway.jsonmap import Violation
from gateway.metrics import GatewayMetrics
from gateway.openapi import PROBLEM_STATUSES
from gateway.problems import PROBLEM_TYPE, Problem, bad_request, problem_body, problem_of_rpc_error
from gateway.routing import RouteTable
from gateway.transcoder import (
    RawBody,
    Route,
    build_request,
    decode_request,
    response_json,
)
from services.kit.db import Database, database_unavailable
from services.kit.request_context import (
    accept_correlation_id,
    correlation_scope,
    current_correlation_id,
)

log = logging.getLogger(__name__)

CORRELATION_HEADER = "X-Correlation-Id"
IDEMPOTENCY_HEADER = "idempotency-key"
_CORRELATION_HEADER = b"x-correlation-id"
_IDEMPOTENCY_HEADER = IDEMPOTENCY_HEADER.encode()
_JSON_TYPES = ("application/json",)
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="crossdock"'}


@dataclass(frozen=True)
class _RouteFacts:
    """What admission needs to know about a route, worked out once instead of per request."""

    signed_push: bool
    route_class: str
    scope: str
    policy: BucketPolicy


@dataclass(frozen=True)
class Limits:
    """Request limits; every replica must use the same values (they share the partner buckets)."""

    max_body_bytes: int = 1024 * 1024
    idempotency_retention_seconds: float = 24 * 3600
    # How long a claimed key stays "running" before another request may take it over.
    idempotency_lock_seconds: float = 60.0
    read_bucket: BucketPolicy = field(default_factory=lambda: BucketPolicy(100, 50))
    write_bucket: BucketPolicy = field(default_factory=lambda: BucketPolicy(50, 20))
    # Carrier pushes: one bucket per (carrier, client address), in each replica's memory, so
    # with N replicas a client gets N x this policy (gateway.adapters.push_buckets).
    push_bucket: BucketPolicy = field(default_factory=lambda: BucketPolicy(100, 50))
    push_max_buckets: int = DEFAULT_MAX_BUCKETS


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
        self._route_table = RouteTable(self.routes)
        self.metrics = metrics
        self.backends = backends
        self.db = db
        self.limits = limits or Limits()
        self._push_buckets = PushBuckets(self.limits.push_bucket, self.limits.push_max_buckets)
        self._openapi_body = json.dumps(openapi).encode()
        self._docs = DocsSite(PROBLEM_STATUSES)
        # Keyed by id(): hashing a Route (a frozen dataclass of descriptors) per request cost more.
        self._facts = {id(route): self._facts_of(route) for route in self.routes}

    def _facts_of(self, route: Route) -> _RouteFacts:
        route_class = route_class_of(route.binding)
        policy = self.limits.read_bucket if route_class == "read" else self.limits.write_bucket
        return _RouteFacts(
            is_signed_push(route.binding), route_class, scope_for(route.binding), policy
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no websockets; lifespan is off (main owns start and stop)
        reply = await self.handle(Incoming(scope, receive))
        await reply.send(send)

    async def handle(self, request: Incoming) -> Reply:
        correlation_id = accept_correlation_id(request.header(_CORRELATION_HEADER))
        started = time.perf_counter()
        with correlation_scope(correlation_id):
            try:
                reply = await self._handle(request)
            except Problem as problem:
                reply = _problem_reply(problem, correlation_id)
            except (sa_exc.OperationalError, sa_exc.TimeoutError) as error:
                if not database_unavailable(error):
                    log.exception("unhandled database error", extra={"path": request.path})
                    outage = Problem(
                        500, "the request could not be completed", grpc.StatusCode.INTERNAL
                    )
                else:
                    # The gateway's own database (keys, idempotency, quotas) is down or
                    # restarting: the partner retries with the same Idempotency-Key.
                    log.warning("database unavailable: %s", error, extra={"path": request.path})
                    outage = Problem(
                        503,
                        "temporarily unavailable; retry with the same Idempotency-Key",
                        grpc.StatusCode.UNAVAILABLE,
                        headers={"Retry-After": "1"},
                    )
                reply = _problem_reply(outage, correlation_id)
            except Exception:
                log.exception("unhandled error", extra={"path": request.path})
                reply = _problem_reply(
                    Problem(500, "the request could not be completed", grpc.StatusCode.INTERNAL),
                    correlation_id,
                )
            elapsed = time.perf_counter() - started
            if self.metrics is not None:
                self.metrics.observe(request.method, reply.status_code, elapsed)
            # One line per request (the JSON formatter adds the correlation id); its fields are
            # only gathered when INFO is on.
            if log.isEnabledFor(logging.INFO):
                _log_request(request.method, request.path, reply.status_code, elapsed)
        reply.set_header(CORRELATION_HEADER, correlation_id)
        return reply

    async def _handle(self, request: Incoming) -> Reply:
        if request.method == "GET":
            path = request.path
            if path == "/openapi.json":
                return Reply(self._openapi_body, media_type="application/json")
            if self._docs.handles(path):
                return self._docs_reply(request)
            if path == "/healthz":
                return Reply.json({"status": "ok"})
        route, path_values = self._match(request)
        facts = self._facts[id(route)]
        signed_push = facts.signed_push
        ahead: ReadAhead | None = None
        claimed: Claimed | None = None
        if signed_push:
            admission = self._admit_push(request, path_values)
        else:
            token = self._api_key(request)
            if request.method == "POST" and request.header(_IDEMPOTENCY_HEADER) is not None:
                ahead = await self._read_ahead(request, route, path_values)
            admission, claimed = await self._admit(route, facts, token, ahead)
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
                pushed = signature_headers(request.header_items(may_be_signature))
                rules_hold = keeps_contract(path_values.get("carrier", ""), pushed)
                reply = await self._transcode(
                    request, route, path_values, None, pushed, rules_hold=rules_hold
                )
            elif ahead is not None:
                reply = await self._call_once(route, admission.partner_id, ahead, claimed)
            else:
                reply = await self._transcode(request, route, path_values, admission.partner_id)
        except Problem as problem:
            problem.headers = {**rate_headers, **problem.headers}
            raise
        reply.set_headers(rate_headers)
        return reply

    def _docs_reply(self, request: Incoming) -> Reply:
        """/docs and its assets (gateway.docs_page); no API key: the docs are public."""
        answer = self._docs.answer(
            request.path, request.header(b"if-none-match"), request.header(b"accept-encoding")
        )
        if answer is None:
            raise Problem(404, "no such documentation asset", grpc.StatusCode.NOT_FOUND)
        return Reply(answer.body, answer.status, answer.media_type, answer.headers)

    def _match(self, request: Incoming) -> tuple[Route, dict[str, str]]:
        raw = request.scope.get("raw_path") or request.path.encode()
        raw_path = raw.decode("latin-1").split("?", 1)[0]
        return self._route_table.match(request.method, raw_path)

    def _api_key(self, request: Incoming) -> str:
        token = bearer_token(request.header(b"authorization"))
        if token is None:
            raise Problem(
                401, "an API key is required", grpc.StatusCode.UNAUTHENTICATED, (), _CHALLENGE
            )
        return token

    async def _admit(
        self, route: Route, facts: _RouteFacts, token: str, ahead: ReadAhead | None
    ) -> tuple[Admission, Claimed | None]:
        """Authenticate, rate-limit and, for a POST read ahead, claim its Idempotency-Key."""
        route_class, policy, scope = facts.route_class, facts.policy, facts.scope
        claimed: Claimed | None = None
        if ahead is None:
            admission = await self.db.run(admit, token, scope, route_class, policy, time.time())
        else:
            admission, claimed = await self.db.run(
                admit_and_claim,
                token,
                scope,
                route_class,
                policy,
                route,
                ahead,
                self.limits.idempotency_retention_seconds,
                self.limits.idempotency_lock_seconds,
            )
        if admission.outcome == "unauthenticated":
            raise Problem(
                401, "the API key is not valid", grpc.StatusCode.UNAUTHENTICATED, (), _CHALLENGE
            )
        if admission.outcome == "forbidden":
            raise Problem(
                403, f"the API key lacks the {scope} scope", grpc.StatusCode.PERMISSION_DENIED
            )
        return admission, claimed

    def _admit_push(self, request: Incoming, path_values: dict[str, str]) -> Admission:
        """No API key: a carrier push is rate-limited per (carrier, client address), in memory."""
        carrier = path_values.get("carrier", "")
        return self._push_buckets.take(bucket_key(carrier, request.client_host))

    async def _read_body(self, request: Incoming) -> bytes:
        limit = self.limits.max_body_bytes
        declared = request.header(b"content-length", "") or ""
        body = None
        if not (declared.isdigit() and int(declared) > limit):
            body = await request.read_body(limit)
        if body is None:
            raise Problem(
                413, f"the request body exceeds {limit} bytes", grpc.StatusCode.RESOURCE_EXHAUSTED
            )
        return body

    def _parse_json(self, request: Incoming, body: bytes) -> Any | None:
        if not body.strip():
            return None
        content_type = request.header(b"content-type", "application/json") or ""
        media_type = content_type.split(";")[0]
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

    def _content(self, request: Incoming, route: Route, body: bytes) -> Any | None:
        if route.raw_body:
            return RawBody(body, request.header(b"content-type", "") or "")
        return self._parse_json(request, body)

    async def _transcode(
        self,
        request: Incoming,
        route: Route,
        path_values: dict[str, str],
        partner_id: str | None,
        pushed_headers: dict[str, str] | None = None,
        *,
        rules_hold: bool = False,
    ) -> Reply:
        body = await self._read_body(request)
        query = request.query()
        content = self._content(request, route, body)
        message = build_request(
            route, path_values, query, content, partner_id, pushed_headers, rules_hold=rules_hold
        )
        return await self._call(route, message)

    async def _read_ahead(
        self, request: Incoming, route: Route, path_values: dict[str, str]
    ) -> ReadAhead:
        """Read and decode a POST with an Idempotency-Key before admission (`admit_and_claim`).

        A problem found here is kept, not raised: it is raised after admission, so a request
        that is also unauthenticated or rate-limited still gets 401/403/429 first.
        """
        key = request.header(_IDEMPOTENCY_HEADER) or ""
        query = request.query()
        try:
            body = await self._read_body(request)
            content = self._content(request, route, body)
            decoded = decode_request(route, path_values, query, content)
        except Problem as problem:
            return ReadAhead(key, "", None, problem)
        request_fingerprint = ""
        if idempotency.valid_key(key):
            # The JSON body parsed above is the fingerprint's too: it need not parse it again.
            parsed = idempotency.NOT_PARSED
            if content is not None and not isinstance(content, RawBody):
                parsed = content
            request_fingerprint = idempotency.fingerprint(
                request.method, request.path, query, body, parsed
            )
        return ReadAhead(key, request_fingerprint, decoded, None)

    async def _call_once(
        self, route: Route, partner_id: str, ahead: ReadAhead, claimed: Claimed | None
    ) -> Reply:
        """The backend call of a POST with an Idempotency-Key, at most once per key."""
        if ahead.problem is not None:
            raise ahead.problem
        assert claimed is not None  # admitted: admit_and_claim decided the claim
        if claimed.problem is not None:
            raise claimed.problem
        assert claimed.message is not None and claimed.claim is not None
        message, claim, key = claimed.message, claimed.claim, ahead.key
        if claim.outcome == "replay" and claim.stored is not None:
            stored = claim.stored
            return Reply(
                stored.body,
                stored.status_code,
                stored.content_type,
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
            reply = await self._call(route, message)
        except Problem as problem:
            reply = _problem_reply(problem, current_correlation_id() or "")
        except BaseException:
            await self.db.run(idempotency.release, partner_id, key)
            raise
        if reply.status_code >= 500 or reply.status_code == 429:
            await self.db.run(idempotency.release, partner_id, key)
        else:
            stored = idempotency.StoredResponse(
                reply.status_code, reply.body, reply.media_type or ""
            )
            await self.db.run(idempotency.complete, partner_id, key, stored)
        return reply

    async def _call(self, route: Route, message: Message) -> Reply:
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
        return Reply.json(response_json(route, reply), route.success_status)


def _log_request(method: str, path: str, status: int, elapsed: float) -> None:
    """`log.info("http request", extra=...)`, the same record, without Logger.info's caller
    lookup: a walk up the stack on every request for a file and line the JSON line does not
    carry (they are this function's)."""
    fields = {
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": round(elapsed * 1000, 2),
    }
    record = log.makeRecord(
        name=log.name,
        level=logging.INFO,
        fn=__file__,
        lno=_LOG_LINE,
        msg="http request",
        args=(),
        exc_info=None,
        func="_log_request",
        extra=fields,
    )
    log.handle(record)


_LOG_LINE = _log_request.__code__.co_firstlineno


def _problem_reply(problem: Problem, correlation_id: str) -> Reply:
    """problems.problem_response, as a Reply."""
    body = problem_body(problem, correlation_id)
    return Reply(body, problem.status, PROBLEM_TYPE, dict(problem.headers))
