"""ShipmentService over gRPC: read-only views of shipments and their tracking timeline, the
operator's label retry, the order service's cancellation of an order's shipments (with the
retry of a failed label void), and reconciliation's re-emit of a delivered event. Request
translation only; the rules live in app.shipments, app.cancellation and app.reemit.

partner_id scopes a request: another partner's shipment answers NOT_FOUND, exactly like a
missing one. Lists are newest first and keyset-paged on the row sequence (services.kit.paging).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from crossdock.shipment.v1 import shipment_service_pb2 as svc
from crossdock.shipment.v1 import shipment_service_pb2_grpc as svc_grpc

from services.kit.clock import Clock
from services.kit.paging import page_size
from services.kit.uow import UnitsOfWork
from services.shipment.adapters.contracts import scan_to_proto, shipment_to_proto
from services.shipment.app import cancellation, reemit, shipments

log = logging.getLogger(__name__)


class ShipmentApi(svc_grpc.ShipmentServiceServicer):
    def __init__(
        self, units: UnitsOfWork, clock: Clock, on_retry: Callable[[], None] = lambda: None
    ) -> None:
        self._units = units
        self._clock = clock
        self._on_retry = on_retry  # wakes the worker: a label or a void is due now

    async def GetShipment(self, request: svc.GetShipmentRequest, context: Any) -> Any:
        shipment = await self._units.run(
            shipments.get_shipment, request.shipment_id, request.partner_id
        )
        return svc.GetShipmentResponse(shipment=shipment_to_proto(shipment))

    async def ListShipments(self, request: svc.ListShipmentsRequest, context: Any) -> Any:
        page, token = await self._units.run(
            shipments.list_shipments,
            request.partner_id,
            request.order_id,
            int(request.status),
            request.page_token,
            page_size(request.page_size),
            kind=int(request.kind),
            return_id=request.return_id,
            order_ids=tuple(request.order_ids),
        )
        return svc.ListShipmentsResponse(
            shipments=[shipment_to_proto(s) for s in page], next_page_token=token
        )

    async def GetTracking(self, request: svc.GetTrackingRequest, context: Any) -> Any:
        shipment, scans = await self._units.run(
            shipments.get_tracking, request.shipment_id, request.partner_id
        )
        return svc.GetTrackingResponse(
            shipment_id=shipment.shipment_id,
            status=int(shipment.status),  # type: ignore[arg-type]
            events=[scan_to_proto(record) for record in scans],
        )

    async def RetryLabel(self, request: svc.RetryLabelRequest, context: Any) -> Any:
        shipment = await self._units.run(shipments.retry_label, request.shipment_id, self._clock())
        self._on_retry()
        return svc.RetryLabelResponse(shipment=shipment_to_proto(shipment))

    async def CancelOrderShipments(
        self, request: svc.CancelOrderShipmentsRequest, context: Any
    ) -> Any:
        cancelled = await self._units.run(
            cancellation.cancel_order_shipments,
            request.order_id,
            request.partner_id,
            request.reason or "order cancelled",
            self._clock(),
        )
        self._on_retry()
        return svc.CancelOrderShipmentsResponse(shipments=[shipment_to_proto(s) for s in cancelled])

    async def RetryLabelVoid(self, request: svc.RetryLabelVoidRequest, context: Any) -> Any:
        shipment = await self._units.run(
            cancellation.retry_void, request.shipment_id, self._clock()
        )
        self._on_retry()
        return svc.RetryLabelVoidResponse(shipment=shipment_to_proto(shipment))

    async def ReemitDelivered(self, request: svc.ReemitDeliveredRequest, context: Any) -> Any:
        result = await self._units.run(reemit.reemit_delivered, request.shipment_id)
        # The reason is only for the log: reconciliation says what it found missing.
        log.info(
            "shipment %s: delivered event %s %s (%s)",
            request.shipment_id,
            result.event_id,
            "re-emitted" if result.reemitted else "still pending",
            request.reason or "no reason given",
        )
        return svc.ReemitDeliveredResponse(event_id=result.event_id, reemitted=result.reemitted)


def add_to_server(server: Any, api: ShipmentApi) -> None:
    """Register the servicer on a kit ServiceServer."""
    server.add_servicer(
        svc_grpc.add_ShipmentServiceServicer_to_server,
        api,
        svc.DESCRIPTOR.services_by_name["ShipmentService"],
    )
