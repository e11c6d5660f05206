"""TowerService over gRPC: read-only views of what the tower has consumed.

Request translation only. Malformed references (empty, too long, control characters) never get
here: the kit's interceptor checks the contract's protovalidate rules first (INVALID_ARGUMENT
with the field violation).
"""

from __future__ import annotations

from typing import Any

from crossdock.tower.v1 import tower_pb2 as svc
from crossdock.tower.v1 import tower_pb2_grpc as svc_grpc

from services.control_tower import app
from services.control_tower.adapters import contracts
from services.kit.uow import UnitsOfWork


class TowerApi(svc_grpc.TowerServiceServicer):
    def __init__(self, units: UnitsOfWork) -> None:
        self._units = units

    async def GetTimeline(self, request: svc.GetTimelineRequest, context: Any) -> Any:
        query = app.TimelineQuery(request.reference, request.partner_id, request.include_details)
        found = await self._units.run(app.get_timeline, query)
        return contracts.timeline_to_proto(
            found.resolved.order_id,
            found.resolved.matched,
            found.entries,
            found.bodies if request.include_details else None,
        )


def add_to_server(server: Any, api: TowerApi) -> None:
    """Register the servicer on a kit ServiceServer."""
    server.add_servicer(
        svc_grpc.add_TowerServiceServicer_to_server,
        api,
        svc.DESCRIPTOR.services_by_name["TowerService"],
    )
