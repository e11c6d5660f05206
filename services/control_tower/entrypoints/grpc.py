"""TowerService over gRPC: read-only views of what the tower has consumed, and the exceptions
workbench's audited actions (each through the owner's RPC: services.control_tower.app.workbench),
and reconciliation: run checks now, list their findings (services.control_tower.app.reconcile).

Request translation only. Malformed references (empty, too long, control characters) never get
here: the kit's interceptor checks the contract's protovalidate rules first (INVALID_ARGUMENT
with the field violation).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from crossdock.tower.v1 import tower_pb2 as svc
from crossdock.tower.v1 import tower_pb2_grpc as svc_grpc

from services.control_tower import app
from services.control_tower.adapters import (
    contracts,
    exception_contracts,
    flow_contracts,
    reconcile_contracts,
)
from services.control_tower.app import reconcile, workbench
from services.control_tower.domain.exceptions import AuditEntry, ExceptionKind, ExceptionView
from services.kit.uow import UnitsOfWork

_STATES = {svc.EXCEPTION_STATE_OPEN: True, svc.EXCEPTION_STATE_CLOSED: False}


class TowerApi(svc_grpc.TowerServiceServicer):
    def __init__(
        self,
        units: UnitsOfWork,
        flow_settings: app.FlowSettings | None = None,
        clock: Callable[[], float] = time.time,
        bench: workbench.Workbench | None = None,
        exception_settings: workbench.ExceptionSettings | None = None,
        reconciler: reconcile.Reconciler | None = None,
    ) -> None:
        self._units = units
        self._flows = flow_settings if flow_settings is not None else app.FlowSettings()
        self._clock = clock
        self._bench = bench
        self._exceptions = exception_settings or workbench.ExceptionSettings()
        self._reconciler = reconciler

    def _exception(self, found: ExceptionView) -> Any:
        sla = self._exceptions.sla_of(found.kind)
        return exception_contracts.exception_to_proto(found, self._clock(), sla)

    def _workbench(self) -> workbench.Workbench:
        if self._bench is None:  # only tests of the read side build the api without owners
            raise RuntimeError("the tower was started without its owners' clients")
        return self._bench

    def _acted(self, response: Any, done: tuple[ExceptionView, AuditEntry]) -> Any:
        found, entry = done
        return response(
            exception=self._exception(found), audit=exception_contracts.audit_to_proto(entry)
        )

    async def GetTimeline(self, request: svc.GetTimelineRequest, context: Any) -> Any:
        query = app.TimelineQuery(request.reference, request.partner_id, request.include_details)
        found = await self._units.run(app.get_timeline, query)
        response = contracts.timeline_to_proto(
            found.resolved.order_id,
            found.resolved.matched,
            found.entries,
            found.bodies if request.include_details else None,
        )
        return exception_contracts.with_actions(response, found.actions)

    async def ListFlows(self, request: svc.ListFlowsRequest, context: Any) -> Any:
        summaries = await self._units.run(app.list_flows, self._flows, self._clock())
        return svc.ListFlowsResponse(flows=[flow_contracts.flow_to_proto(s) for s in summaries])

    async def ListFlowItems(self, request: svc.ListFlowItemsRequest, context: Any) -> Any:
        query = app.FlowItemsQuery(request.flow, request.page_size, request.page_token)
        items, token = await self._units.run(app.list_flow_items, self._flows, query, self._clock())
        return svc.ListFlowItemsResponse(
            items=[flow_contracts.flow_item_to_proto(item) for item in items],
            next_page_token=token,
        )

    async def ListExceptions(self, request: svc.ListExceptionsRequest, context: Any) -> Any:
        query = workbench.ListQuery(
            kind=ExceptionKind(request.kind) if request.kind else None,
            open_only=_STATES.get(request.state),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        found, token = await self._units.run(workbench.list_exceptions, query)
        return svc.ListExceptionsResponse(
            exceptions=[self._exception(each) for each in found], next_page_token=token
        )

    async def GetException(self, request: svc.GetExceptionRequest, context: Any) -> Any:
        found, audit = await self._units.run(workbench.get_exception, request.exception_id)
        return svc.GetExceptionResponse(
            exception=self._exception(found),
            audit=[exception_contracts.audit_to_proto(entry) for entry in audit],
        )

    async def RetryException(self, request: svc.RetryExceptionRequest, context: Any) -> Any:
        act = workbench.Act(request.exception_id, request.operator, request.reason)
        return self._acted(svc.RetryExceptionResponse, await self._workbench().retry(act))

    async def ResolveException(self, request: svc.ResolveExceptionRequest, context: Any) -> Any:
        act = workbench.Act(request.exception_id, request.operator, request.note)
        return self._acted(svc.ResolveExceptionResponse, await self._workbench().resolve(act))

    async def MapCarrierCodeException(
        self, request: svc.MapCarrierCodeExceptionRequest, context: Any
    ) -> Any:
        act = workbench.Act(request.exception_id, request.operator, request.note)
        done = await self._workbench().map_code(act, request.status)
        return self._acted(svc.MapCarrierCodeExceptionResponse, done)

    async def RedriveException(self, request: svc.RedriveExceptionRequest, context: Any) -> Any:
        act = workbench.Act(request.exception_id, request.operator, request.reason)
        return self._acted(svc.RedriveExceptionResponse, await self._workbench().redrive(act))

    async def RunReconciliation(self, request: svc.RunReconciliationRequest, context: Any) -> Any:
        if self._reconciler is None:
            raise RuntimeError("the tower was started without its reconciliation checks")
        summary = await self._reconciler.run(list(request.checks), request.report_only)
        return svc.RunReconciliationResponse(
            runs=[reconcile_contracts.run_to_proto(run) for run in summary.runs]
        )

    async def ListFindings(self, request: svc.ListFindingsRequest, context: Any) -> Any:
        query = reconcile.FindingsQuery(
            check=request.check,
            state=reconcile_contracts.STATES.get(request.state),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        found, token = await self._units.run(reconcile.list_findings, query)
        return svc.ListFindingsResponse(
            findings=[reconcile_contracts.finding_to_proto(f) for f in found],
            next_page_token=token,
        )


def add_to_server(server: Any, api: TowerApi) -> None:
    """Register the servicer on a kit ServiceServer."""
    server.add_servicer(
        svc_grpc.add_TowerServiceServicer_to_server,
        api,
        svc.DESCRIPTOR.services_by_name["TowerService"],
    )
