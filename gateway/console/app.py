"""The operator console: server-rendered pages under /console on the gateway's admin port.

    GET  /console/                  → the flow overview (or the sign-in page)
    GET  /console/login             the sign-in form (paste an operator key)
    POST /console/login             check the key (ops:read), set the session cookie, redirect
    POST /console/logout            clear the session cookie
    GET  /console/flows             every business flow's health, breaches first, with a chart
    GET  /console/flows/{flow}      one flow's items, page by page (gateway.console.flow_pages)
    GET  /console/exceptions        the exceptions workbench, open and past the SLA first
    GET  /console/exceptions/{id}   one exception, its audit trail and actions
    POST /console/exceptions/{id}/{retry|resolve|map-code|redrive}
                                    act on it (gateway.console.exception_pages)
    GET  /console/timeline?ref=R[&partner=P]   one order's timeline, by any reference
    GET  /console/timeline/rows?ref=R[&partner=P]   its table alone (htmx live refresh)
    GET  /console/static/<version>/<name>      htmx, the console's script and stylesheet

Every page needs a signed-in operator with `ops:read` (gateway.operator_auth, reading the
session cookie of gateway.console.session). A POST that acts needs `ops:act` and the
session's CSRF token: `Console.act` checks both. Pages carry a strict Content-Security-Policy
(this origin only, no inline script or style) and are never cached.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from gateway.adapters.backends import Backends
from gateway.console import session as sessions
from gateway.console.assets import IMMUTABLE, load_assets
from gateway.console.exception_pages import ExceptionPages
from gateway.console.flow_pages import FlowPages
from gateway.console.forms import CSRF_MESSAGE, FormRefused, read_form
from gateway.console.timeline import Refusal, look_up
from gateway.operator_auth import Operator, OperatorAuth, cookie_source
from gateway.problems import Problem
from services.kit.db import Database

PREFIX = "/console"
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

AnyResponse = TypeVar("AnyResponse", bound=Response)


@dataclass(frozen=True)
class ConsoleSettings:
    session_seconds: float = 8 * 3600.0
    refresh_seconds: float = 5.0
    tower_timeout_seconds: float = 5.0


@dataclass(frozen=True)
class NavPage:
    """A console page in the navigation: only pages that exist are listed."""

    name: str
    title: str
    path: str


PAGES = (
    NavPage("flows", "Flow health", f"{PREFIX}/flows"),
    NavPage("exceptions", "Exceptions", f"{PREFIX}/exceptions"),
    NavPage("timeline", "Order timeline", f"{PREFIX}/timeline"),
)
HOME = PAGES[0].path  # the landing page: where /console and a signed-in operator go


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    if value and value.startswith(PREFIX + "/") and "\\" not in value and "//" not in value:
        return value
    return HOME


def search_url(reference: str, partner: str = "") -> str:
    query = {"ref": reference, **({"partner": partner} if partner else {})}
    return f"{PREFIX}/timeline?{urlencode(query)}"


class Console:
    """The console's routes over one gateway database and its backends."""

    def __init__(
        self,
        db: Database,
        backends: Backends,
        settings: ConsoleSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._backends, self._settings, self._clock = backends, settings, clock
        from_cookie = cookie_source(sessions.SESSION_COOKIE, self._operator_key_of)
        self.auth = OperatorAuth(db, sources=(from_cookie,), clock=clock)
        self._assets = load_assets()
        self._static = f"{PREFIX}/static/{self._assets.version}/"
        self._templates = jinja2.Environment(
            loader=jinja2.PackageLoader("gateway.console", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )

    # -- sessions and guards ----------------------------------------------------------------

    def _operator_key_of(self, cookie_value: str) -> str:
        return self._session_of(cookie_value).operator_key

    def _session_of(self, cookie_value: str) -> sessions.Session:
        return sessions.read_session(cookie_value, self._clock(), self._settings.session_seconds)

    def session_of(self, request: Request) -> sessions.Session:
        """The session of a request that passed `signed_in` or `act` (its cookie is readable)."""
        return self._session_of(request.cookies[sessions.SESSION_COOKIE])

    async def signed_in(self, request: Request, scope: str) -> tuple[Operator, sessions.Session]:
        """The operator and their session; raises the operator check's 401/403 Problem."""
        operator = await self.auth.require(request, scope)
        return operator, self._session_of(request.cookies[sessions.SESSION_COOKIE])

    async def act(self, request: Request) -> tuple[Operator, dict[str, str]]:
        """The guard of every POST that acts: `ops:act`, then the session's CSRF token (form
        field or header); answers the operator and the form. Raises Problem or FormRefused."""
        operator, session = await self.signed_in(request, "ops:act")
        form = await read_form(request)
        presented = form.get(sessions.CSRF_FIELD) or request.headers.get(sessions.CSRF_HEADER)
        if not sessions.tokens_match(session.csrf_token, presented):
            raise FormRefused(403, CSRF_MESSAGE)
        return operator, form

    def read_page(
        self, render: Callable[[Request, Operator, sessions.Session], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """A GET page for operators with `ops:read`; others get the sign-in page."""

        async def endpoint(request: Request) -> Response:
            try:
                operator, session = await self.signed_in(request, "ops:read")
            except Problem as problem:
                return self._not_signed_in(request, problem)
            return await render(request, operator, session)

        return endpoint

    def _not_signed_in(self, request: Request, problem: Problem) -> Response:
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.headers.get("hx-request"):
            # A live refresh of a page whose sign-in ended: htmx loads the sign-in page.
            login = f"{PREFIX}/login?{urlencode({'next': safe_next(back)})}"
            refused = self.secured(Response(status_code=401, headers={"HX-Redirect": login}))
            self._clear(refused, sessions.SESSION_COOKIE)
            return refused
        if sessions.SESSION_COOKIE not in request.cookies:
            login = f"{PREFIX}/login?{urlencode({'next': safe_next(back)})}"
            return self.secured(RedirectResponse(login, status_code=303))
        # A cookie that no longer opens the console: say why, and drop it.
        response = self._login_page(request, safe_next(back), message=problem.detail, status=401)
        self._clear(response, sessions.SESSION_COOKIE)
        return response

    # -- rendering --------------------------------------------------------------------------

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        values = {
            "static": self._static,
            "pages": PAGES,
            "current": "",
            "operator": None,
            "csrf_token": "",
            "search_url": search_url,
            **context,
        }
        body = self._templates.get_template(template).render(values)
        return self.secured(HTMLResponse(body, status_code=status))

    def fragment(self, template: str, **context: Any) -> HTMLResponse:
        """A part of a page that htmx swaps in: always 200 (htmx swaps only 2xx answers, and
        a refusal is content here), never the page around it."""
        values = {"static": self._static, "search_url": search_url, **context}
        body = self._templates.get_template(template).render(values)
        return self.secured(HTMLResponse(body))

    @staticmethod
    def secured(response: AnyResponse) -> AnyResponse:
        response.headers.update(PAGE_HEADERS)
        return response

    def _set_cookie(self, response: Response, request: Request, name: str, value: str) -> None:
        max_age = (
            int(self._settings.session_seconds)
            if name == sessions.SESSION_COOKIE
            else sessions.LOGIN_FORM_SECONDS
        )
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=sessions.COOKIE_PATH,
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )

    @staticmethod
    def _clear(response: Response, name: str) -> None:
        response.delete_cookie(name, path=sessions.COOKIE_PATH, httponly=True, samesite="strict")

    def _login_page(
        self,
        request: Request,
        next_path: str,
        *,
        message: str = "",
        notice: str = "",
        status: int = 200,
    ) -> Response:
        token = sessions.new_login_token()
        response = self.render(
            "login.html",
            status,
            title="Sign in",
            login_token=token,
            next=next_path,
            message=message,
            notice=notice,
        )
        self._set_cookie(response, request, sessions.LOGIN_COOKIE, token)
        return response

    # -- routes -----------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        return self.secured(RedirectResponse(HOME, status_code=303))

    async def login_form(self, request: Request) -> Response:
        notice = "You are signed out." if request.query_params.get("signed_out") else ""
        return self._login_page(request, safe_next(request.query_params.get("next")), notice=notice)

    async def login(self, request: Request) -> Response:
        try:
            form = await read_form(request)
        except FormRefused as refused:
            return self._login_page(request, HOME, message=refused.message, status=refused.status)
        next_path = safe_next(form.get("next"))
        expected = request.cookies.get(sessions.LOGIN_COOKIE)
        if not sessions.tokens_match(expected, form.get(sessions.CSRF_FIELD)):
            message = "The sign-in form expired or came from another page; enter the key again."
            return self._login_page(request, next_path, message=message, status=403)
        operator_key = form.get("operator_key", "").strip()
        if not operator_key:
            return self._login_page(
                request, next_path, message="Paste your operator key.", status=400
            )
        try:
            await self.auth.check(operator_key, "ops:read")
        except Problem as problem:
            return self._login_page(request, next_path, message=problem.detail, status=401)
        session = sessions.new_session(operator_key, self._clock())
        response = self.secured(RedirectResponse(next_path, status_code=303))
        self._set_cookie(response, request, sessions.SESSION_COOKIE, session.encode())
        self._clear(response, sessions.LOGIN_COOKIE)
        return response

    async def logout(self, request: Request) -> Response:
        """Clears the cookie; needs the session's CSRF token (another site cannot sign an
        operator out), but not a valid key: a revoked key's holder can still sign out."""
        try:
            form = await read_form(request)
            value = request.cookies.get(sessions.SESSION_COOKIE, "")
            session = self._session_of(value) if value else None
        except FormRefused as refused:
            return self.message(refused.status, "Not signed out", refused.message)
        except Problem:
            session = None  # unreadable or expired: nothing to protect, just clear it
        presented = form.get(sessions.CSRF_FIELD) or request.headers.get(sessions.CSRF_HEADER)
        if session is not None and not sessions.tokens_match(session.csrf_token, presented):
            return self.message(403, "Not signed out", CSRF_MESSAGE)
        response = self.secured(RedirectResponse(f"{PREFIX}/login?signed_out=1", status_code=303))
        self._clear(response, sessions.SESSION_COOKIE)
        return response

    def message(self, status: int, title: str, message: str, back: str = HOME) -> Response:
        """A page that says only why something was not done, with a way back."""
        return self.render("message.html", status, title=title, message=message, back=back)

    async def timeline_page(
        self, request: Request, operator: Operator, session: sessions.Session
    ) -> Response:
        reference, partner = _search_terms(request.query_params)
        context = await self._timeline_context(reference, partner)
        refusal = context["refusal"]
        return self.render(
            "timeline.html",
            refusal.status if isinstance(refusal, Refusal) else 200,
            title=f"Timeline {reference}" if reference else "Order timeline",
            current="timeline",
            operator=operator,
            csrf_token=session.csrf_token,
            reference=reference,
            partner=partner,
            **context,
        )

    async def timeline_rows(
        self, request: Request, operator: Operator, session: sessions.Session
    ) -> Response:
        # Always 200: htmx swaps only successful answers, and a refusal is content here.
        reference, partner = _search_terms(request.query_params)
        context = await self._timeline_context(reference, partner)
        body = self._templates.get_template("timeline_rows.html").render(
            search_url=search_url, **context
        )
        return self.secured(HTMLResponse(body))

    async def _timeline_context(self, reference: str, partner: str) -> dict[str, Any]:
        empty = {"view": None, "refusal": None, "poll": False, "show_partner": bool(partner)}
        if not reference:
            return empty | {"poll_url": "", "refresh_seconds": self.refresh_label()}
        found = await look_up(
            self._backends, reference, partner, self._settings.tower_timeout_seconds
        )
        rows_url = f"{PREFIX}/timeline/rows?{urlencode({'ref': reference, 'partner': partner})}"
        if isinstance(found, Refusal):
            # Not known yet (its events may be on their way) or the tower is down: look again.
            poll = found.transient or found.status == 404
            view, refusal = None, found
            show_partner = bool(partner) or found.needs_partner
        else:
            poll, view, refusal, show_partner = not found.final, found, None, bool(partner)
        return {
            "view": view,
            "refusal": refusal,
            "poll": poll,
            "poll_url": rows_url,
            "refresh_seconds": self.refresh_label(),
            "show_partner": show_partner,
        }

    def refresh_label(self) -> str:
        return f"{self._settings.refresh_seconds:g}"

    def routes(self) -> list[Route]:
        """The console's routes, relative to its mount point (PREFIX)."""
        return [
            Route("/", self.home, methods=["GET"]),
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            *FlowPages(self, self._backends, self._settings, self._clock).routes(),
            *ExceptionPages(self, self._backends, self._settings).routes(),
            Route("/timeline", self.read_page(self.timeline_page), methods=["GET"]),
            Route("/timeline/rows", self.read_page(self.timeline_rows), methods=["GET"]),
            Route("/static/{version}/{name}", self.static, methods=["GET"]),
        ]

    async def static(self, request: Request) -> Response:
        asset = self._assets.find(request.path_params["version"], request.path_params["name"])
        if asset is None:
            return Response("not found", status_code=404, media_type="text/plain")
        headers = {
            "Cache-Control": IMMUTABLE,
            "ETag": asset.etag,
            "X-Content-Type-Options": "nosniff",
        }
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers=headers)
        return Response(asset.body, media_type=asset.content_type, headers=headers)


def _search_terms(query: Mapping[str, str]) -> tuple[str, str]:
    """(reference, partner id) of a search, without surrounding whitespace from a paste."""
    return query.get("ref", "").strip(), query.get("partner", "").strip()


def console_routes(
    db: Database,
    backends: Backends,
    settings: ConsoleSettings | None = None,
    clock: Callable[[], float] = time.time,
) -> list[BaseRoute]:
    """The console's routes for the admin port's app: /console itself and everything under it
    (the bare prefix needs its own route: a mount only matches below it)."""
    console = Console(db, backends, settings or ConsoleSettings(), clock)
    return [
        Route(PREFIX, console.home, methods=["GET"]),
        Mount(PREFIX, app=Starlette(routes=console.routes())),
    ]
