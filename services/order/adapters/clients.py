"""Order's gRPC clients to other services: inventory (item master, availability, reservations,
restock) and shipment (label retries).

Each client speaks in domain values: requests are built from saga commands and answers come back
as saga inputs or catalog entries, so no stub message leaves this module. Errors propagate as
`grpc.aio.AioRpcError` (the caller decides what is transient, with kit `is_transient`), except the
capture-time reads, whose failure is kit `Unavailable` for the caller of CreateOrder.
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

log = logging.getLogger(__name__)

# sku -> location id -> units available to promise (domain `Availability`, as built here).
AvailabilitySnapshot = dict[str, dict[str, int]]


class InventoryClient:
    """The inventory calls order makes: capture-time reads and the saga's stock commands."""

    def __init__(self, stub: inv_grpc.InventoryServiceAsyncStub) -> None:
        self._stub = stub

    # -- capture-time reads (CreateOrder) --------------------------------------------------------

    async def catalog(self, skus: tuple[str, ...]) -> StaticCatalog:
        """The item master entries of `skus` (unknown SKUs are simply absent)."""

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

    async def current_availability(self, skus: tuple[str, ...]) -> AvailabilitySnapshot:
        """Units available per SKU per location right now (the capture-time check)."""
        try:
            return await self.availability(skus)
        except grpc.aio.AioRpcError as error:
            raise _inventory_unavailable(error) from error

    # -- saga commands ---------------------------------------------------------------------------

    async def availability(self, skus: tuple[str, ...]) -> AvailabilitySnapshot:
        answer = await self._stub.GetAvailability(inv_svc.GetAvailabilityRequest(skus=list(skus)))
        return {
            a.sku: {p.location_id: int(p.quantity_available) for p in a.positions}
            for a in answer.availability
        }

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
    """The shipment calls order makes: retrying a failed label booking."""

    def __init__(self, stub: shp_grpc.ShipmentServiceAsyncStub | None) -> None:
        # None when no SHIPMENT_TARGET is configured: retries are then skipped (logged).
        self._stub = stub

    async def retry_label(self, shipment_id: str) -> None:
        if self._stub is None:
            log.warning("no SHIPMENT_TARGET configured: RetryShipment %s skipped", shipment_id)
            return
        await self._stub.RetryLabel(shp_svc.RetryLabelRequest(shipment_id=shipment_id))


def _inventory_unavailable(error: grpc.aio.AioRpcError) -> Unavailable:
    return Unavailable(
        f"inventory could not answer ({error.code().name}); retry the request",
        reason="INVENTORY_UNAVAILABLE",
    )
