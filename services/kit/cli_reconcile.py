"""`crossdock reconcile run [--check NAME]... [--report-only]` and `crossdock reconcile findings`:
the control tower's reconciliation over its gRPC API (mounted by cli_tower).

`run` runs the checks now, one RunReconciliation call per check so that a progress line per
check goes to stderr as each finishes, then prints a summary table (check, mode, scanned,
drifts, new, corrected, closed, open, duration, error) or, with `--json`, the runs as JSON.
Exit codes: 0 every run completed, 1 a run failed or the tower refused, 2 a bad argument.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from crossdock.tower.v1 import tower_pb2, tower_pb2_grpc
from google.protobuf.json_format import MessageToDict

from services.kit.cli_tower import DEFAULT_TOWER_TARGET, TOWER_TARGET_ENV, explained, table
from services.kit.client import open_channel

_MODE = "RECONCILIATION_MODE_"
_STATE = "FINDING_STATE_"


def add_reconcile_command(commands: Any) -> None:
    """Mount `crossdock reconcile ...` on the CLI's subparsers."""
    p_rec = commands.add_parser(
        "reconcile",
        help="the control tower's reconciliation checks",
        description="Run the checks that find drift between services, and list their findings.",
    )
    actions = p_rec.add_subparsers(dest="reconcile_command", required=True, metavar="ACTION")

    def sub(name: str, help_text: str, run: Callable[[argparse.Namespace], Awaitable[int]]) -> Any:
        p = actions.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--target",
            default=os.environ.get(TOWER_TARGET_ENV, DEFAULT_TOWER_TARGET),
            help=f"control tower gRPC HOST:PORT (default: ${TOWER_TARGET_ENV} or %(default)s)",
        )
        p.add_argument("--json", action="store_true", help="print the answer as JSON")
        p.set_defaults(run=run)
        return p

    p = sub("run", "run checks now (every check, or the ones named)", cmd_run)
    p.add_argument(
        "--check", action="append", default=[], metavar="NAME", help="a check (repeatable)"
    )
    p.add_argument("--report-only", action="store_true", help="record findings, correct nothing")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per check (%(default)s)")
    p = sub("findings", "reconciliation findings, newest first", cmd_findings)
    p.add_argument("--check", default="", metavar="NAME", help="one check's findings")
    p.add_argument("--state", default="", choices=["", "open", "closed"], help="open or closed")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds (%(default)s)")


def _refused(error: grpc.aio.AioRpcError) -> int:
    print(f"crossdock: {error.code().name}: {explained(error)}", file=sys.stderr)
    return 2 if error.code() is grpc.StatusCode.INVALID_ARGUMENT else 1


def _seconds(run: tower_pb2.ReconciliationRun) -> float:
    return run.duration.ToTimedelta().total_seconds()


def render_runs(runs: list[tower_pb2.ReconciliationRun]) -> str:
    header = (
        "CHECK",
        "MODE",
        "SCANNED",
        "DRIFTS",
        "NEW",
        "CORRECTED",
        "CLOSED",
        "OPEN",
        "DURATION",
        "ERROR",
    )
    rows = [
        (
            run.check,
            tower_pb2.ReconciliationMode.Name(run.mode).removeprefix(_MODE).lower(),
            str(run.scanned),
            str(run.drifts),
            str(run.new_findings),
            str(run.corrected),
            str(run.closed),
            str(run.open_findings),
            f"{_seconds(run):.1f}s",
            run.error or "-",
        )
        for run in runs
    ]
    return table(header, rows)


def render_findings(found: list[tower_pb2.Finding]) -> str:
    header = ("ID", "CHECK", "SUBJECT", "ORDER", "STATE", "RUNS", "EVIDENCE", "CORRECTION")
    rows = [
        (
            str(f.finding_id),
            f.check,
            f.subject_id,
            f.order_id or "-",
            tower_pb2.FindingState.Name(f.state).removeprefix(_STATE).lower(),
            str(f.runs_seen),
            f.evidence[:70],
            (("ok: " if f.corrected else "refused: ") + f.result)[:70] if f.action else "-",
        )
        for f in found
    ]
    return table(header, rows)


async def cmd_run(args: argparse.Namespace) -> int:
    channel = open_channel(args.target, default_timeout_seconds=args.timeout)
    runs: list[tower_pb2.ReconciliationRun] = []
    try:
        stub = tower_pb2_grpc.TowerServiceStub(channel)
        # One call per named check, so progress shows as each finishes; with none named, one
        # call runs every check.
        batches = [[name] for name in dict.fromkeys(args.check)] or [[]]
        for checks in batches:
            request = tower_pb2.RunReconciliationRequest(
                checks=checks, report_only=args.report_only
            )
            try:
                answer = await stub.RunReconciliation(request, timeout=args.timeout)
            except grpc.aio.AioRpcError as error:
                return _refused(error)
            for run in answer.runs:
                state = f"failed: {run.error}" if run.error else "done"
                print(
                    f"{run.check}: {state} — scanned {run.scanned}, {run.drifts} drifts, "
                    f"{run.corrected} corrected, {run.closed} closed in {_seconds(run):.1f}s",
                    file=sys.stderr,
                )
            runs += answer.runs
    finally:
        await channel.close(None)
    if args.json:
        # Zero counts printed too: a summary's 0 drifts is an answer, not a missing field.
        body = MessageToDict(
            tower_pb2.RunReconciliationResponse(runs=runs),
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        )
        print(json.dumps(body, indent=2, sort_keys=True))
    else:
        print(render_runs(runs))
    return 1 if any(run.error for run in runs) else 0


async def cmd_findings(args: argparse.Namespace) -> int:
    state = {"open": tower_pb2.FINDING_STATE_OPEN, "closed": tower_pb2.FINDING_STATE_CLOSED}.get(
        args.state, tower_pb2.FINDING_STATE_UNSPECIFIED
    )
    channel = open_channel(args.target, default_timeout_seconds=args.timeout)
    found: list[tower_pb2.Finding] = []
    try:
        stub = tower_pb2_grpc.TowerServiceStub(channel)
        token = ""
        while True:
            request = tower_pb2.ListFindingsRequest(
                check=args.check, state=state, page_size=500, page_token=token
            )
            try:
                page = await stub.ListFindings(request, timeout=args.timeout)
            except grpc.aio.AioRpcError as error:
                return _refused(error)
            found += page.findings
            token = page.next_page_token
            if not token:
                break
    finally:
        await channel.close(None)
    if args.json:
        body = MessageToDict(
            tower_pb2.ListFindingsResponse(findings=found), preserving_proto_field_name=True
        )
        print(json.dumps(body, indent=2, sort_keys=True))
    else:
        print(render_findings(found))
    return 0
