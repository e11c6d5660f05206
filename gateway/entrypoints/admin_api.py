"""The admin API, on its own port with its own credential (CROSSDOCK_GATEWAY_ADMIN_TOKEN).

    POST   /admin/partners                          {"name": "..."} → 201 {"partner_id": ...}
    GET    /admin/partners/{partner_id}             the partner
    POST   /admin/partners/{partner_id}/keys        {"scopes": [...]} → 201, the key shown once
    GET    /admin/partners/{partner_id}/keys        key ids, scopes, created/revoked times
    DELETE /admin/partners/{partner_id}/keys/{key_id}   revoke → 204

    POST   /admin/operator-keys                     {"operator": "...", "scopes": [...],
                                                    "expires_in_seconds": N} → 201, shown once
    GET    /admin/operator-keys                     key ids, operators, scopes, times
    DELETE /admin/operator-keys/{key_id}            revoke → 204

At most two keys are active per partner (rotation: issue the new one, move over, revoke the old);
a third answers 409. Operator keys (gateway.operator_auth) belong to people operating the mesh,
not to a partner. Errors are problem+json like the partner API; a body over MAX_BODY_BYTES is
413.
"""

from __future__ import annotations

import hmac
import json
import time
import unicodedata
from typing import Any, cast

import grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.adapters.store import operator_keys, queries
from gateway.auth import OPERATOR_SCOPES, SCOPES, bearer_token, new_partner_id
from gateway.jsonmap import Violation
from gateway.problems import Problem, bad_request, problem_response
from services.kit.db import Database
from services.kit.request_context import accept_correlation_id, correlation_scope

# Admin bodies are a few fields; anything this large is a mistake or an attack.
MAX_BODY_BYTES = 16 * 1024
MAX_OPERATOR_NAME_LENGTH = 254  # the longest e-mail address
MIN_EXPIRES_IN_SECONDS = 60
MAX_EXPIRES_IN_SECONDS = 366 * 24 * 3600
OPERATOR_KEY_FIELDS = ("operator", "scopes", "expires_in_seconds")
SCOPE_CHOICES = ", ".join(OPERATOR_SCOPES)


def read_operator_key_request(body: dict[str, Any]) -> tuple[str, list[str], int | None]:
    """(operator, scopes, expires in seconds or None) of a create request, or a 400 naming
    every bad field at once."""
    violations = [
        Violation(str(name)[:64], "unknown field; fields: " + ", ".join(OPERATOR_KEY_FIELDS))
        for name in body
        if name not in OPERATOR_KEY_FIELDS
    ]
    operator = body.get("operator")
    problem = operator_name_problem(operator)
    if problem:
        violations.append(Violation("operator", problem))
    scopes = body.get("scopes")
    violations += scope_violations(scopes)
    expires_in = body.get("expires_in_seconds")
    if expires_in is not None and (
        not isinstance(expires_in, int)
        or isinstance(expires_in, bool)
        or not MIN_EXPIRES_IN_SECONDS <= expires_in <= MAX_EXPIRES_IN_SECONDS
    ):
        violations.append(
            Violation(
                "expires_in_seconds",
                f"must be an integer from {MIN_EXPIRES_IN_SECONDS} to {MAX_EXPIRES_IN_SECONDS} "
                "(or null: no expiry)",
            )
        )
    if violations:
        raise bad_request("invalid operator key request", violations)
    return cast(str, operator), cast(list[str], scopes), expires_in


def operator_name_problem(operator: object) -> str:
    """What is wrong with an operator name ("" when nothing is): the name is who audited
    actions are recorded under, so it must be printable and bounded."""
    if operator is None:
        return "required: who holds the key, e.g. ada@example.com"
    if not isinstance(operator, str):
        return "must be a string"
    if not 0 < len(operator) <= MAX_OPERATOR_NAME_LENGTH:
        return f"must be 1-{MAX_OPERATOR_NAME_LENGTH} characters"
    # Control, format (bidi overrides, zero-width), surrogate, private-use and unassigned
    # characters, and line breaks, could forge or hide text in audit trails and logs.
    if any(unicodedata.category(c)[0] == "C" or c in "\u2028\u2029" for c in operator):
        return "must not contain control or invisible characters"
    if operator != operator.strip():
        return "must not start or end with whitespace"
    return ""


def scope_violations(scopes: object) -> list[Violation]:
    if scopes is None:
        return [Violation("scopes", f"required: a non-empty list of: {SCOPE_CHOICES}")]
    if not isinstance(scopes, list):
        return [Violation("scopes", f"must be a list of: {SCOPE_CHOICES}")]
    if not scopes:
        return [Violation("scopes", f"must name at least one of: {SCOPE_CHOICES}")]
    return [
        Violation(f"scopes[{index}]", f"must be one of: {SCOPE_CHOICES}")
        for index, scope in enumerate(scopes)
        if scope not in OPERATOR_SCOPES
    ]


