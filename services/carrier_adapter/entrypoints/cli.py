"""`crossdock carriers map-code|mappings`: operators' carrier code mappings from a terminal.

    crossdock carriers map-code CARRIER CODE STATUS --note WHY [--operator WHO] [--target H:P]
    crossdock carriers mappings [--carrier CARRIER] [--target H:P] [--json]

Both call carrier-adapter's RPCs (MapCarrierCode, ListCodeMappings), so a mapping made here is
validated, versioned and re-normalizes the scans it concerns exactly as one made from the
control tower. The kit's CLI mounts them through the `crossdock.cli` entry point naming
`add_carrier_commands(subparsers)`. Exit codes: 0 done, 2 refused (bad input: each field is
named), 3 carrier-adapter unreachable.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any

import grpc
from crossdock.carrier.v1 import carrier_service_pb2 as svc
from crossdock.carrier.v1 import carrier_service_pb2_grpc as svc_grpc
from crossdock.carrier.v1 import tracking_pb2
from google.protobuf.json_format import MessageToDict
from google.rpc import error_details_pb2

from services.kit.client import open_channel
from services.kit.grpc_errors import details_of, status_from_error

__all__ = ["add_carrier_commands"]

TARGET_ENV = "CROSSDOCK_CARRIER_ADAPTER_TARGET"
OK, REFUSED, UNREACHABLE = 0, 2, 3
# The statuses an operator may map a code to (UNKNOWN is what "unmapped" means).
MAPPABLE = [
    value.name.removeprefix("TRACKING_STATUS_")
    for value in tracking_pb2.TrackingStatus.DESCRIPTOR.values
    if value.number
    not in (tracking_pb2.TRACKING_STATUS_UNSPECIFIED, tracking_pb2.TRACKING_STATUS_UNKNOWN)
]


def _stub(args: argparse.Namespace) -> tuple[grpc.aio.Channel, Any]:
    """A channel to carrier-adapter and its stub (typed Any: the generated stubs type their
    calls as synchronous)."""
    if not args.target:
        raise SystemExit(f"give --target HOST:PORT or set ${TARGET_ENV}")
    channel = open_channel(args.target, default_timeout_seconds=args.timeout)
    return channel, svc_grpc.CarrierAdapterServiceStub(channel)


def _refused(error: grpc.aio.AioRpcError) -> int:
    """Print why carrier-adapter refused the call; the exit code it means."""
    print(f"crossdock: {error.code().name}: {error.details()}", file=sys.stderr)
    status = status_from_error(error)
    if status is not None:
        for bad_request in details_of(status, error_details_pb2.BadRequest):
            for violation in bad_request.field_violations:
                print(f"  {violation.field}: {violation.description}", file=sys.stderr)
    if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return UNREACHABLE
    return REFUSED


def _mapping_dict(mapping: svc.CodeMapping) -> dict[str, Any]:
    return MessageToDict(mapping, preserving_proto_field_name=True)


async def cmd_map_code(args: argparse.Namespace) -> int:
    request = svc.MapCarrierCodeRequest(
        carrier=args.carrier,
        carrier_status_code=args.code,
        status=tracking_pb2.TrackingStatus.Value(f"TRACKING_STATUS_{args.status}"),
        note=args.note,
        operator=args.operator,
    )
    channel, stub = _stub(args)
    async with channel:
        try:
            answer = await stub.MapCarrierCode(request)
        except grpc.aio.AioRpcError as error:
            return _refused(error)
    if args.json:
        print(json.dumps(MessageToDict(answer, preserving_proto_field_name=True), indent=2))
        return OK
    mapping = answer.mapping
    verb = "mapped" if answer.created else "already mapped"
    print(
        f"{mapping.carrier} {mapping.carrier_status_code}: {verb} to {args.status} "
        f"(version {mapping.version}); {answer.renormalized_scans} scan(s) published again"
    )
    return OK


async def cmd_mappings(args: argparse.Namespace) -> int:
    channel, stub = _stub(args)
    mappings: list[svc.CodeMapping] = []
    async with channel:
        token = ""
        while True:
            try:
                page = await stub.ListCodeMappings(
                    svc.ListCodeMappingsRequest(carrier=args.carrier, page_token=token)
                )
            except grpc.aio.AioRpcError as error:
                return _refused(error)
            mappings.extend(page.mappings)
            token = page.next_page_token
            if not token:
                break
    if args.json:
        print(json.dumps([_mapping_dict(m) for m in mappings], indent=2))
        return OK
    for m in mappings:
        status = tracking_pb2.TrackingStatus.Name(m.status).removeprefix("TRACKING_STATUS_")
        when = m.create_time.ToDatetime().isoformat(timespec="seconds")
        print(
            f"{m.carrier}\t{m.carrier_status_code}\tv{m.version}\t{status}\t{when}\t"
            f"{m.operator}\t{m.note}"
        )
    return OK


def add_carrier_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add `carriers map-code|mappings` to a CLI's subparsers; returns the `carriers` parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--target",
        default=os.environ.get(TARGET_ENV),
        help=f"carrier-adapter gRPC address HOST:PORT (default: ${TARGET_ENV})",
    )
    common.add_argument("--timeout", type=float, default=10.0, help="deadline per call, seconds")
    common.add_argument("--json", action="store_true", help="print JSON")

    carriers: argparse.ArgumentParser = subparsers.add_parser(
        "carriers",
        help="carrier code mappings: map a code, list the mappings",
        description="Operators' mappings of carrier status codes to canonical statuses.",
    )
    actions = carriers.add_subparsers(dest="carriers_command", required=True, metavar="ACTION")

    p = actions.add_parser(
        "map-code", parents=[common], help="map a carrier status code to a canonical status"
    )
    p.add_argument("carrier", help="carrier code, e.g. ups")
    p.add_argument("code", help="the carrier's status code, exactly as it sends it")
    p.add_argument("status", choices=MAPPABLE, help="the canonical status the code means")
    p.add_argument("--note", required=True, help="why the code means that status")
    p.add_argument(
        "--operator", default=getpass.getuser(), help="who maps it (default: your user name)"
    )
    p.set_defaults(run=cmd_map_code)

    p = actions.add_parser("mappings", parents=[common], help="every version, newest first")
    p.add_argument("--carrier", default="", help="only this carrier's mappings")
    p.set_defaults(run=cmd_mappings)
    return carriers
