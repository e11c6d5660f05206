"""InventoryService over gRPC: request translation only (proto → command, app, result → proto).

Every RPC is one use case in one unit of work (`UnitsOfWork.run`, re-run whole on an optimistic
`Conflict`). Domain errors propagate unchanged; the kit's server interceptor maps them to status
codes with details, and protovalidate has already checked the request shape.
"""

from __future__ import annotations

from typing import Any

from crossdock.inventory.v1 import inventory_service_pb2 as svc
from crossdock.inventory.v1 import inventory_service_pb2_grpc as svc_grpc

from services.inventory import app, domain
from services.inventory.adapters import contracts
from services.inventory.app import ListPage
from services.inventory.domain.ids import IdSource
from services.kit.clock import Clock, utc_now
from services.kit.faults import fault_point
from services.kit.uow import UnitsOfWork


class InventoryApi(svc_grpc.InventoryServiceServicer):
    """The servicer; `ids` and `clock` are injected so tests and the simulator stay in control."""

    def __init__(self, units: UnitsOfWork, ids: IdSource, clock: Clock = utc_now) -> None:
        self._units = units
        self._ids = ids
        self._clock = clock

    # -- item master -----------------------------------------------------------------------

    async def CreateItem(self, request: svc.CreateItemRequest, context: Any) -> Any:
        item = contracts.item_to_domain(request.item)
        saved = await self._units.run(app.create_item, item)
        return svc.CreateItemResponse(item=contracts.item_to_proto(saved))

    async def UpdateItem(self, request: svc.UpdateItemRequest, context: Any) -> Any:
        item = contracts.item_to_domain(request.item)
        saved = await self._units.run(app.update_item, item)
        return svc.UpdateItemResponse(item=contracts.item_to_proto(saved))

    async def GetItem(self, request: svc.GetItemRequest, context: Any) -> Any:
        item = await self._units.run(app.get_item, request.sku)
        return svc.GetItemResponse(item=contracts.item_to_proto(item))

    async def ListItems(self, request: svc.ListItemsRequest, context: Any) -> Any:
        page = ListPage(request.page_size, request.page_token)
        items, token = await self._units.run(app.list_items, page, request.include_inactive)
        return svc.ListItemsResponse(
            items=[contracts.item_to_proto(i) for i in items], next_page_token=token
        )

    # -- locations -------------------------------------------------------------------------

    async def CreateLocation(self, request: svc.CreateLocationRequest, context: Any) -> Any:
        location = contracts.location_to_domain(request.location)
        saved = await self._units.run(app.create_location, location)
        return svc.CreateLocationResponse(location=contracts.location_to_proto(saved))

    async def UpdateLocation(self, request: svc.UpdateLocationRequest, context: Any) -> Any:
        location = contracts.location_to_domain(request.location)
        saved = await self._units.run(app.update_location, location)
        return svc.UpdateLocationResponse(location=contracts.location_to_proto(saved))

    async def GetLocation(self, request: svc.GetLocationRequest, context: Any) -> Any:
        location = await self._units.run(app.get_location, request.location_id)
        return svc.GetLocationResponse(location=contracts.location_to_proto(location))

    async def ListLocations(self, request: svc.ListLocationsRequest, context: Any) -> Any:
        page = ListPage(request.page_size, request.page_token)
        locations, token = await self._units.run(app.list_locations, page)
        return svc.ListLocationsResponse(
            locations=[contracts.location_to_proto(x) for x in locations], next_page_token=token
        )

    # -- stock -----------------------------------------------------------------------------

    async def GetAvailability(self, request: svc.GetAvailabilityRequest, context: Any) -> Any:
        skus, locations = tuple(request.skus), tuple(request.location_ids)
        if request.include_items:
            answer, items = await self._units.run(app.availability_with_items, skus, locations)
            return contracts.availability_to_proto(answer, items)
        answer = await self._units.run(app.availability, skus, locations)
        return contracts.availability_to_proto(answer)

    async def ReserveStock(self, request: svc.ReserveStockRequest, context: Any) -> Any:
        command = domain.ReserveStock(
            order_id=request.order_id,
            location_id=request.location_id,
            lines=tuple(
                domain.ReserveLine(x.order_line_number, x.sku, x.quantity) for x in request.lines
            ),
            # UNSPECIFIED means the safe default: hold everything or nothing.
            policy=domain.ReservationPolicy(
                request.policy or domain.ReservationPolicy.ALL_OR_NOTHING.value
            ),
            idempotency_key=request.idempotency_key,
        )
        outcome = await self._units.run(app.reserve_stock, command, self._ids, self._clock)
        # Committed, not answered: a crash here leaves a reservation its caller never heard of.
        fault_point("inventory.reserve.before_answer")
        response = svc.ReserveStockResponse(
            shortfalls=[
                svc.ReserveLine(
                    order_line_number=s.order_line_number, sku=s.sku, quantity=s.quantity
                )
                for s in outcome.shortfalls
            ]
        )
        if outcome.reservation is not None:
            response.reservation.CopyFrom(contracts.reservation_to_proto(outcome.reservation))
        return response

    async def ReleaseReservation(self, request: svc.ReleaseReservationRequest, context: Any) -> Any:
        command = domain.ReleaseStock(
            reservation_id=request.reservation_id,
            reason=request.reason or "released by request",
            lines=tuple(
                domain.ReserveLine(x.order_line_number, x.sku, x.quantity) for x in request.lines
            ),
            idempotency_key=request.idempotency_key,
        )
        outcome = await self._units.run(app.release_reservation, command, self._clock)
        return svc.ReleaseReservationResponse(
            reservation=contracts.reservation_to_proto(outcome.reservation)
        )

    async def AdjustStock(self, request: svc.AdjustStockRequest, context: Any) -> Any:
        command = domain.AdjustStock(
            sku=request.sku,
            location_id=request.location_id,
            quantity_delta=request.quantity_delta,
            reason=domain.AdjustmentReason(request.reason),
            note=request.note,
            idempotency_key=request.idempotency_key,
        )
        outcome = await self._units.run(app.adjust_stock, command, self._ids, self._clock)
        return svc.AdjustStockResponse(
            adjustment=contracts.adjustment_to_proto(outcome.adjustment),
            position=contracts.position_to_proto(outcome.position),
        )

    async def ReceiveStock(self, request: svc.ReceiveStockRequest, context: Any) -> Any:
        command = domain.ReceiveStock(
            location_id=request.location_id,
            source=domain.ReceiptSource(request.source),
            source_reference=request.source_reference,
            lines=tuple(contracts.receipt_line_to_domain(x) for x in request.lines),
            idempotency_key=request.idempotency_key,
        )
        outcome = await self._units.run(app.receive_stock, command, self._ids, self._clock)
        return svc.ReceiveStockResponse(receipt=contracts.receipt_to_proto(outcome.receipt))

    async def ListPositions(self, request: svc.ListPositionsRequest, context: Any) -> Any:
        page = ListPage(request.page_size, request.page_token)
        sku, location = request.sku or None, request.location_id or None
        positions, token = await self._units.run(app.list_positions, page, sku, location)
        return svc.ListPositionsResponse(
            positions=[contracts.position_to_proto(p) for p in positions], next_page_token=token
        )

    async def ListReservations(self, request: svc.ListReservationsRequest, context: Any) -> Any:
        page = ListPage(request.page_size, request.page_token)
        status = domain.ReservationStatus(request.status) if request.status else None
        reservations, token = await self._units.run(
            app.list_reservations,
            page,
            request.sku or None,
            request.location_id or None,
            request.order_id or None,
            status,
        )
        return svc.ListReservationsResponse(
            reservations=[contracts.reservation_to_proto(r) for r in reservations],
            next_page_token=token,
        )

    # -- picks -----------------------------------------------------------------------------

    async def ListPickTasks(self, request: svc.ListPickTasksRequest, context: Any) -> Any:
        page = ListPage(request.page_size, request.page_token)
        # UNSPECIFIED lists every status (the service's behaviour; the contract's comment says
        # open tasks only).
        status = domain.PickStatus(request.status) if request.status else None
        location = request.location_id or None
        tasks, token = await self._units.run(app.list_pick_tasks, page, location, status)
        return svc.ListPickTasksResponse(
            pick_tasks=[contracts.pick_task_to_proto(x) for x in tasks], next_page_token=token
        )

    async def ConfirmPick(self, request: svc.ConfirmPickRequest, context: Any) -> Any:
        lines = tuple(contracts.confirmation_to_domain(x) for x in request.lines)
        outcome = await self._units.run(
            app.confirm_pick, request.pick_id, lines, self._ids, self._clock
        )
        return svc.ConfirmPickResponse(
            pick_task=contracts.pick_task_to_proto(outcome.task),
            lines=[contracts.confirmation_to_proto(x) for x in outcome.task.confirmed_lines],
        )


def add_to_server(server: Any, api: InventoryApi) -> None:
    """Register the servicer on a kit ServiceServer."""
    server.add_servicer(
        svc_grpc.add_InventoryServiceServicer_to_server,
        api,
        svc.DESCRIPTOR.services_by_name["InventoryService"],
    )