def create_admin_app(db: Database, admin_token: str) -> Starlette:
    if not admin_token:
        raise ValueError("the admin API needs a token")

    def check(request: Request) -> None:
        token = bearer_token(request.headers.get("authorization")) or ""
        if not hmac.compare_digest(token.encode(), admin_token.encode()):
            raise Problem(401, "admin token required", grpc.StatusCode.UNAUTHENTICATED)

    async def json_body(request: Request) -> dict[str, Any]:
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY_BYTES:
                raise Problem(
                    413,
                    f"the request body exceeds {MAX_BODY_BYTES} bytes",
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                )
        try:
            body = json.loads(bytes(raw) or b"{}")
        except ValueError:
            raise bad_request("the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        return body

    async def partner_or_404(partner_id: str) -> dict[str, object]:
        partner = await db.run(queries.get_partner, partner_id)
        if partner is None:
            raise Problem(404, "no such partner", grpc.StatusCode.NOT_FOUND)
        return partner

    async def create_partner(request: Request) -> Response:
        body = await json_body(request)
        name = body.get("name")
        if not isinstance(name, str) or not 0 < len(name) <= 200:
            raise bad_request("invalid partner", [Violation("name", "must be 1-200 characters")])
        partner_id = new_partner_id()
        await db.run(queries.create_partner, partner_id, name, time.time())
        return JSONResponse({"partner_id": partner_id, "name": name}, status_code=201)

    async def get_partner(request: Request) -> Response:
        partner = await partner_or_404(request.path_params["partner_id"])
        return JSONResponse(
            {"partner_id": partner["id"], "name": partner["name"], "disabled": partner["disabled"]}
        )

    async def issue_key(request: Request) -> Response:
        partner_id = request.path_params["partner_id"]
        await partner_or_404(partner_id)
        body = await json_body(request)
        scopes = body.get("scopes", list(SCOPES))
        if not isinstance(scopes, list) or not all(s in SCOPES for s in scopes):
            raise bad_request(
                "invalid scopes", [Violation("scopes", "must be a list of: " + ", ".join(SCOPES))]
            )
        try:
            key_id, api_key = await db.run(queries.issue_key, partner_id, scopes, time.time())
        except queries.KeyLimitReached:
            raise Problem(
                409,
                f"the partner already has {queries.MAX_ACTIVE_KEYS} active keys; revoke one",
                grpc.StatusCode.FAILED_PRECONDITION,
            ) from None
        return JSONResponse(
            {"key_id": key_id, "api_key": api_key, "scopes": sorted(set(scopes))},
            status_code=201,
        )

    async def list_keys(request: Request) -> Response:
        partner_id = request.path_params["partner_id"]
        await partner_or_404(partner_id)
        return JSONResponse({"keys": await db.run(queries.list_keys, partner_id)})

    async def revoke_key(request: Request) -> Response:
        params = request.path_params
        revoked = await db.run(
            queries.revoke_key, params["partner_id"], params["key_id"], time.time()
        )
        if not revoked:
            raise Problem(404, "no such active key", grpc.StatusCode.NOT_FOUND)
        return Response(status_code=204)

    async def create_operator_key(request: Request) -> Response:
        operator, scopes, expires_in = read_operator_key_request(await json_body(request))
        now = time.time()
        expires_at = None if expires_in is None else now + expires_in
        key_id, operator_key = await db.run(
            operator_keys.issue_operator_key, operator, scopes, expires_at, now
        )
        return JSONResponse(
            {
                "key_id": key_id,
                "operator_key": operator_key,
                "operator": operator,
                "scopes": sorted(set(scopes)),
                "created_at": now,
                "expires_at": expires_at,
            },
            status_code=201,
            # The only time the key is shown: no cache or proxy may keep a copy.
            headers={"Cache-Control": "no-store"},
        )

    async def list_operator_keys(request: Request) -> Response:
        return JSONResponse({"keys": await db.run(operator_keys.list_operator_keys)})

    async def revoke_operator_key(request: Request) -> Response:
        key_id = request.path_params["key_id"]
        if not await db.run(operator_keys.revoke_operator_key, key_id, time.time()):
            raise Problem(404, "no such active operator key", grpc.StatusCode.NOT_FOUND)
        return Response(status_code=204)

    def guarded(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            correlation_id = accept_correlation_id(request.headers.get("x-correlation-id"))
            with correlation_scope(correlation_id):
                try:
                    check(request)
                    response: Response = await handler(request)
                except Problem as problem:
                    response = problem_response(problem, correlation_id)
            response.headers["X-Correlation-Id"] = correlation_id
            return response

        return endpoint

    base = "/admin/partners"
    operators = "/admin/operator-keys"
    return Starlette(
        routes=[
            Route(base, guarded(create_partner), methods=["POST"]),
            Route(base + "/{partner_id}", guarded(get_partner), methods=["GET"]),
            Route(base + "/{partner_id}/keys", guarded(issue_key), methods=["POST"]),
            Route(base + "/{partner_id}/keys", guarded(list_keys), methods=["GET"]),
            Route(base + "/{partner_id}/keys/{key_id}", guarded(revoke_key), methods=["DELETE"]),
            Route(operators, guarded(create_operator_key), methods=["POST"]),
            Route(operators, guarded(list_operator_keys), methods=["GET"]),
            Route(operators + "/{key_id}", guarded(revoke_operator_key), methods=["DELETE"]),
        ]
    )
