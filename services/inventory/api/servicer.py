"""InventoryService over gRPC: thin translation between proto and the domain operations.

Every mutating RPC is one retried unit of work (store.run_retrying): read, decide (domain), write
state and outbox rows, commit. Domain errors propagate unchanged; the kit's server interceptor
maps them to status codes with details, and protovalidate has already checked the request shape.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from crossdock.inventory.v1 import inventory_service_pb2 as svc
from crossdock.inventory.v1 import inventory_service_pb2_grpc as svc_grpc
from sqlalchemy import Connection

from services.inventory import domain, publishing
from services.inventory.api import mapping
from services.inventory.domain.errors import not_found
from services.inventory.domain.ids import IdSource
from services.inventory.store import SqlInventory, run_retrying
from services.kit.db import Database
from services.kit.errors import InvalidArgument
from services.kit.request_context import current_correlation_id, new_correlation_id

T = TypeVar("T")
Clock = Callable[[], datetime]

DEFAULT_PAGE_SIZE = 100


def utc_now() -> datetime:
    return datetime.now(UTC)


def page(rows: Sequence[T], key: Callable[[T], str], size: int, token: str) -> tuple[list[T], str]:
    """Keyset pagination over rows sorted by `key`: the token is the last key served."""
    size = size or DEFAULT_PAGE_SIZE
    try:
        after = base64.urlsafe_b64decode(token.encode()).decode() if token else None
    except ValueError as exc:
        raise InvalidArgument.for_field(
            "page_token", "not a token this service issued", "page_token"
        ) from exc
    remaining = [row for row in rows if after is None or key(row) > after]
    served = remaining[:size]
    more = len(remaining) > size
    next_token = base64.urlsafe_b64encode(key(served[-1]).encode()).decode() if more else ""
    return served, next_token


class InventoryApi(svc_grpc.InventoryServiceServicer):
    """The servicer; `ids` and `clock` are injected so tests and the simulator stay in control."""

    def __init__(self, db: Database, ids: IdSource, clock: Clock = utc_now) -> None:
        self._db = db
        self._ids = ids
        self._clock = clock

    async def _work(self, fn: Callable[..., T]) -> T:
        # Read once per request, so every retry of the unit of work stamps the same id.
        correlation_id = current_correlation_id() or new_correlation_id()
        return await run_retrying(self._db, _with_repo(fn), correlation_id)

    # -- item master -----------------------------------------------------------------------

    async def CreateItem(self, request: svc.CreateItemRequest, context: Any) -> Any:
        item = mapping.item_to_domain(request.item)
        saved = await self._work(lambda repo, *_: domain.create_item(repo, item))
        return svc.CreateItemResponse(item=mapping.item_to_proto(saved))

    async def UpdateItem(self, request: svc.UpdateItemRequest, context: Any) -> Any:
        item = mapping.item_to_domain(request.item)
        saved = await self._work(lambda repo, *_: domain.update_item(repo, item))
        return svc.UpdateItemResponse(item=mapping.item_to_proto(saved))

    async def GetItem(self, request: svc.GetItemRequest, context: Any) -> Any:
        item = await self._work(lambda repo, *_: repo.get_item(request.sku))
        if item is None:
            raise not_found("item", request.sku)
        return svc.GetItemResponse(item=mapping.item_to_proto(item))

    async def ListItems(self, request: svc.ListItemsRequest, context: Any) -> Any:
        items = await self._work(lambda repo, *_: repo.items())
        if not request.include_inactive:
            items = [item for item in items if item.active]
        served, token = page(items, lambda i: i.sku, request.page_size, request.page_token)
        return svc.ListItemsResponse(
            items=[mapping.item_to_proto(i) for i in served], next_page_token=token
        )

    # -- locations -------------------------------------------------------------------------

    async def CreateLocation(self, request: svc.CreateLocationRequest, context: Any) -> Any:
        location = mapping.location_to_domain(request.location)
        saved = await self._work(lambda repo, *_: domain.create_location(repo, location))
        return svc.CreateLocationResponse(location=mapping.location_to_proto(saved))

    async def UpdateLocation(self, request: svc.UpdateLocationRequest, context: Any) -> Any:
        location = mapping.location_to_domain(request.location)
        saved = await self._work(lambda repo, *_: domain.update_location(repo, location))
        return svc.UpdateLocationResponse(location=mapping.location_to_proto(saved))

    async def GetLocation(self, request: svc.GetLocationRequest, context: Any) -> Any:
        location = await self._work(lambda repo, *_: repo.get_location(request.location_id))
        if location is None:
            raise not_found("location", request.location_id)
        return svc.GetLocationResponse(location=mapping.location_to_proto(location))

    async def ListLocations(self, request: svc.ListLocationsRequest, context: Any) -> Any:
        locations = await self._work(lambda repo, *_: repo.locations())
        served, token = page(
            locations, lambda x: x.location_id, request.page_size, request.page_token
        )
        return svc.ListLocationsResponse(
            locations=[mapping.location_to_proto(x) for x in served], next_page_token=token
        )

    # -- stock -----------------------------------------------------------------------------

    async def GetAvailability(self, request: svc.GetAvailabilityRequest, context: Any) -> Any:
        skus, locations = tuple(request.skus), tuple(request.location_ids)
        answer = await self._work(lambda repo, *_: domain.availability(repo, skus, locations))
        return svc.GetAvailabilityResponse(
            availability=[
                svc.SkuAvailability(
                    sku=a.sku,
                    quantity_available=a.quantity_available,
                    positions=[mapping.position_to_proto(p) for p in a.positions],
                )
                for a in answer
            ]
        )

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

        def work(repo: SqlInventory, conn: Connection, correlation_id: str) -> Any:
            outcome = domain.reserve(repo, self._ids, command, self._clock())
            publishing.publish(conn, outcome.events, correlation_id)
            return outcome

        outcome = await self._work(work)
        response = svc.ReserveStockResponse(
            shortfalls=[
                svc.ReserveLine(
                    order_line_number=s.order_line_number, sku=s.sku, quantity=s.quantity
                )
                for s in outcome.shortfalls
            ]
        )
        if outcome.reservation is not None:
            response.reservation.CopyFrom(mapping.reservation_to_proto(outcome.reservation))
        return response

    async def ReleaseReservation(self, request: svc.ReleaseReservationRequest, context: Any) -> Any:
        reason = request.reason or "released by request"

        def work(repo: SqlInventory, conn: Connection, correlation_id: str) -> Any:
            outcome = domain.release(repo, request.reservation_id, reason, self._clock())
            publishing.publish(conn, outcome.events, correlation_id)
            return outcome

        outcome = await self._work(work)
        return svc.ReleaseReservationResponse(
            reservation=mapping.reservation_to_proto(outcome.reservation)
        )

    async def ListPickTasks(self, request: svc.ListPickTasksRequest, context: Any) -> Any:
        status = domain.PickStatus(request.status) if request.status else None
        location = request.location_id or None
        tasks = await self._work(
            lambda repo, *_: repo.pick_tasks(location_id=location, status=status)
        )
        # Pick ids are ULIDs, so id order is creation order and a valid keyset.
        served, token = page(tasks, lambda x: x.pick_id, request.page_size, request.page_token)
        return svc.ListPickTasksResponse(
            pick_tasks=[mapping.pick_task_to_proto(x) for x in served], next_page_token=token
        )

    async def ConfirmPick(self, request: svc.ConfirmPickRequest, context: Any) -> Any:
        lines = tuple(mapping.confirmation_to_domain(x) for x in request.lines)

        def work(repo: SqlInventory, conn: Connection, correlation_id: str) -> Any:
            outcome = domain.confirm_pick(repo, self._ids, request.pick_id, lines, self._clock())
            publishing.publish(conn, outcome.events, correlation_id)
            return outcome

        outcome = await self._work(work)
        return svc.ConfirmPickResponse(
            pick_task=mapping.pick_task_to_proto(outcome.task),
            lines=[mapping.confirmation_to_proto(x) for x in outcome.task.confirmed_lines],
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

        def work(repo: SqlInventory, conn: Connection, correlation_id: str) -> Any:
            outcome = domain.adjust(repo, self._ids, command, self._clock())
            publishing.publish(conn, outcome.events, correlation_id)
            return outcome

        outcome = await self._work(work)
        return svc.AdjustStockResponse(
            adjustment=mapping.adjustment_to_proto(outcome.adjustment),
            position=mapping.position_to_proto(outcome.position),
        )

    async def ReceiveStock(self, request: svc.ReceiveStockRequest, context: Any) -> Any:
        command = domain.ReceiveStock(
            location_id=request.location_id,
            source=domain.ReceiptSource(request.source),
            source_reference=request.source_reference,
            lines=tuple(domain.ReceiptLine(x.sku, x.quantity, x.lot) for x in request.lines),
            idempotency_key=request.idempotency_key,
        )

        def work(repo: SqlInventory, conn: Connection, correlation_id: str) -> Any:
            outcome = domain.receive(repo, self._ids, command, self._clock())
            publishing.publish(conn, outcome.events, correlation_id)
            return outcome

        outcome = await self._work(work)
        return svc.ReceiveStockResponse(receipt=mapping.receipt_to_proto(outcome.receipt))

    async def ListPositions(self, request: svc.ListPositionsRequest, context: Any) -> Any:
        sku, location = request.sku or None, request.location_id or None
        positions = await self._work(lambda repo, *_: repo.positions(sku, location))
        served, token = page(
            positions,
            lambda p: f"{p.sku}\x00{p.location_id}",
            request.page_size,
            request.page_token,
        )
        return svc.ListPositionsResponse(
            positions=[mapping.position_to_proto(p) for p in served], next_page_token=token
        )


def _with_repo(fn: Callable[..., T]) -> Callable[..., T]:
    """Adapt `fn(repo, conn, correlation_id)` to the kit's `fn(conn, *args)` unit of work."""

    def unit_of_work(conn: Connection, correlation_id: str) -> T:
        return fn(SqlInventory(conn), conn, correlation_id)

    return unit_of_work


def add_to_server(server: Any, api: InventoryApi) -> None:
    """Register the servicer on a kit ServiceServer."""
    server.add_servicer(
        svc_grpc.add_InventoryServiceServicer_to_server,
        api,
        svc.DESCRIPTOR.services_by_name["InventoryService"],
    )
