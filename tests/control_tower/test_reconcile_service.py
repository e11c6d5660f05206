"""Reconciliation through the real tower (built as its main module builds it, with a check of
this module registered): RunReconciliation and ListFindings over gRPC, `crossdock reconcile
run|findings` with their table and JSON, the findings in the exceptions list, and the gauges."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import grpc
import pytest
from crossdock.tower.v1 import tower_pb2 as pb
from crossdock.tower.v1 import tower_pb2_grpc as pb_grpc
from prometheus_client import generate_latest

from services.control_tower.app.reconciliation.checks import registry
from services.control_tower.config import TowerConfig
from services.control_tower.main import setup
from services.kit.cli import main as crossdock
from services.kit.client import open_channel
from services.kit.metrics import ServiceMetrics
from services.kit.server import ServiceServer
from tests.control_tower.test_reconciler import ListCheck, ScanPage, drift
from tests.fixtures.nats import NatsServer
from tests.fixtures.waiting import wait_for


@contextlib.asynccontextmanager
async def tower_with(
    check: ListCheck, db_url: str, nats_url: str
) -> AsyncIterator[tuple[str, pb_grpc.TowerServiceStub, ServiceServer]]:
    env = {
        "CROSSDOCK_CONTROL_TOWER_DB_URL": db_url,
        "CROSSDOCK_CONTROL_TOWER_NATS_URL": nats_url,
        "CROSSDOCK_CONTROL_TOWER_GRPC_PORT": "0",
        "CROSSDOCK_CONTROL_TOWER_METRICS_PORT": "0",
        "CROSSDOCK_CONTROL_TOWER_BIND_HOST": "127.0.0.1",
        "CROSSDOCK_CONTROL_TOWER_CONSUMER_FETCH_TIMEOUT_SECONDS": "0.2",
        "CROSSDOCK_CONTROL_TOWER_FLOW_GAUGES_INTERVAL_SECONDS": "0.2",
        # Runs come from the RPC only here: the schedule is tested on its own.
        "CROSSDOCK_CONTROL_TOWER_RECONCILE_ENABLED": "false",
        "CROSSDOCK_CONTROL_TOWER_SHIPMENT_TARGET": "127.0.0.1:1",
        "CROSSDOCK_CONTROL_TOWER_CARRIER_ADAPTER_TARGET": "127.0.0.1:1",
        "CROSSDOCK_CONTROL_TOWER_ORDER_TARGET": "127.0.0.1:1",
        "CROSSDOCK_CONTROL_TOWER_INVENTORY_TARGET": "127.0.0.1:1",
        "CROSSDOCK_CONTROL_TOWER_BILLING_TARGET": "127.0.0.1:1",
    }
    config = TowerConfig.from_env(env)
    server = ServiceServer.from_config(config, metrics=ServiceMetrics(config.service))
    try:
        await setup(server, config, checks=registry(check))
        port = await server.start()
        target = f"127.0.0.1:{port}"
        channel = open_channel(target, default_timeout_seconds=10.0)
        try:
            yield target, pb_grpc.TowerServiceStub(channel), server
        finally:
            await channel.close()
    finally:
        await server.shutdown()


def metric(server: ServiceServer, line_start: str) -> float | None:
    assert server.metrics is not None
    for line in generate_latest(server.metrics.registry).decode().splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_run_and_list_findings_over_grpc_and_the_cli(
    sqlite_url: str, nats_server: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    check = ListCheck(pages=[ScanPage(500), ScanPage(2, [drift("s1", "delivered, no invoice")])])
    async with tower_with(check, sqlite_url, nats_server.url) as (target, stub, server):
        # Report-only: a finding, no correction; it is an exception of the check's owner.
        answer = await stub.RunReconciliation(pb.RunReconciliationRequest(report_only=True))
        (run,) = answer.runs
        assert (run.check, run.mode) == ("test_check", pb.RECONCILIATION_MODE_REPORT_ONLY)
        assert (run.scanned, run.drifts, run.new_findings, run.corrected) == (502, 1, 1, 0)
        assert (run.open_findings, run.error) == (1, "")
        assert check.corrected == []
        listed = await stub.ListExceptions(
            pb.ListExceptionsRequest(kind=pb.EXCEPTION_KIND_RECONCILIATION_FINDING)
        )
        (exception,) = listed.exceptions
        assert (exception.owner, exception.subject_kind, exception.detail) == (
            "billing",
            "finding",
            "delivered, no invoice",
        )
        assert exception.state == pb.EXCEPTION_STATE_OPEN

        # The CLI, correcting: a progress line on stderr, the table on stdout.
        command = ["reconcile", "run", "--check", "test_check", "--target", target]
        assert await asyncio.to_thread(crossdock, command) == 0
        out, err = capsys.readouterr()
        # Log lines of the in-process tower may share stderr: look for the progress line.
        progress = "test_check: done — scanned 502, 1 drifts, 1 corrected"
        assert any(line.startswith(progress) for line in err.splitlines()), err
        header, row = out.splitlines()
        assert header.split() == [
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
        ]
        assert row.split()[:8] == ["test_check", "correct", "502", "1", "0", "1", "0", "1"]
        assert check.corrected == ["s1"]

        # The drift is gone: the next run closes the finding, and its exception.
        check.pages = [ScanPage(502)]
        assert await asyncio.to_thread(crossdock, [*command, "--json"]) == 0
        (body,) = json.loads(capsys.readouterr().out)["runs"]
        assert (body["check"], body["closed"], body["open_findings"]) == ("test_check", "1", "0")

        findings = await stub.ListFindings(pb.ListFindingsRequest(check="test_check"))
        (finding,) = findings.findings
        assert (finding.subject_id, finding.state, finding.runs_seen) == (
            "s1",
            pb.FINDING_STATE_CLOSED,
            2,
        )
        assert (finding.action, finding.result, finding.corrected) == (
            "billing.Fix",
            "fixed s1",
            True,
        )
        listed = await stub.ListExceptions(
            pb.ListExceptionsRequest(kind=pb.EXCEPTION_KIND_RECONCILIATION_FINDING)
        )
        assert [e.state for e in listed.exceptions] == [pb.EXCEPTION_STATE_CLOSED]

        cli = ["reconcile", "findings", "--state", "closed", "--target", target]
        assert await asyncio.to_thread(crossdock, cli) == 0
        header, row = capsys.readouterr().out.splitlines()
        assert header.split()[:5] == ["ID", "CHECK", "SUBJECT", "ORDER", "STATE"]
        assert row.split()[1:5] == ["test_check", "s1", "ord_s1", "closed"]

        # The gauges: open findings by check, the latest run, the runs this replica made.
        labels = '{check="test_check"}'
        await wait_for(
            lambda: metric(server, f"crossdock_reconciliation_last_run_timestamp_seconds{labels}"),
            lambda got: got is not None,
        )
        assert metric(server, f"crossdock_reconciliation_findings_open{labels}") == 0.0
        duration = metric(server, f"crossdock_reconciliation_last_run_duration_seconds{labels}")
        assert duration is not None and duration >= 0
        ok = metric(server, 'crossdock_reconciliation_runs_total{check="test_check",outcome="ok"}')
        assert ok == 3.0


async def test_bad_requests_name_the_field(
    sqlite_url: str, nats_server: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    async with tower_with(ListCheck(), sqlite_url, nats_server.url) as (target, stub, _):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.RunReconciliation(pb.RunReconciliationRequest(checks=["nope"]))
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "no check 'nope'; the checks are test_check" in (refused.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ListFindings(pb.ListFindingsRequest(check="Bad Name"))
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        command = ["reconcile", "run", "--check", "nope", "--target", target]
        assert await asyncio.to_thread(crossdock, command) == 2
        assert "checks: no check 'nope'" in capsys.readouterr().err
