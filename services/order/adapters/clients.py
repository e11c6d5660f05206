"""Order's gRPC clients to other services: inventory (item master, availability, reservations,
partial releases) and shipment (label retries, cancelling an order's shipments).

Each client speaks in domain values: requests are built from saga commands and answers come back
as saga inputs or catalog entries, so no stub message leaves this module. Errors propagate as
`grpc.aio.AioRpcError` (the caller decides what is transient, with kit `is_transient`), except the
capture-time reads and the cancel-time calls, whose failures are kit errors for the caller of
CreateOrder / CancelOrder (Unavailable, or OrderNotCancellable for a refusal).
"""

from __future__ import annotations

import asyncio
import logging

import grpc
from crossdock.inventory.v1 import inventory_pb2 as inv
from crossdock.inventory.v1 import inventory_service_pb2 as inv_svc
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from crossdock.shipment.v1 import shipment_service_pb2 as shp_svc
from crossdock.shipment.v1 import shipment_service_pb2_grpc as shp_grpc

from services.kit.errors import Unavailable
from services.order.domain import CatalogItem, HeldLine, StaticCatalog
from services.order.domain import messages as m
from services.order.domain.errors import OrderNotCancellable, PreconditionViolation

log = logging.getLogger(__name__)

# sku -> location id -> units available to promise (domain `Availability`, as built here).
AvailabilitySnapshot = dict[str, dict[str, int]]


