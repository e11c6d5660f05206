"""ShipmentService over gRPC: read-only views of shipments and their tracking timeline.

partner_id scopes a request: another partner's shipment answers NOT_FOUND, exactly like a
missing one, so ids of other partners cannot be probed. Lists are newest first and keyset-paged
on the row sequence; the page token is that sequence, opaque to callers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from crossdock.shipment.v1 import shipment_service_pb2 as svc
from crossdock.shipment.v1 import shipment_service_pb2_grpc as svc_grpc
from sqlalchemy import Connection

from services.kit.db import Database
from services.kit.errors import NotFound
from services.kit.paging import DEFAULT_PAGE_SIZE, decode_token, encode_token
from services.shipment import flow
from services.shipment.store import repository as repo
from services.shipment.store import scans


def _not_found(shipment_id: str) -> NotFound:
    return NotFound(
        f"shipment {shipment_id} not found", resource_type="shipment", resource_name=shipment_id
    )


def _tracking(conn: Connection, shipment_id: str, partner_id: str) -> Any:
    stored = repo.get_shipment(conn, shipment_id)
    if stored is None or (partner_id and stored.shipment.partner_id != partner_id):
        return None
    return svc.GetTrackingResponse(
        shipment_id=shipment_id,
        status=stored.shipment.status,
        events=scans.list_scans(conn, shipment_id),
    )


class ShipmentApi(svc_grpc.ShipmentServiceServicer):
    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime],
        on_retry: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._on_retry = on_retry  # wakes the worker: the label is due now

    async def GetShipment(self, request: svc.GetShipmentRequest, context: Any) -> Any:
        stored = await self._db.run(repo.get_shipment, request.shipment_id)
        if stored is None or (
            request.partner_id and stored.shipment.partner_id != request.partner_id
        ):
            raise _not_found(request.shipment_id)
        return svc.GetShipmentResponse(shipment=stored.shipment)

    async def ListShipments(self, request: svc.ListShipmentsRequest, context: Any) -> Any:
        size = request.page_size or DEFAULT_PAGE_SIZE
        before = decode_token(request.page_token)
        # One row more than asked says whether another page exists.
        rows = await self._db.run(
            repo.list_shipments,
            request.partner_id,
            request.order_id,
            int(request.status),
            before,
            size + 1,
        )
        token = encode_token(rows[size - 1][0]) if len(rows) > size else ""
        return svc.ListShipmentsResponse(
            shipments=[shipment for _, shipment in rows[:size]], next_page_token=token
        )

    async def GetTracking(self, request: svc.GetTrackingRequest, context: Any) -> Any:
        response = await self._db.run(_tracking, request.shipment_id, request.partner_id)
        if response is None:
            raise _not_found(request.shipment_id)
        return response

    async def RetryLabel(self, request: svc.RetryLabelRequest, context: Any) -> Any:
        shipment = await self._db.run(flow.retry_label, request.shipment_id, self._clock())
        self._on_retry()
        return svc.RetryLabelResponse(shipment=shipment)


def add_to_server(server: Any, api: ShipmentApi) -> None:
    """Register the servicer on a kit ServiceServer."""
    server.add_servicer(
        svc_grpc.add_ShipmentServiceServicer_to_server,
        api,
        svc.DESCRIPTOR.services_by_name["ShipmentService"],
    )
