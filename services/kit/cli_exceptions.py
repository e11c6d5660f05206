"""`crossdock exceptions list|show ID|retry ID|redrive ID|resolve ID --note N|map-code ID STATUS`:
the control tower's exceptions workbench over its gRPC API (mounted by cli_tower).

Every action carries `--operator` (default: $USER) and is audited by the tower; `--json` prints
the response. Exit codes: 0 done, 2 a bad argument (INVALID_ARGUMENT), 1 any other refusal.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from crossdock.carrier.v1 import tracking_pb2
from crossdock.tower.v1 import tower_pb2, tower_pb2_grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from services.kit.cli_tower import (
    DEFAULT_TOWER_TARGET,
    TOWER_TARGET_ENV,
    age,
    explained,
    table,
)
from services.kit.client import open_channel

_KIND = "EXCEPTION_KIND_"
_STATE = "EXCEPTION_STATE_"
_ACTION = "EXCEPTION_ACTION_"

# The async stub type exists only in the generated stubs (.pyi), hence the string.
Call = Callable[["tower_pb2_grpc.TowerServiceAsyncStub", float], Awaitable[Message]]


def _operator() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container): the flag is then required
        return ""


def add_exceptions_command(commands: Any) -> None:
    """Mount `crossdock exceptions ...` on the CLI's subparsers."""
    p_exc = commands.add_parser(
        "exceptions",
        help="the control tower's exceptions workbench",
        description="List exceptions across domains and act on them through their owners; "
        "every action is audited.",
    )
    actions = p_exc.add_subparsers(dest="exceptions_command", required=True, metavar="ACTION")

    def sub(name: str, help_text: str, run: Callable[[argparse.Namespace], Call]) -> Any:
        p = actions.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--target",
            default=os.environ.get(TOWER_TARGET_ENV, DEFAULT_TOWER_TARGET),
            help=f"control tower gRPC HOST:PORT (default: ${TOWER_TARGET_ENV} or %(default)s)",
        )
        p.add_argument("--timeout", type=float, default=10.0, help="seconds (%(default)s)")
        p.add_argument("--json", action="store_true", help="print the response as JSON")
        p.set_defaults(run=lambda args: _run(args, run(args)))
        return p

    p = sub("list", "exceptions, oldest first", _list)
    p.add_argument("--kind", default="", help="label_failed, label_void_failed, ...")
    p.add_argument("--state", default="", choices=["", "open", "closed"], help="open or closed")
    p = sub("show", "one exception and its audit trail", _show)
    p.add_argument("exception_id", type=int, metavar="ID")

    def act(p: Any) -> None:
        p.add_argument("exception_id", type=int, metavar="ID")
        p.add_argument("--operator", default=_operator(), help="who acts (default: $USER)")

    p = sub("retry", "ask the owner to try the failed step again", _retry)
    act(p)
    p.add_argument("--reason", default="", help="why (kept in the audit trail)")
    p = sub("redrive", "redrive a dead letter through its consuming service", _redrive)
    act(p)
    p.add_argument("--reason", default="", help="why now (kept in the audit trail)")
    p = sub("resolve", "close an exception by hand, with a note", _resolve)
    act(p)
    p.add_argument("--note", required=True, help="why it needs nothing more")
    p = sub("map-code", "map an unmapped carrier code to a tracking status", _map_code)
    act(p)
    p.add_argument("status", metavar="STATUS", help="e.g. IN_TRANSIT (a TrackingStatus)")
    p.add_argument("--note", required=True, help="why the code means that status")


def _enum(prefix: str, name: str, enum: Any) -> int:
    """A proto enum's number from its short name (in_transit → TRACKING_STATUS_IN_TRANSIT);
    an unknown name is sent as-is unknown (99) so the tower names the field."""
    if not name:
        return 0
    full = name.upper() if name.upper().startswith(prefix) else prefix + name.upper()
    try:
        return int(enum.Value(full))
    except ValueError:
        return 99


def _list(args: argparse.Namespace) -> Call:
    async def call(stub: tower_pb2_grpc.TowerServiceAsyncStub, timeout: float) -> Message:
        found: list[tower_pb2.Exception] = []
        token = ""
        while True:
            request = tower_pb2.ListExceptionsRequest(
                kind=_enum(_KIND, args.kind, tower_pb2.ExceptionKind),  # type: ignore[arg-type]
                state=_enum(_STATE, args.state, tower_pb2.ExceptionState),  # type: ignore[arg-type]
                page_size=500,
                page_token=token,
            )
            page = await stub.ListExceptions(request, timeout=timeout)
            found += page.exceptions
            token = page.next_page_token
            if not token:
                return tower_pb2.ListExceptionsResponse(exceptions=found)

    return call


