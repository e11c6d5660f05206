"""shipment's gRPC clients: inventory (item master, warehouse addresses) and carrier-adapter
(labels), answering in domain values.

A failed carrier call is raised as CarrierCallFailed, which says whether calling again later
may help (the kit's TRANSIENT_CODES), whether the carrier refused the booking's premise, and
whether no carrier rate met the service level.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import replace

import grpc
from crossdock.carrier.v1 import carrier_pb2
from crossdock.carrier.v1 import carrier_service_pb2 as carrier_svc
from crossdock.carrier.v1 import carrier_service_pb2_grpc as carrier_grpc
from crossdock.common.v1 import common_pb2
from crossdock.inventory.v1 import inventory_service_pb2 as inv_svc
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from google.rpc import error_details_pb2

from services.kit.client import is_transient
from services.kit.grpc_errors import details_of, status_from_error
from services.kit.proto_values import address_to_domain, address_to_proto
from services.kit.values import Address
from services.shipment.adapters.contracts import (
    item_spec,
    label_of,
    parcels_of,
    rate_to_domain,
)
from services.shipment.domain.packing import ItemSpec
from services.shipment.domain.shipment import Label, Rate, Shipment


class InventoryClient:
    """Item specs and location addresses; both change rarely, so they are cached per process."""

    def __init__(self, stub: inv_grpc.InventoryServiceAsyncStub) -> None:
        self._stub = stub
        self._items: dict[str, ItemSpec] = {}
        self._addresses: dict[str, Address] = {}

    async def item_specs(self, skus: Iterable[str]) -> dict[str, ItemSpec]:
        wanted = set(skus)
        missing = [sku for sku in wanted if sku not in self._items]
        answers = await asyncio.gather(
            *(self._stub.GetItem(inv_svc.GetItemRequest(sku=sku)) for sku in missing)
        )
        for answer in answers:
            self._items[answer.item.sku] = item_spec(answer.item)
        return {sku: self._items[sku] for sku in wanted}

    async def address(self, location_id: str) -> Address:
        if location_id not in self._addresses:
            answer = await self._stub.GetLocation(
                inv_svc.GetLocationRequest(location_id=location_id)
            )
            self._addresses[location_id] = address_to_domain(answer.location.address)
        return self._addresses[location_id]


# carrier-adapter's ErrorInfo reason when a shop-and-book found no quote that meets the level.
NO_RATE_MEETS_SERVICE_LEVEL = "NO_RATE_MEETS_SERVICE_LEVEL"
# carrier-adapter's ErrorInfo reason when a carrier that does not dedupe by our key may have
# booked the label before failing.
LABEL_OUTCOME_UNKNOWN = "LABEL_OUTCOME_UNKNOWN"


class CarrierCallFailed(Exception):
    """A label call failed; `reason` is `<STATUS_CODE>: <details>`."""

    def __init__(self, error: grpc.aio.AioRpcError) -> None:
        self.reason = f"{error.code().name}: {error.details()}"
        self.transient = is_transient(error)
        self.failed_precondition = error.code() == grpc.StatusCode.FAILED_PRECONDITION
        # No quote met the level: final, unlike the other refusals (e.g. an expired quote).
        reason = _error_reason(error) if self.failed_precondition else ""
        self.no_rate = reason == NO_RATE_MEETS_SERVICE_LEVEL
        # The carrier may have booked before failing and cannot be asked again safely: final,
        # and no attempt may follow (it would book twice, or be refused the same way).
        self.outcome_unknown = reason == LABEL_OUTCOME_UNKNOWN
        super().__init__(self.reason)


def _error_reason(error: grpc.aio.AioRpcError) -> str:
    """The ErrorInfo reason of a failed call's rich status, "" when it has none."""
    status = status_from_error(error)
    infos = [] if status is None else details_of(status, error_details_pb2.ErrorInfo)
    return infos[0].reason if infos else ""


class CarrierClient:
    def __init__(self, stub: carrier_grpc.CarrierAdapterServiceAsyncStub) -> None:
        self._stub = stub

    async def book_label(self, shipment: Shipment, rate: Rate, *, timeout: float) -> Label:
        """Book `rate` (a quote from GetRates) under the shipment id as idempotency key: a call
        made again after a timeout gets the label the first one booked. A return parcel books a
        return label (customer → warehouse) with its return id printed as the reference."""
        return await self._book(self._label_request(shipment, rate_id=rate.rate_id), timeout)

    async def shop_and_book_label(
        self, shipment: Shipment, carrier_preference: Sequence[str], *, timeout: float
    ) -> Label:
        """Book the cheapest quote that meets the shipment's service level, chosen by
        carrier-adapter (`carrier_preference` breaks ties), under the shipment id as idempotency
        key, exactly like `book_label`; the label carries the quote it was booked at. A key
        that booked before gets its first label (and quote) back, whatever the quotes are now."""
        shop = carrier_svc.RateShopping(
            service_level=int(shipment.service_level),  # type: ignore[arg-type]
            carrier_preference=carrier_preference,
        )
        return await self._book(self._label_request(shipment, shop=shop), timeout)

    def _label_request(
        self,
        shipment: Shipment,
        *,
        rate_id: str = "",
        shop: carrier_svc.RateShopping | None = None,
    ) -> carrier_svc.BookLabelRequest:
        """The booking of `shipment` at `rate_id`, or at the quote `shop` chooses."""
        return carrier_svc.BookLabelRequest(
            idempotency_key=shipment.shipment_id,
            rate_id=rate_id,
            shop=shop,
            ship_from=_address(shipment.ship_from),
            ship_to=_address(shipment.ship_to),
            parcels=parcels_of(shipment),
            label_format=carrier_pb2.LABEL_FORMAT_PDF,
            reference=(shipment.return_id or shipment.order_id)[:64],
            is_return=shipment.is_return,
        )

    async def _book(self, request: carrier_svc.BookLabelRequest, timeout: float) -> Label:
        try:
            answer = await self._stub.BookLabel(request, timeout=timeout)
        except grpc.aio.AioRpcError as error:
            raise CarrierCallFailed(error) from error
        label = label_of(answer.label)
        if answer.HasField("rate"):
            label = replace(label, rate=rate_to_domain(answer.rate))
        return label

    async def cancel_label(self, label_id: str, *, timeout: float) -> None:
        """Void a label; voiding one already voided succeeds again (carrier-adapter voids once)."""
        try:
            await self._stub.CancelLabel(
                carrier_svc.CancelLabelRequest(label_id=label_id), timeout=timeout
            )
        except grpc.aio.AioRpcError as error:
            raise CarrierCallFailed(error) from error


def _address(address: Address | None) -> common_pb2.Address | None:
    return None if address is None else address_to_proto(address)
