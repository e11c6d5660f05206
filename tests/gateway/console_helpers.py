"""The gateway's admin port as `python -m gateway.main` builds it (admin API + operator console,
gateway.main.admin_app) on a real database, served by uvicorn on a free port.

The console reads the control tower through the gateway's Backends: give `tower_target` (a real
tower, tests/control_tower/test_service.running_tower) or leave it empty (not configured). The
console's clock is the real clock plus `clock.shift_seconds`, so a test can step past a sign-in's
age.
"""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from gateway.adapters.backends import Backends
from gateway.adapters.store import migrate
from gateway.config import GatewayConfig
from gateway.console.timeline import TOWER_SERVICE
from gateway.main import admin_app
from services.kit.db import Database
from services.kit.http_server import HttpServer
from tests.gateway.operator_helpers import ShiftedClock

ADMIN_TOKEN = "console-test-admin-token"
SESSION_HOURS = 1.0
_HIDDEN_TOKEN = re.compile(r'name="csrf_token" value="([^"]*)"')


@dataclass
class ConsoleRig:
    db: Database
    admin: httpx.AsyncClient  # carries the admin token
    base_url: str  # the admin port; the console is under /console
    clock: ShiftedClock

    def browser(self) -> httpx.AsyncClient:
        """A client with its own cookie jar, like one browser profile."""
        return httpx.AsyncClient(base_url=self.base_url)

    async def new_operator_key(
        self, scopes: list[str], operator: str = "ada@example.com"
    ) -> dict[str, str]:
        created = await self.admin.post(
            "/admin/operator-keys", json={"operator": operator, "scopes": scopes}
        )
        assert created.status_code == 201, created.text
        return dict(created.json())

    async def new_partner_key(self) -> str:
        partner = await self.admin.post("/admin/partners", json={"name": "acme"})
        issued = await self.admin.post(f"/admin/partners/{partner.json()['partner_id']}/keys")
        assert issued.status_code == 201, issued.text
        return str(issued.json()["api_key"])

    async def revoke(self, key_id: str) -> None:
        revoked = await self.admin.delete(f"/admin/operator-keys/{key_id}")
        assert revoked.status_code == 204, revoked.text


def csrf_token_in(page: str) -> str:
    """The CSRF token of the page's first form."""
    found = _HIDDEN_TOKEN.search(page)
    assert found, "the page has no form with a CSRF token"
    return html.unescape(found.group(1))


async def sign_in(
    client: httpx.AsyncClient, operator_key: str, next_path: str = ""
) -> httpx.Response:
    """Open the sign-in page and post the key with the form's token, as a browser would."""
    form_page = await client.get(
        "/console/login", params={"next": next_path} if next_path else None
    )
    assert form_page.status_code == 200, form_page.text
    fields = {"csrf_token": csrf_token_in(form_page.text), "operator_key": operator_key}
    if next_path:
        fields["next"] = next_path
    return await client.post("/console/login", data=fields)


@contextlib.asynccontextmanager
async def console_rig(
    db_url: str, tower_target: str = "", refresh_seconds: float = 5.0
) -> AsyncIterator[ConsoleRig]:
    migrate(db_url)
    config = GatewayConfig.from_env(
        {
            "CROSSDOCK_GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
            "CROSSDOCK_GATEWAY_DB_URL": db_url,
            "CROSSDOCK_GATEWAY_NATS_URL": "nats://127.0.0.1:1",  # unused by the admin port
            "CROSSDOCK_GATEWAY_TOWER_TARGET": tower_target,
            "CROSSDOCK_GATEWAY_CONSOLE_SESSION_HOURS": str(SESSION_HOURS),
            "CROSSDOCK_GATEWAY_CONSOLE_REFRESH_SECONDS": str(refresh_seconds),
        }
    )
    clock = ShiftedClock()
    async with contextlib.AsyncExitStack() as exits:
        db = Database(db_url, service="gateway")
        exits.push_async_callback(db.close)
        backends = Backends({}, default_timeout_seconds=5.0)
        if config.tower_target:
            backends.add_target(TOWER_SERVICE, config.tower_target)
        exits.push_async_callback(backends.close)
        http = HttpServer(admin_app(config, db, backends, clock))
        await http.start()
        exits.push_async_callback(http.stop)
        base_url = f"http://127.0.0.1:{http.port}"
        admin = httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        exits.push_async_callback(admin.aclose)
        yield ConsoleRig(db, admin, base_url, clock)
