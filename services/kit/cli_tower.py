"""`crossdock tower timeline REF [--partner P] [--json]`: one order's timeline from the control
tower, over its gRPC API (the kit only needs the generated contract, never the service's code).

The reference is any id the tower knows: order id, external order id (with --partner when two
partners use it), shipment id, tracking number, invoice number, return id or correlation id.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
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
    """Mount `crossdock tower ...` on the CLI's subparsers."""
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
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [heading, ""]
    for row in [header, *rows]:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return "\n".join(line.rstrip() for line in lines)


def _explained(error: grpc.aio.AioRpcError) -> str:
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
            print(f"crossdock: {exc.code().name}: {_explained(exc)}", file=sys.stderr)
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
