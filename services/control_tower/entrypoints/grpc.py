"""TowerService over gRPC: read-only views of what the tower has consumed.

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
from services.control_tower.adapters import contracts, flow_contracts
from services.kit.uow import UnitsOfWork


class TowerApi(svc_grpc.TowerServiceServicer):
    def __init__(
        self,
        units: UnitsOfWork,
        flow_settings: app.FlowSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._units = units
        self._flows = flow_settings if flow_settings is not None else app.FlowSettings()
        self._clock = clock

    async def GetTimeline(self, request: svc.GetTimelineRequest, context: Any) -> Any:
        query = app.TimelineQuery(request.reference, request.partner_id, request.include_details)
        found = await self._units.run(app.get_timeline, query)
        return contracts.timeline_to_proto(
            found.resolved.order_id,
            found.resolved.matched,
            found.entries,
            found.bodies if request.include_details else None,
        )

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


def add_to_server(server: Any, api: TowerApi) -> None:
    """Register the servicer on a kit ServiceServer."""
    server.add_servicer(
        svc_grpc.add_TowerServiceServicer_to_server,
        api,
        svc.DESCRIPTOR.services_by_name["TowerService"],
    )
