"""The console's business-flow pages: the overview (every flow, breaches first, with its age
chart) and one flow's drill-down (its items page by page, each linking to its order's timeline).

    GET /console/flows                       the overview; its table re-read every few seconds
    GET /console/flows/rows                  the overview's chart, table and open exceptions
                                             alone (htmx)
    GET /console/flows/{flow}?page=T&size=N  one page of a flow's items
    GET /console/flows/{flow}/rows?…         that page's table alone (htmx, while the tower is down)

A fragment always answers 200: htmx swaps only successful answers, and a refusal is content.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.adapters.backends import Backends
from gateway.console import exception_summary, flows
from gateway.console.exception_pages import list_url
from gateway.console.exceptions import KINDS, Filters
from gateway.console.flow_chart import BAR_WIDTH
from gateway.console.flow_history import TREND_HEIGHT, TREND_WIDTH, FlowHistory, FlowSample
from gateway.console.session import Session
from gateway.console.timeline import Refusal
from gateway.operator_auth import Operator

if TYPE_CHECKING:
    from gateway.console.app import Console, ConsoleSettings

PREFIX = "/console"
Page = Callable[[Request, Operator, Session], Awaitable[Response]]
# The chart's layout around its bars (SVG user units; the stylesheet sizes the whole).
CHART = {"label_width": 240.0, "bar_width": BAR_WIDTH, "row_height": 30.0, "width": 1120.0}


def flows_url() -> str:
    return f"{PREFIX}/flows"


def flow_url(flow: str, page_token: str = "", size: int = flows.DEFAULT_PAGE_SIZE) -> str:
    query = {
        **({"page": page_token} if page_token else {}),
        **({"size": str(size)} if size != flows.DEFAULT_PAGE_SIZE else {}),
    }
    return f"{PREFIX}/flows/{quote(flow, safe='')}" + (f"?{urlencode(query)}" if query else "")


class FlowPages:
    """The flow pages' routes, rendered by the console (its guard, templates and headers)."""

    def __init__(
        self,
        console: Console,
        backends: Backends,
        settings: ConsoleSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._console, self._backends, self._settings = console, backends, settings
        self._clock = clock
        # This process's samples of the flows, for the overview's "last hour" (per process).
        self.history = FlowHistory()

    def routes(self) -> list[Route]:
        read = self._console.read_page
        return [
            Route("/flows", read(self.overview), methods=["GET"]),
            # Before /flows/{flow}: no flow is called "rows" (names are the tower's).
            Route("/flows/rows", read(self.overview_rows), methods=["GET"]),
            Route("/flows/{flow}", read(self.drill_down), methods=["GET"]),
            Route("/flows/{flow}/rows", read(self.drill_down_rows), methods=["GET"]),
        ]

    # -- the overview ------------------------------------------------------------------------

    async def overview(self, request: Request, operator: Operator, session: Session) -> Response:
        context = await self._overview_context()
        refusal = context["refusal"]
        return self._console.render(
            "flows.html",
            refusal.status if isinstance(refusal, Refusal) else 200,
            title="Flow health",
            current="flows",
            operator=operator,
            csrf_token=session.csrf_token,
            **context,
        )

    async def overview_rows(
        self, request: Request, operator: Operator, session: Session
    ) -> Response:
        return self._console.fragment("flows_table.html", **(await self._overview_context()))

    async def _overview_context(self) -> dict[str, Any]:
        timeout = self._settings.tower_timeout_seconds
        # Side by side: a refresh waits for the slower of the two, not their sum.
        found, open_found = await asyncio.gather(
            flows.list_flows(self._backends, timeout),
            exception_summary.open_by_kind(self._backends, timeout),
        )
        view, refusal = (None, found) if isinstance(found, Refusal) else (found, None)
        # The exceptions' own refusal is shown in their section: the flows still render.
        open_view, open_refusal = (
            (None, open_found) if isinstance(open_found, Refusal) else (open_found, None)
        )
        now = self._clock()
        if view is not None:
            self.history.record(
                now,
                (
                    (row.name, FlowSample(row.oldest_seconds, row.sla_seconds, row.breaches))
                    for row in view.rows
                ),
            )
        rows = view.rows if view is not None else ()
        return {
            "trends": {row.name: self.history.trend(row.name, now) for row in rows},
            "trend_size": {"width": TREND_WIDTH, "height": TREND_HEIGHT},
            "history": self.history,
            "sampled": len(self.history.samples(now)),
            "view": view,
            "refusal": refusal,
            "open_exceptions": open_view,
            "open_refusal": open_refusal,
            "open_kind_url": open_kind_url,
            "max_counted": exception_summary.MAX_COUNTED,
            # Live while the tower answers or may answer again; not when it is not configured.
            "poll": refusal is None or refusal.transient,
            "poll_url": f"{PREFIX}/flows/rows",
            "refresh_seconds": self._console.refresh_label(),
            "chart": CHART,
            "flow_url": flow_url,
        }

    # -- one flow ----------------------------------------------------------------------------

    async def drill_down(self, request: Request, operator: Operator, session: Session) -> Response:
        flow = request.path_params["flow"]
        context = await self._drill_down_context(request)
        refusal = context["refusal"]
        return self._console.render(
            "flow_items.html",
            refusal.status if isinstance(refusal, Refusal) else 200,
            title=f"Flow {flow}",
            current="flows",
            operator=operator,
            csrf_token=session.csrf_token,
            **context,
        )

    async def drill_down_rows(
        self, request: Request, operator: Operator, session: Session
    ) -> Response:
        return self._console.fragment(
            "flow_items_table.html", **(await self._drill_down_context(request))
        )

    async def _drill_down_context(self, request: Request) -> dict[str, Any]:
        flow = request.path_params["flow"]
        page_token = request.query_params.get("page", "")
        size = _page_size(request.query_params.get("size", ""))
        if isinstance(size, Refusal):
            found: flows.ItemsPage | Refusal = size
            size = flows.DEFAULT_PAGE_SIZE
        else:
            found = await flows.list_items(
                self._backends, flow, page_token, size, self._settings.tower_timeout_seconds
            )
        page, refusal = (None, found) if isinstance(found, Refusal) else (found, None)
        rows_query = urlencode({"page": page_token, "size": size})
        return {
            "flow_name": flow,
            "page": page,
            "refusal": refusal,
            # A snapshot an operator reads and clicks through: re-read only while the tower is
            # down, so the page fills in when it answers again.
            "poll": refusal is not None and refusal.transient,
            "poll_url": f"{PREFIX}/flows/{quote(flow, safe='')}/rows?{rows_query}",
            "refresh_seconds": self._console.refresh_label(),
            "flow_url": flow_url,
            "flows_url": flows_url(),
        }


def open_kind_url(kind: str) -> str:
    """The exceptions list filtered to one kind's open ones (every open one for a kind newer
    than this gateway's contract, which the list's filter does not know)."""
    return list_url(Filters(kind if kind in KINDS else "", "open"))


def _page_size(value: str) -> int | Refusal:
    """The `size` query parameter: items per page, 1 to MAX_PAGE_SIZE (default 50)."""
    if not value:
        return flows.DEFAULT_PAGE_SIZE
    if not value.isdigit() or not 1 <= int(value) <= flows.MAX_PAGE_SIZE:
        return Refusal(
            f"size: must be a whole number from 1 to {flows.MAX_PAGE_SIZE} "
            f"(items per page), not {value!r}.",
            400,
        )
    return int(value)