class InventoryClient:
    """The inventory calls order makes: capture-time reads and the saga's stock commands."""

    def __init__(self, stub: inv_grpc.InventoryServiceAsyncStub) -> None:
        self._stub = stub

    # -- capture-time reads (CreateOrder) --------------------------------------------------------

    async def capture_reads(
        self, skus: tuple[str, ...]
    ) -> tuple[StaticCatalog, AvailabilitySnapshot]:
        """The item master entries of `skus` (unknown SKUs are simply absent) and the units
        available per SKU per location right now: one GetAvailability that asks for item facts.

        An inventory that predates them answers without (`items_included` false, as during a
        rolling deploy); the items are then read one GetItem per SKU, as before.
        """
        request = inv_svc.GetAvailabilityRequest(skus=list(skus), include_items=True)
        try:
            answer = await self._stub.GetAvailability(request)
        except grpc.aio.AioRpcError as error:
            raise _inventory_unavailable(error) from error
        if not answer.items_included:
            return await self.catalog(skus), _snapshot(answer)
        catalog = StaticCatalog(
            [CatalogItem(a.sku, a.item_active) for a in answer.availability if a.item_known]
        )
        return catalog, _snapshot(answer)

    async def catalog(self, skus: tuple[str, ...]) -> StaticCatalog:
        """The item master entries of `skus` (unknown SKUs are simply absent), one GetItem per
        SKU: capture's fallback against an inventory whose availability carries no items."""

        async def lookup(sku: str) -> CatalogItem | None:
            try:
                answer = await self._stub.GetItem(inv_svc.GetItemRequest(sku=sku))
            except grpc.aio.AioRpcError as error:
                if error.code() is grpc.StatusCode.NOT_FOUND:
                    return None
                raise _inventory_unavailable(error) from error
            return CatalogItem(answer.item.sku, answer.item.active)

        found = await asyncio.gather(*(lookup(sku) for sku in skus))
        return StaticCatalog([item for item in found if item is not None])

    # -- saga commands ---------------------------------------------------------------------------

    async def availability(self, skus: tuple[str, ...]) -> AvailabilitySnapshot:
        answer = await self._stub.GetAvailability(inv_svc.GetAvailabilityRequest(skus=list(skus)))
        return _snapshot(answer)

    async def reserve(self, command: m.ReserveStock) -> m.ReservationMade:
        response = await self._stub.ReserveStock(
            inv_svc.ReserveStockRequest(
                order_id=command.order_id,
                location_id=command.location_id,
                lines=[
                    inv_svc.ReserveLine(
                        order_line_number=h.line_number, sku=h.sku, quantity=h.quantity
                    )
                    for h in command.lines
                ],
                # The saga plans against a snapshot; PARTIAL takes what is really there.
                policy=inv.RESERVATION_POLICY_PARTIAL,
                idempotency_key=command.idempotency_key,
            )
        )
        if not response.HasField("reservation"):
            return m.ReservationMade(command.idempotency_key, None, ())
        held = tuple(
            HeldLine(x.order_line_number, x.sku, int(x.quantity))
            for x in response.reservation.lines
        )
        return m.ReservationMade(command.idempotency_key, response.reservation.reservation_id, held)

    async def release(self, command: m.ReleaseReservation) -> None:
        await self._stub.ReleaseReservation(
            inv_svc.ReleaseReservationRequest(
                reservation_id=command.reservation_id, reason=command.reason[:200]
            )
        )

    async def release_part(
        self, reservation_id: str, lines: tuple[HeldLine, ...], reason: str, key: str
    ) -> None:
        """Give back part of a reservation (a partial cancel); the same key releases once.

        FAILED_PRECONDITION (the warehouse picked it meanwhile) becomes OrderNotCancellable.
        """
        try:
            await self._stub.ReleaseReservation(
                inv_svc.ReleaseReservationRequest(
                    reservation_id=reservation_id,
                    reason=reason[:200],
                    lines=[
                        inv_svc.ReserveLine(
                            order_line_number=h.line_number, sku=h.sku, quantity=h.quantity
                        )
                        for h in lines
                    ],
                    idempotency_key=key,
                )
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in (
                grpc.StatusCode.FAILED_PRECONDITION,
                grpc.StatusCode.INVALID_ARGUMENT,
            ):
                numbers = ", ".join(str(h.line_number) for h in lines)
                raise OrderNotCancellable(
                    f"line {numbers}: the warehouse has picked these units meanwhile; "
                    f"cancel the whole order or create a return ({error.details()})",
                    metadata={"reservation_id": reservation_id},
                ) from error
            raise _inventory_unavailable(error) from error

    async def restock(self, command: m.RestockPicked) -> None:
        await self._stub.ReceiveStock(
            inv_svc.ReceiveStockRequest(
                location_id=command.location_id,
                source=inv.RECEIPT_SOURCE_RETURN,
                source_reference=command.order_id,
                lines=[
                    inv_svc.ReceiptLineInput(sku=h.sku, quantity=h.quantity) for h in command.lines
                ],
                idempotency_key=command.idempotency_key,
            )
        )


class ShipmentClient:
    """The shipment calls order makes: cancelling an order's shipments, retrying a label."""

    def __init__(self, stub: shp_grpc.ShipmentServiceAsyncStub) -> None:
        self._stub = stub

    async def cancel_order_shipments(self, order_id: str, partner_id: str, reason: str) -> None:
        """Have shipment cancel the order's shipments (all or none) before the order commits.

        Its FAILED_PRECONDITION (a shipment is picked up or later) becomes OrderNotCancellable,
        naming the shipment and its state.
        """
        try:
            await self._stub.CancelOrderShipments(
                shp_svc.CancelOrderShipmentsRequest(
                    order_id=order_id, partner_id=partner_id, reason=reason[:500]
                )
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
                raise OrderNotCancellable(
                    f"order {order_id} can no longer be cancelled: {error.details()}",
                    violations=[
                        PreconditionViolation("SHIPMENT_STATUS", order_id, error.details() or "")
                    ],
                    metadata={"order_id": order_id},
                ) from error
            raise Unavailable(
                f"shipment could not answer ({error.code().name}); retry the request",
                reason="SHIPMENT_UNAVAILABLE",
            ) from error

    async def retry_label(self, shipment_id: str) -> None:
        await self._stub.RetryLabel(shp_svc.RetryLabelRequest(shipment_id=shipment_id))


def _snapshot(answer: inv_svc.GetAvailabilityResponse) -> AvailabilitySnapshot:
    return {
        a.sku: {p.location_id: int(p.quantity_available) for p in a.positions}
        for a in answer.availability
    }


def _inventory_unavailable(error: grpc.aio.AioRpcError) -> Unavailable:
    return Unavailable(
        f"inventory could not answer ({error.code().name}); retry the request",
        reason="INVENTORY_UNAVAILABLE",
    )
