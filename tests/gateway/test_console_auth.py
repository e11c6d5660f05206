"""The operator console's sign-in, session cookie, CSRF tokens and scope checks, on the admin
port as the gateway builds it (a real database, uvicorn, HTTP)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from gateway.adapters.backends import Backends
from gateway.console.app import PAGE_CSP, Console, ConsoleSettings
from gateway.console.forms import FormRefused
from gateway.console.session import LOGIN_COOKIE, SESSION_COOKIE
from gateway.problems import Problem, problem_response
from services.kit.db import Database
from services.kit.http_server import HttpServer
from tests.gateway.console_helpers import (
    SESSION_HOURS,
    ConsoleRig,
    console_rig,
    csrf_token_in,
    sign_in,
)

HTMX_SHA256 = "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[ConsoleRig]:
    async with console_rig(f"sqlite:///{tmp_path}/gateway.db") as running:
        yield running


def set_cookie(response: httpx.Response, name: str) -> str:
    """The Set-Cookie header for `name` (attributes included)."""
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert len(found) == 1, response.headers.get_list("set-cookie")
    return found[0]


def login_error(page: str) -> str:
    found = re.search(r'id="login-error">([^<]*)<', page)
    assert found, "the sign-in page shows no error"
    return found.group(1)


async def test_a_valid_key_signs_in_with_a_strict_cookie_and_opens_the_pages(
    rig: ConsoleRig,
) -> None:
    key = await rig.new_operator_key(["ops:read"], operator="grace@example.com")
    async with rig.browser() as browser:
        before = await browser.get("/console/timeline", params={"ref": "PO-1"})
        assert before.status_code == 303
        assert (
            before.headers["location"] == "/console/login?next=%2Fconsole%2Ftimeline%3Fref%3DPO-1"
        )

        signed = await sign_in(browser, key["operator_key"], "/console/timeline?ref=PO-1")
        assert signed.status_code == 303, signed.text
        assert signed.headers["location"] == "/console/timeline?ref=PO-1"
        cookie = set_cookie(signed, SESSION_COOKIE).lower()
        for attribute in ("httponly", "samesite=strict", "path=/console", "max-age=3600"):
            assert attribute in cookie, cookie
        assert "secure" not in cookie  # plain http here; https requests get Secure
        assert key["operator_key"] not in signed.text

        page = await browser.get("/console/timeline")
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == PAGE_CSP
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["x-frame-options"] == "DENY"
        assert "grace@example.com" in page.text
        assert 'href="/console/timeline"' in page.text  # the navigation lists existing pages
        for root_path in ("/console", "/console/"):
            root = await browser.get(root_path)
            assert (root.status_code, root.headers["location"]) == (303, "/console/flows")


async def test_partner_unknown_and_unscoped_keys_get_the_sign_in_page_again(
    rig: ConsoleRig,
) -> None:
    partner_key = await rig.new_partner_key()
    act_only = await rig.new_operator_key(["ops:act"])
    real = await rig.new_operator_key(["ops:read"])
    forged = "cdo_" + real["key_id"] + "_not-the-secret"
    cases = [
        (partner_key, "a partner API key is not an operator key"),
        ("cdo_01nosuchkey00000000000000_secret", "unknown operator key"),
        (forged, "unknown operator key"),  # a wrong secret says no more than an unknown id
        ("hello", "malformed operator key: expected cdo_&lt;key id&gt;_&lt;secret&gt;"),
        (act_only["operator_key"], "this operator key lacks the scope ops:read"),
    ]
    for presented, message in cases:
        async with rig.browser() as browser:
            refused = await sign_in(browser, presented)
            assert refused.status_code == 401, presented
            assert login_error(refused.text) == message
            assert SESSION_COOKIE not in browser.cookies
            assert presented not in refused.text  # the key is never echoed
            after = await browser.get("/console/timeline")
            assert after.status_code == 303


async def test_a_revoked_key_ends_the_session_at_the_next_request(rig: ConsoleRig) -> None:
    key = await rig.new_operator_key(["ops:read"])
    async with rig.browser() as browser:
        assert (await sign_in(browser, key["operator_key"])).status_code == 303
        assert (await browser.get("/console/timeline")).status_code == 200
        await rig.revoke(key["key_id"])

        ended = await browser.get("/console/timeline")
        assert ended.status_code == 401
        assert login_error(ended.text) == "this operator key was revoked"
        assert "max-age=0" in set_cookie(ended, SESSION_COOKIE).lower()
        assert SESSION_COOKIE not in browser.cookies
        again = await sign_in(browser, key["operator_key"])
        assert again.status_code == 401


async def test_a_sign_in_lasts_its_configured_hours(rig: ConsoleRig) -> None:
    key = await rig.new_operator_key(["ops:read"])
    async with rig.browser() as browser:
        await sign_in(browser, key["operator_key"])
        rig.clock.shift_seconds = SESSION_HOURS * 3600 - 60
        assert (await browser.get("/console/timeline")).status_code == 200
        rig.clock.shift_seconds = SESSION_HOURS * 3600 + 60
        expired = await browser.get("/console/timeline")
        assert expired.status_code == 401
        assert "sign-in has expired" in login_error(expired.text)


async def test_a_live_refresh_after_the_session_ended_sends_htmx_to_the_sign_in_page(
    rig: ConsoleRig,
) -> None:
    async with rig.browser() as browser:
        refresh = await browser.get(
            "/console/timeline/rows", params={"ref": "PO-1"}, headers={"HX-Request": "true"}
        )
    assert refresh.status_code == 401
    assert refresh.headers["hx-redirect"].startswith("/console/login?next=")


async def test_the_sign_in_form_needs_its_own_token(rig: ConsoleRig) -> None:
    key = await rig.new_operator_key(["ops:read"])
    async with rig.browser() as browser:
        # Posted without the form (another site's page): no token, no sign-in.
        blind = await browser.post("/console/login", data={"operator_key": key["operator_key"]})
        assert blind.status_code == 403
        assert "sign-in form expired" in login_error(blind.text)
        assert SESSION_COOKIE not in browser.cookies
        form_page = await browser.get("/console/login")
        assert "httponly" in set_cookie(form_page, LOGIN_COOKIE).lower()
        wrong = await browser.post(
            "/console/login", data={"operator_key": key["operator_key"], "csrf_token": "guess"}
        )
        assert wrong.status_code == 403
        assert SESSION_COOKIE not in browser.cookies
        right = await browser.post(
            "/console/login",
            data={"operator_key": key["operator_key"], "csrf_token": csrf_token_in(wrong.text)},
        )
        assert right.status_code == 303


async def test_sign_in_never_redirects_off_the_console(rig: ConsoleRig) -> None:
    key = await rig.new_operator_key(["ops:read"])
    for target in (
        "https://evil.example/",
        "//evil.example/console/",
        "/admin/partners",
        "/console\\x",
    ):
        async with rig.browser() as browser:
            signed = await sign_in(browser, key["operator_key"], target)
            assert signed.headers["location"] == "/console/flows", target


async def test_sign_out_needs_the_sessions_csrf_token(rig: ConsoleRig) -> None:
    key = await rig.new_operator_key(["ops:read"])
    async with rig.browser() as browser, rig.browser() as other:
        await sign_in(browser, key["operator_key"])
        await sign_in(other, key["operator_key"])
        page = await browser.get("/console/timeline")
        token = csrf_token_in(page.text)
        other_token = csrf_token_in((await other.get("/console/timeline")).text)
        assert token != other_token  # per session, not per key

        for refused in (
            await browser.post("/console/logout", data={"x": "1"}),
            await browser.post("/console/logout", data={"csrf_token": other_token}),
        ):
            assert refused.status_code == 403
            assert "CSRF token is missing or wrong" in refused.text
        assert (await browser.get("/console/timeline")).status_code == 200  # still signed in

        out = await browser.post("/console/logout", data={"csrf_token": token})
        assert (out.status_code, out.headers["location"]) == (303, "/console/login?signed_out=1")
        assert SESSION_COOKIE not in browser.cookies
        assert (await browser.get("/console/timeline")).status_code == 303
        assert (await other.get("/console/timeline")).status_code == 200


async def test_static_files_are_typed_versioned_and_cached_for_a_year(rig: ConsoleRig) -> None:
    key = await rig.new_operator_key(["ops:read"])
    async with rig.browser() as browser:
        await sign_in(browser, key["operator_key"])
        page = (await browser.get("/console/timeline")).text
        htmx_url = re.search(r'src="(/console/static/[0-9a-f]{16}/htmx\.min\.js)"', page)
        css_url = re.search(r'href="(/console/static/[0-9a-f]{16}/console\.css)"', page)
        assert htmx_url and css_url
        htmx = await browser.get(htmx_url.group(1))
        assert htmx.status_code == 200
        assert htmx.headers["content-type"] == "text/javascript; charset=utf-8"
        assert htmx.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert htmx.headers["x-content-type-options"] == "nosniff"
        assert hashlib.sha256(htmx.content).hexdigest() == HTMX_SHA256
        css = await browser.get(css_url.group(1))
        assert css.headers["content-type"] == "text/css; charset=utf-8"
        again = await browser.get(
            htmx_url.group(1), headers={"If-None-Match": htmx.headers["etag"]}
        )
        assert again.status_code == 304
        stale = htmx_url.group(1).replace("/static/", "/static/0").replace("/htmx", "x/htmx")
        assert (await browser.get(stale)).status_code == 404
        assert (await browser.get("/console/static/x/../../admin")).status_code == 404


# -- the guard of acting POSTs (no console page acts yet; exceptions and flows will) ----------


def acting_app(db: Database) -> Starlette:
    """The console's routes plus one acting route guarded by Console.act."""
    console = Console(db, Backends({}, default_timeout_seconds=5.0), ConsoleSettings())

    async def act(request: Request) -> Response:
        try:
            operator, form = await console.act(request)
        except Problem as problem:
            return problem_response(problem, "test")
        except FormRefused as refused:
            return JSONResponse({"refused": refused.message}, status_code=refused.status)
        return JSONResponse({"operator": operator.name, "note": form.get("note", "")})

    return Starlette(
        routes=[Mount("/console", routes=[*console.routes(), Route("/act", act, methods=["POST"])])]
    )


