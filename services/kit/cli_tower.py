"""`crossdock tower timeline REF [--partner P] [--json]`: one order's timeline from the control
tower, over its gRPC API (the kit only needs the generated contract, never the service's code).
`crossdock flows [--json]`: the business flows' health (ListFlows), flows in SLA breach first;
`crossdock flows --items FLOW`: that flow's items (ListFlowItems, every page);
`crossdock exceptions ...`: the exceptions workbench (services.kit.cli_exceptions).

The reference is any id the tower knows: order id, external order id (with --partner when two
partners use it), shipment id, tracking number, invoice number, return id or correlation id.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import grpc
from crossdock.tower.v1 import tower_pb2, tower_pb2_grpc
from google.protobuf.json_format import MessageToDict
from google.rpc import error_details_pb2

from services.kit.catalog import load_catalog
from services.kit.client import open_channel
from services.kit.grpc_errors import details_of, status_from_error

TOWER_TARGET_ENV = "CROSSDOCK_TOWER_TARGET"
# The control tower's gRPC port under `make run` (localmesh.services.FIXED_PORTS).
DEFAULT_TOWER_TARGET = "127.0.0.1:50056"
_MATCHED_PREFIX = "REFERENCE_KIND_"


def add_tower_commands(commands: Any) -> None:
    """Mount `crossdock tower ...`, `crossdock flows`, `crossdock exceptions` and `crossdock
    reconcile` on the CLI's subparsers."""
    # Imported here: these commands reuse this module's table and error helpers.
    from services.kit.cli_exceptions import add_exceptions_command
    from services.kit.cli_reconcile import add_reconcile_command

    add_flows_command(commands)
    add_exceptions_command(commands)
    add_reconcile_command(commands)
    p_tower = commands.add_parser(
        "tower",
        help="the control tower's views",
        description="Read the control tower's projections.",
    )
    tower_cmds = p_tower.add_subparsers(dest="tower_command", required=True, metavar="ACTION")
    p = tower_cmds.add_parser(
        "timeline",
        help="one order's events from every service",
        description="Show one order's events from every service in causal order, looked up by "
        "order id, external order id, shipment id, tracking number, invoice number, return id "
        "or correlation id.",
    )
    p.add_argument("reference", metavar="REF", help="any reference of the order")
    p.add_argument("--partner", default="", help="partner id, for a shared external order id")
    p.add_argument(
        "--target",
        default=os.environ.get(TOWER_TARGET_ENV, DEFAULT_TOWER_TARGET),
        help=f"control tower gRPC HOST:PORT (default: ${TOWER_TARGET_ENV} or %(default)s)",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="seconds (default: %(default)s)")
    p.add_argument(
        "--json", action="store_true", help="print JSON, each entry with its event's details"
    )
    p.set_defaults(run=cmd_tower_timeline)


def _time(entry: tower_pb2.TimelineEntry) -> str:
    stamp = entry.occur_time.ToDatetime().isoformat(timespec="milliseconds")
    return stamp + "Z"


def render_timeline(response: tower_pb2.GetTimelineResponse) -> str:
    """The timeline as a fixed-width table under a one-line heading."""
    matched = tower_pb2.ReferenceKind.Name(response.matched).removeprefix(_MATCHED_PREFIX)
    heading = (
        f"order {response.order_id} (matched {matched.lower()}), {len(response.entries)} events"
    )
    header = ("TIME (UTC)", "PRODUCER", "EVENT", "STATE", "AGGREGATE", "TRACE")
    rows = [
        (
            _time(entry),
            entry.producer,
            entry.subject.removeprefix("crossdock."),
            entry.state_change or "-",
            entry.aggregate_id,
            entry.trace_id or "-",
        )
        for entry in response.entries
    ]
    return f"{heading}\n\n{table(header, rows)}"


