"""The admin API, on its own port with its own credential (CROSSDOCK_GATEWAY_ADMIN_TOKEN).

    POST   /admin/partners                          {"name": "..."} → 201 {"partner_id": ...}
    GET    /admin/partners/{partner_id}             the partner
    POST   /admin/partners/{partner_id}/keys        {"scopes": [...]} → 201, the key shown once
    GET    /admin/partners/{partner_id}/keys        key ids, scopes, created/revoked times
    DELETE /admin/partners/{partner_id}/keys/{key_id}   revoke → 204

At most two keys are active per partner (rotation: issue the new one, move over, revoke the old);
a third answers 409. Errors are problem+json like the partner API.
"""

from __future__ import annotations

import hmac
import json
import time
from typing import Any

import grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.adapters.store import queries
from gateway.auth import SCOPES, bearer_token, new_partner_id
from gateway.jsonmap import Violation
from gateway.problems import Problem, bad_request, problem_response
from services.kit.db import Database
from services.kit.request_context import accept_correlation_id, correlation_scope


def create_admin_app(db: Database, admin_token: str) -> Starlette:
    if not admin_token:
        raise ValueError("the admin API needs a token")

    def check(request: Request) -> None:
        token = bearer_token(request.headers.get("authorization")) or ""
        if not hmac.compare_digest(token.encode(), admin_token.encode()):
            raise Problem(401, "admin token required", grpc.StatusCode.UNAUTHENTICATED)

    async def json_body(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"{}")
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
    return Starlette(
        routes=[
            Route(base, guarded(create_partner), methods=["POST"]),
            Route(base + "/{partner_id}", guarded(get_partner), methods=["GET"]),
            Route(base + "/{partner_id}/keys", guarded(issue_key), methods=["POST"]),
            Route(base + "/{partner_id}/keys", guarded(list_keys), methods=["GET"]),
            Route(base + "/{partner_id}/keys/{key_id}", guarded(revoke_key), methods=["DELETE"]),
        ]
    )