async def test_acting_needs_ops_act_and_the_csrf_token(rig: ConsoleRig) -> None:
    viewer = await rig.new_operator_key(["ops:read"], operator="viewer@example.com")
    actor = await rig.new_operator_key(["ops:read", "ops:act"], operator="actor@example.com")
    http = HttpServer(acting_app(rig.db))
    await http.start()
    try:
        base = f"http://127.0.0.1:{http.port}"
        async with httpx.AsyncClient(base_url=base) as as_viewer:
            await sign_in(as_viewer, viewer["operator_key"])
            token = csrf_token_in((await as_viewer.get("/console/timeline")).text)
            refused = await as_viewer.post("/console/act", data={"csrf_token": token})
            assert refused.status_code == 403
            assert refused.json()["detail"] == "this operator key lacks the scope ops:act"
        async with httpx.AsyncClient(base_url=base) as as_actor:
            await sign_in(as_actor, actor["operator_key"])
            token = csrf_token_in((await as_actor.get("/console/timeline")).text)
            missing = await as_actor.post("/console/act", data={"note": "x"})
            assert missing.status_code == 403
            assert "CSRF token is missing or wrong" in missing.json()["refused"]
            as_json = await as_actor.post(
                "/console/act", json={"csrf_token": token}, headers={"X-CSRF-Token": token}
            )
            assert as_json.status_code == 415  # only urlencoded forms
            by_form = await as_actor.post("/console/act", data={"csrf_token": token, "note": "a"})
            assert by_form.json() == {"operator": "actor@example.com", "note": "a"}
            by_header = await as_actor.post(
                "/console/act", data={"note": "b"}, headers={"X-CSRF-Token": token}
            )
            assert by_header.json() == {"operator": "actor@example.com", "note": "b"}
            too_big = await as_actor.post(
                "/console/act", data={"csrf_token": token, "note": "x" * 9000}
            )
            assert too_big.status_code == 413
        async with httpx.AsyncClient(base_url=base) as stranger:
            unsigned = await stranger.post("/console/act", data={"csrf_token": token})
            assert unsigned.status_code == 401
    finally:
        await http.stop()
