"""The console's exceptions pages: the workbench's list across kinds and one exception with its
audit trail and the actions its kind allows.

    GET  /console/exceptions?kind=K&state=open|closed    the list (open and past the SLA first)
    GET  /console/exceptions/rows?kind=K&state=S         its table alone (htmx live refresh)
    GET  /console/exceptions/{id}[?done=A&at=T]          one exception, its audit trail, actions
    GET  /console/exceptions/{id}/body                   its state and trail alone (htmx)
    POST /console/exceptions/{id}/{retry|resolve|map-code|redrive}

An action needs `ops:act` and the session's CSRF token (Console.act); the forms are shown only
to keys with `ops:act`. Done, it redirects (303) to the exception's page, whose `done`/`at`
name the audit entry to show as the outcome: the page reads the owner's answer from the
tower's audit trail, never from the link, so a crafted link cannot put words on the page.
A refused action is the exception's page again with the reason and the refusal's status.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway.adapters.backends import Backends
from gateway.console import exception_actions as actions
from gateway.console import exceptions
from gateway.console.forms import FormRefused
from gateway.console.session import Session
from gateway.console.timeline import Refusal
from gateway.operator_auth import Operator
from gateway.problems import Problem

if TYPE_CHECKING:
    from gateway.console.app import Console, ConsoleSettings

PREFIX = "/console"
LIST_PATH = f"{PREFIX}/exceptions"
# An action waits for the owner's answer through the tower: give it longer than a read.
ACTION_TIMEOUT_FACTOR = 3.0


def list_url(filters: exceptions.Filters | None = None) -> str:
    query = filters.query() if filters else {}
    return LIST_PATH + (f"?{urlencode(query)}" if query else "")


def exception_url(exception_id: int) -> str:
    return f"{LIST_PATH}/{exception_id}"


def _exception_id(text: str) -> int | Refusal:
    if not text.isascii() or not text.isdigit() or int(text) <= 0 or len(text) > 18:
        return Refusal(
            f"No exception has the id {text!r}: an exception id is a whole number (e.g. 42).",
            404,
        )
    return int(text)


class ExceptionPages:
    """The exceptions pages' routes, rendered by the console (its guards, templates, headers)."""

    def __init__(self, console: Console, backends: Backends, settings: ConsoleSettings) -> None:
        self._console, self._backends, self._settings = console, backends, settings

    def routes(self) -> list[Route]:
        read = self._console.read_page
        return [
            Route("/exceptions", read(self.list_page), methods=["GET"]),
            # Before /exceptions/{exception_id}: "rows" is never an exception id.
            Route("/exceptions/rows", read(self.list_rows), methods=["GET"]),
            Route("/exceptions/{exception_id}", read(self.detail_page), methods=["GET"]),
            Route("/exceptions/{exception_id}/body", read(self.detail_body), methods=["GET"]),
            Route("/exceptions/{exception_id}/{action}", self.act, methods=["POST"]),
        ]

    @property
    def _timeout(self) -> float:
        return self._settings.tower_timeout_seconds

    # -- the list ----------------------------------------------------------------------------

    async def list_page(self, request: Request, operator: Operator, session: Session) -> Response:
        context = await self._list_context(request)
        refusal = context["refusal"]
        return self._console.render(
            "exceptions.html",
            refusal.status if isinstance(refusal, Refusal) else 200,
            title="Exceptions",
            current="exceptions",
            operator=operator,
            csrf_token=session.csrf_token,
            **context,
        )

    async def list_rows(self, request: Request, operator: Operator, session: Session) -> Response:
        context = await self._list_context(request)
        return self._console.fragment("exceptions_table.html", **context)

    async def _list_context(self, request: Request) -> dict[str, Any]:
        filters = exceptions.read_filters(request.query_params)
        if isinstance(filters, Refusal):
            found: exceptions.ExceptionsView | Refusal = filters
            filters = exceptions.Filters()
        else:
            found = await exceptions.list_exceptions(self._backends, filters, self._timeout)
        view, refusal = (None, found) if isinstance(found, Refusal) else (found, None)
        bad_filter = refusal is not None and refusal.status == 400
        return {
            "view": view,
            "refusal": refusal,
            "filters": filters,
            "kinds": tuple(exceptions.KINDS),
            # Live while the tower answers or may answer again; not for a bad filter.
            "poll": refusal is None or refusal.transient,
            "poll_url": f"{LIST_PATH}/rows"
            + (f"?{urlencode(filters.query())}" if filters.query() and not bad_filter else ""),
            "refresh_seconds": self._console.refresh_label(),
            "exception_url": exception_url,
            "max_shown": exceptions.MAX_SHOWN,
        }

    # -- one exception -----------------------------------------------------------------------

    async def detail_page(self, request: Request, operator: Operator, session: Session) -> Response:
        flash = (request.query_params.get("done", ""), request.query_params.get("at", ""))
        return await self._detail(request, operator, session, flash=flash)

    async def detail_body(self, request: Request, operator: Operator, session: Session) -> Response:
        context = await self._detail_context(request.path_params["exception_id"], operator)
        return self._console.fragment("exception_body.html", **context, oob_actions=True)

    async def _detail(
        self,
        request: Request,
        operator: Operator,
        session: Session,
        *,
        flash: tuple[str, str] = ("", ""),
        action_error: Refusal | None = None,
        asked: dict[str, str] | None = None,
    ) -> Response:
        context = await self._detail_context(request.path_params["exception_id"], operator)
        detail, refusal = context["detail"], context["refusal"]
        done = detail.entry(*flash) if detail is not None and all(flash) else None
        status = 200
        if action_error is not None:
            status = action_error.status
        elif isinstance(refusal, Refusal):
            status = refusal.status
        title = f"Exception {detail.row.exception_id}" if detail is not None else "Exception"
        return self._console.render(
            "exception.html",
            status,
            title=title,
            current="exceptions",
            operator=operator,
            csrf_token=session.csrf_token,
            done=done,
            action_error=action_error,
            asked=asked or {"action": "", "text": "", "status": ""},
            oob_actions=False,
            **context,
        )

    async def _detail_context(self, id_text: str, operator: Operator) -> dict[str, Any]:
        exception_id = _exception_id(id_text)
        if isinstance(exception_id, Refusal):
            found: exceptions.ExceptionDetail | Refusal = exception_id
        else:
            found = await exceptions.get_exception(self._backends, exception_id, self._timeout)
        detail, refusal = (None, found) if isinstance(found, Refusal) else (found, None)
        return {
            "detail": detail,
            "refusal": refusal,
            "can_act": "ops:act" in operator.scopes,
            "statuses": exceptions.MAP_STATUSES,
            "titles": exceptions.ACTION_TITLES,
            "max_text": actions.MAX_TEXT,
            # Live while it is open (the owner's events close it) or the tower is away.
            "poll": (detail is not None and detail.row.is_open)
            or (refusal is not None and refusal.transient),
            "poll_url": f"{LIST_PATH}/{id_text}/body",
            "refresh_seconds": self._console.refresh_label(),
            "list_url": list_url(),
            "exception_url": exception_url,
        }

    # -- actions -----------------------------------------------------------------------------

    async def act(self, request: Request) -> Response:
        try:
            operator, form = await self._console.act(request)
        except Problem as problem:
            return self._not_done(problem.status, problem.detail)
        except FormRefused as refused:
            return self._not_done(refused.status, refused.message)
        session = self._console.session_of(request)
        exception_id = _exception_id(request.path_params["exception_id"])
        action = request.path_params["action"]
        if isinstance(exception_id, Refusal):
            return self._not_done(exception_id.status, exception_id.message)
        if action not in actions.ACTIONS:
            known = ", ".join(actions.ACTIONS)
            message = f"No action is called {action!r}; an exception's actions are {known}."
            return self._not_done(404, message)
        # A refused action shows its form again with what was typed, to correct or retry.
        typed = {
            "action": action,
            "text": form.get("note", form.get("reason", "")),
            "status": form.get("status", ""),
        }
        asked = actions.read_action(action, form)
        refusal = actions.operator_refusal(operator.name)
        if isinstance(asked, Refusal) or refusal is not None:
            error = asked if isinstance(asked, Refusal) else refusal
            return await self._detail(request, operator, session, action_error=error, asked=typed)
        done = await actions.perform(
            self._backends,
            exception_id,
            operator.name,
            asked,
            self._timeout * ACTION_TIMEOUT_FACTOR,
        )
        if isinstance(done, Refusal):
            return await self._detail(request, operator, session, action_error=done, asked=typed)
        query = urlencode({"done": done.action, "at": done.stamp})
        target = f"{exception_url(exception_id)}?{query}"
        return self._console.secured(RedirectResponse(target, status_code=303))

    def _not_done(self, status: int, message: str) -> Response:
        return self._console.message(status, "Not done", message, back=LIST_PATH)
