"""Business-flow health for the console: ListFlows and ListFlowItems on the control tower, made
into what the overview and the drill-down show, and the tower's refusals made into messages.

Flows in breach come first (most breaches first), then the others in the tower's spine order:
the same order as `crossdock flows`, from the same helper.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC

import grpc
from crossdock.tower.v1 import tower_pb2, tower_pb2_grpc
from google.rpc import error_details_pb2

from gateway.adapters.backends import Backends, BackendUnavailable
from gateway.console.flow_chart import ChartRow, LegendEntry, chart_row, legend
from gateway.console.timeline import TOWER_SERVICE, Refusal
from services.kit.cli_tower import age, breaches_first
from services.kit.grpc_errors import details_of, status_from_error

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
NOT_CONFIGURED = Refusal(
    "The control tower is not configured on this gateway "
    "(CROSSDOCK_GATEWAY_TOWER_TARGET is empty).",
    503,
)
_TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


@dataclass(frozen=True)
class FlowRow:
    """One flow as the overview shows it."""

    name: str
    item_kind: str
    description: str
    items: int
    breaches: int
    oldest: str  # human-readable, "—" when the flow is empty
    sla: str
    chart: ChartRow
    oldest_seconds: float
    sla_seconds: float


@dataclass(frozen=True)
class FlowsView:
    rows: tuple[FlowRow, ...]
    legend: tuple[LegendEntry, ...]  # the age buckets' colours (every flow has the same)

    @property
    def in_breach(self) -> int:
        return sum(1 for row in self.rows if row.breaches)

    @property
    def waiting(self) -> int:
        return sum(row.items for row in self.rows)


@dataclass(frozen=True)
class ItemRow:
    """One item of a flow as the drill-down shows it."""

    item_id: str
    order_id: str  # "" while the tower has not linked the item to its order
    entered: str
    age: str
    breached: bool


@dataclass(frozen=True)
class ItemsPage:
    flow: FlowRow
    items: tuple[ItemRow, ...]
    page_token: str  # this page's token ("" for the first)
    next_page_token: str  # "" on the last page
    page_size: int


def _stub(backends: Backends) -> tower_pb2_grpc.TowerServiceAsyncStub | None:
    try:
        return tower_pb2_grpc.TowerServiceStub(backends.channel(TOWER_SERVICE))
    except BackendUnavailable:
        return None


async def list_flows(backends: Backends, timeout_seconds: float) -> FlowsView | Refusal:
    """Every flow, breaches first, or why the tower cannot say."""
    stub = _stub(backends)
    if stub is None:
        return NOT_CONFIGURED
    try:
        response = await stub.ListFlows(tower_pb2.ListFlowsRequest(), timeout=timeout_seconds)
    except grpc.aio.AioRpcError as error:
        return _refusal(error)
    flows = breaches_first(list(response.flows))
    bounds = [bucket.le_seconds for bucket in flows[0].age_buckets] if flows else []
    return FlowsView(tuple(flow_row(flow) for flow in flows), legend(bounds))


async def list_items(
    backends: Backends, flow: str, page_token: str, page_size: int, timeout_seconds: float
) -> ItemsPage | Refusal:
    """One page of `flow`'s items with the flow's health, or why there is none."""
    stub = _stub(backends)
    if stub is None:
        return NOT_CONFIGURED
    request = tower_pb2.ListFlowItemsRequest(flow=flow, page_token=page_token, page_size=page_size)
    try:
        # The items first: they say precisely what is wrong with the flow or the token.
        items = await stub.ListFlowItems(request, timeout=timeout_seconds)
        flows = await stub.ListFlows(tower_pb2.ListFlowsRequest(), timeout=timeout_seconds)
    except grpc.aio.AioRpcError as error:
        return _refusal(error, flow)
    health = next((found for found in flows.flows if found.flow == flow), None)
    if health is None:  # a tower that pages a flow it does not list: say so, not crash
        return Refusal(f"The control tower does not list the flow {flow!r}.", 502)
    return ItemsPage(
        flow=flow_row(health),
        items=tuple(_item_row(item) for item in items.items),
        page_token=page_token,
        next_page_token=items.next_page_token,
        page_size=page_size,
    )


def flow_row(flow: tower_pb2.FlowHealth) -> FlowRow:
    sla_seconds = flow.sla.ToTimedelta().total_seconds()
    return FlowRow(
        name=flow.flow,
        item_kind=flow.item_kind,
        description=flow.description,
        items=flow.items,
        breaches=flow.breaches,
        oldest=age(flow.oldest_age.ToTimedelta().total_seconds()) if flow.items else "—",
        sla=age(sla_seconds),
        chart=chart_row(
            [(bucket.le_seconds, bucket.items) for bucket in flow.age_buckets],
            breaches=flow.breaches,
        ),
        oldest_seconds=flow.oldest_age.ToTimedelta().total_seconds(),
        sla_seconds=sla_seconds,
    )


def _item_row(item: tower_pb2.FlowItem) -> ItemRow:
    entered = item.enter_time.ToDatetime(tzinfo=UTC)
    return ItemRow(
        item_id=item.item_id,
        order_id=item.order_id,
        entered=entered.strftime("%Y-%m-%d %H:%M:%S"),
        age=age(item.age.ToTimedelta().total_seconds()),
        breached=item.breached,
    )


def _refusal(error: grpc.aio.AioRpcError, flow: str = "") -> Refusal:
    code, detail = error.code(), str(error.details() or "")
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        violations = _violations(error)
        if "flow" in violations:
            # The flow is the page's path: an unknown or malformed name is a page not found.
            return Refusal(f"No flow is named {flow!r}: {violations['flow']}.", 404)
        if "page_token" in violations:
            return Refusal(
                "This page link is not one the control tower issued (or it has expired): "
                f"{violations['page_token']}. Start again from the first page.",
                400,
            )
        described = "; ".join(f"{field}: {text}" for field, text in violations.items())
        return Refusal(described or detail, 400)
    if code in _TRANSIENT:
        return Refusal(
            f"The control tower did not answer ({code.name}); this page tries again.",
            503,
            transient=True,
        )
    return Refusal(f"The control tower refused the request ({code.name}: {detail}).", 502)


def _violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """Bad field → the tower's description of what is wrong with it."""
    status = status_from_error(error)
    if status is None:
        return {}
    return {
        violation.field: violation.description
        for request in details_of(status, error_details_pb2.BadRequest)
        for violation in request.field_violations
    }
