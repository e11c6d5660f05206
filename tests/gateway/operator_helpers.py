"""A gateway admin API and a console-shaped probe app on one real database, for operator keys.

The probe app is what the operator console will be, reduced to one route: `GET /probe/{scope}`
runs the operator check for that scope and answers the operator, or the check's problem+json.
Its clock is the real clock plus `clock.shift_seconds`, so a test can step past a key's expiry.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.adapters.store import migrate
from gateway.entrypoints.admin_api import create_admin_app
from gateway.operator_auth import OperatorAuth
from gateway.problems import Problem, problem_response
from services.kit.db import Database
from services.kit.http_server import HttpServer

ADMIN_TOKEN = "operator-test-admin-token"
KEYS = "/admin/operator-keys"


class ShiftedClock:
    """The real clock, moved forward by `shift_seconds`."""

    def __init__(self) -> None:
        self.shift_seconds = 0.0

    def __call__(self) -> float:
        return time.time() + self.shift_seconds


@dataclass
class OperatorRig:
    db: Database
    admin: httpx.AsyncClient  # carries the admin token
    console: httpx.AsyncClient  # the probe app; no credentials of its own
    clock: ShiftedClock

    async def new_key(self, scopes: list[str], **fields: object) -> dict[str, object]:
        body = {"operator": "ada@example.com", "scopes": scopes, **fields}
        created = await self.admin.post(KEYS, json=body)
        assert created.status_code == 201, created.text
        assert created.headers["cache-control"] == "no-store"  # it carries the key
        return dict(created.json())

    async def probe(self, scope: str, authorization: str | None) -> httpx.Response:
        headers = {} if authorization is None else {"Authorization": authorization}
        return await self.console.get(f"/probe/{scope}", headers=headers)


def probe_app(auth: OperatorAuth) -> Starlette:
    async def probe(request: Request) -> Response:
        try:
            operator = await auth.require(request, request.path_params["scope"])
        except Problem as problem:
            return problem_response(problem, "probe")
        return JSONResponse(
            {"key_id": operator.key_id, "name": operator.name, "scopes": sorted(operator.scopes)}
        )

    return Starlette(routes=[Route("/probe/{scope}", probe)])


@contextlib.asynccontextmanager
async def operator_rig(db_url: str) -> AsyncIterator[OperatorRig]:
    migrate(db_url)
    async with contextlib.AsyncExitStack() as exits:
        db = Database(db_url, service="gateway")
        exits.push_async_callback(db.close)
        admin_http = HttpServer(create_admin_app(db, ADMIN_TOKEN))
        await admin_http.start()
        exits.push_async_callback(admin_http.stop)
        clock = ShiftedClock()
        console_http = HttpServer(probe_app(OperatorAuth(db, clock=clock)))
        await console_http.start()
        exits.push_async_callback(console_http.stop)
        admin = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{admin_http.port}",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        exits.push_async_callback(admin.aclose)
        console = httpx.AsyncClient(base_url=f"http://127.0.0.1:{console_http.port}")
        exits.push_async_callback(console.aclose)
        yield OperatorRig(db, admin, console, clock)