def table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    """Fixed-width columns under a header line."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def explained(error: grpc.aio.AioRpcError) -> str:
    """The error's message, with each bad field's reason when the status carries them."""
    status = status_from_error(error)
    if status is None:
        return str(error.details())
    fields = [
        f"{violation.field}: {violation.description}"
        for request in details_of(status, error_details_pb2.BadRequest)
        for violation in request.field_violations
    ]
    return "; ".join(fields) if fields else str(error.details())


async def cmd_tower_timeline(args: argparse.Namespace) -> int:
    channel = open_channel(args.target, default_timeout_seconds=args.timeout)
    try:
        stub = tower_pb2_grpc.TowerServiceStub(channel)
        request = tower_pb2.GetTimelineRequest(
            reference=args.reference, partner_id=args.partner, include_details=args.json
        )
        try:
            response = await stub.GetTimeline(request, timeout=args.timeout)
        except grpc.aio.AioRpcError as exc:
            print(f"crossdock: {exc.code().name}: {explained(exc)}", file=sys.stderr)
            return 2 if exc.code() is grpc.StatusCode.INVALID_ARGUMENT else 1
    finally:
        await channel.close(None)
    if args.json:
        load_catalog()  # the event types, so the details' Any values print as their fields
        body = MessageToDict(response, preserving_proto_field_name=True)
        print(json.dumps(body, indent=2, sort_keys=True))
    else:
        print(render_timeline(response))
    return 0


# -- crossdock flows -------------------------------------------------------------------------


def add_flows_command(commands: Any) -> None:
    """Mount `crossdock flows` on the CLI's subparsers."""
    p = commands.add_parser(
        "flows",
        help="business-flow health from the control tower",
        description="Show each business flow: items waiting, SLA breaches, oldest age, SLA. "
        "Flows in breach come first.",
    )
    p.add_argument(
        "--target",
        default=os.environ.get(TOWER_TARGET_ENV, DEFAULT_TOWER_TARGET),
        help=f"control tower gRPC HOST:PORT (default: ${TOWER_TARGET_ENV} or %(default)s)",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="seconds (default: %(default)s)")
    p.add_argument(
        "--items", metavar="FLOW", default="", help="list one flow's items (all pages) instead"
    )
    p.add_argument("--json", action="store_true", help="print the response as JSON")
    p.set_defaults(run=cmd_flows)


def age(seconds: float) -> str:
    """A short human age: 42s, 7m, 3h12m, 2d4h."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m"
    if whole < 86400:
        hours, rest = divmod(whole, 3600)
        return f"{hours}h{rest // 60:02d}m"
    days, rest = divmod(whole, 86400)
    return f"{days}d{rest // 3600}h"


def breaches_first(flows: list[tower_pb2.FlowHealth]) -> list[tower_pb2.FlowHealth]:
    """Flows in breach (most breaches first), then the rest in the response's (spine) order."""
    ranked = sorted(enumerate(flows), key=lambda pair: (-pair[1].breaches, pair[0]))
    return [flow for _, flow in ranked]


def render_flows(response: tower_pb2.ListFlowsResponse) -> str:
    """The flows as a fixed-width table."""
    header = ("FLOW", "KIND", "ITEMS", "BREACHES", "OLDEST", "SLA")
    rows = [
        (
            flow.flow,
            flow.item_kind,
            str(flow.items),
            str(flow.breaches) if flow.breaches else "-",
            age(flow.oldest_age.ToTimedelta().total_seconds()) if flow.items else "-",
            age(flow.sla.ToTimedelta().total_seconds()),
        )
        for flow in breaches_first(list(response.flows))
    ]
    return table(header, rows)


def render_flow_items(items: list[tower_pb2.FlowItem]) -> str:
    """One flow's items as a fixed-width table, breaches marked."""
    header = ("ITEM", "ORDER", "ENTERED (UTC)", "AGE", "BREACH")
    rows = [
        (
            item.item_id,
            item.order_id or "-",
            item.enter_time.ToDatetime().isoformat(timespec="seconds") + "Z",
            age(item.age.ToTimedelta().total_seconds()),
            "yes" if item.breached else "-",
        )
        for item in items
    ]
    return table(header, rows)


async def _all_items(
    stub: tower_pb2_grpc.TowerServiceAsyncStub, flow: str, timeout: float
) -> list[tower_pb2.FlowItem]:
    items: list[tower_pb2.FlowItem] = []
    token = ""
    while True:
        request = tower_pb2.ListFlowItemsRequest(flow=flow, page_size=500, page_token=token)
        page = await stub.ListFlowItems(request, timeout=timeout)
        items += page.items
        token = page.next_page_token
        if not token:
            return items


async def cmd_flows(args: argparse.Namespace) -> int:
    channel = open_channel(args.target, default_timeout_seconds=args.timeout)
    try:
        stub = tower_pb2_grpc.TowerServiceStub(channel)
        try:
            if args.items:
                items = await _all_items(stub, args.items, args.timeout)
            else:
                response = await stub.ListFlows(tower_pb2.ListFlowsRequest(), timeout=args.timeout)
        except grpc.aio.AioRpcError as exc:
            print(f"crossdock: {exc.code().name}: {explained(exc)}", file=sys.stderr)
            return 2 if exc.code() is grpc.StatusCode.INVALID_ARGUMENT else 1
    finally:
        await channel.close(None)
    if args.items:
        if args.json:
            listed = [MessageToDict(item, preserving_proto_field_name=True) for item in items]
            print(json.dumps({"flow": args.items, "items": listed}, indent=2, sort_keys=True))
        else:
            print(render_flow_items(items))
    elif args.json:
        body = MessageToDict(response, preserving_proto_field_name=True)
        print(json.dumps(body, indent=2, sort_keys=True))
    else:
        print(render_flows(response))
    return 0