def _show(args: argparse.Namespace) -> Call:
    request = tower_pb2.GetExceptionRequest(exception_id=args.exception_id)
    return lambda stub, timeout: stub.GetException(request, timeout=timeout)


def _retry(args: argparse.Namespace) -> Call:
    request = tower_pb2.RetryExceptionRequest(
        exception_id=args.exception_id, operator=args.operator, reason=args.reason
    )
    return lambda stub, timeout: stub.RetryException(request, timeout=timeout)


def _redrive(args: argparse.Namespace) -> Call:
    request = tower_pb2.RedriveExceptionRequest(
        exception_id=args.exception_id, operator=args.operator, reason=args.reason
    )
    return lambda stub, timeout: stub.RedriveException(request, timeout=timeout)


def _resolve(args: argparse.Namespace) -> Call:
    request = tower_pb2.ResolveExceptionRequest(
        exception_id=args.exception_id, operator=args.operator, note=args.note
    )
    return lambda stub, timeout: stub.ResolveException(request, timeout=timeout)


def _map_code(args: argparse.Namespace) -> Call:
    status = _enum("TRACKING_STATUS_", args.status, tracking_pb2.TrackingStatus)
    request = tower_pb2.MapCarrierCodeExceptionRequest(
        exception_id=args.exception_id,
        status=status,  # type: ignore[arg-type]
        operator=args.operator,
        note=args.note,
    )
    return lambda stub, timeout: stub.MapCarrierCodeException(request, timeout=timeout)


def _age(exception: tower_pb2.Exception) -> str:
    return age(exception.age.ToTimedelta().total_seconds())


def render_exceptions(found: list[tower_pb2.Exception]) -> str:
    """The exceptions as a fixed-width table."""
    header = ("ID", "KIND", "OWNER", "SUBJECT", "ORDER", "STATE", "AGE", "SLA", "DETAIL")
    rows = [
        (
            str(x.exception_id),
            tower_pb2.ExceptionKind.Name(x.kind).removeprefix(_KIND).lower(),
            x.owner,
            x.subject_id,
            x.order_id or "-",
            tower_pb2.ExceptionState.Name(x.state).removeprefix(_STATE).lower(),
            _age(x),
            "breach" if x.sla_breached else "-",
            x.detail[:60],
        )
        for x in found
    ]
    return table(header, rows)


def render_audit(entries: list[tower_pb2.ExceptionAuditEntry]) -> str:
    header = ("TIME (UTC)", "ACTION", "OPERATOR", "CALL", "RESULT", "REASON")
    rows = [
        (
            entry.time.ToDatetime().isoformat(timespec="seconds") + "Z",
            tower_pb2.ExceptionAction.Name(entry.action).removeprefix(_ACTION).lower(),
            entry.operator,
            entry.owner_call or "-",
            ("ok: " if entry.succeeded else "refused: ") + entry.result,
            entry.reason or "-",
        )
        for entry in entries
    ]
    return table(header, rows)


def render(response: Message) -> str:
    if isinstance(response, tower_pb2.ListExceptionsResponse):
        return render_exceptions(list(response.exceptions))
    if isinstance(response, tower_pb2.GetExceptionResponse):
        shown = render_exceptions([response.exception])
        return f"{shown}\n\n{render_audit(list(response.audit))}" if response.audit else shown
    exception = response.exception  # type: ignore[attr-defined]
    audit = response.audit  # type: ignore[attr-defined]
    return f"{render_exceptions([exception])}\n\n{render_audit([audit])}"


async def _run(args: argparse.Namespace, call: Call) -> int:
    channel = open_channel(args.target, default_timeout_seconds=args.timeout)
    try:
        stub = tower_pb2_grpc.TowerServiceStub(channel)
        try:
            response = await call(stub, args.timeout)
        except grpc.aio.AioRpcError as exc:
            print(f"crossdock: {exc.code().name}: {explained(exc)}", file=sys.stderr)
            return 2 if exc.code() is grpc.StatusCode.INVALID_ARGUMENT else 1
    finally:
        await channel.close(None)
    if args.json:
        body = MessageToDict(response, preserving_proto_field_name=True)
        print(json.dumps(body, indent=2, sort_keys=True))
    else:
        print(render(response))
    return 0
