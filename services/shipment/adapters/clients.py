"""shipment's gRPC clients: inventory (item master, warehouse addresses) and carrier-adapter
(rates and labels), answering in domain values.

A failed carrier call is raised as CarrierCallFailed, which says whether calling again later
may help (the kit's TRANSIENT_CODES) and whether the carrier refused the booking's premise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

import grpc
from crossdock.carrier.v1 import carrier_pb2
from crossdock.carrier.v1 import carrier_service_pb2 as carrier_svc
from crossdock.carrier.v1 import carrier_service_pb2_grpc as carrier_grpc
from crossdock.common.v1 import common_pb2
from crossdock.inventory.v1 import inventory_service_pb2 as inv_svc
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inv_grpc

from services.kit.client import is_transient
from services.kit.proto_values import address_to_domain, address_to_proto
from services.kit.values import Address
from services.shipment.adapters.contracts import (
    item_spec,
    label_of,
    parcels_of,
    quote_of,
    rate_to_domain,
)
from services.shipment.domain.packing import ItemSpec
from services.shipment.domain.rating import Quote
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


class CarrierCallFailed(Exception):
    """A rate or label call failed; `reason` is `<STATUS_CODE>: <details>`."""

    def __init__(self, error: grpc.aio.AioRpcError) -> None:
        self.reason = f"{error.code().name}: {error.details()}"
        self.transient = is_transient(error)
        self.failed_precondition = error.code() == grpc.StatusCode.FAILED_PRECONDITION
        super().__init__(self.reason)


@dataclass(frozen=True)
class CarrierError:
    carrier: str
    message: str
    retryable: bool


@dataclass(frozen=True)
class RateShop:
    """The quotes carrier-adapter found, by rate id, and the carriers that could not quote."""

    quotes: list[Quote]
    rates: dict[str, Rate] = field(default_factory=dict)
    carrier_errors: list[CarrierError] = field(default_factory=list)


class CarrierClient:
    def __init__(self, stub: carrier_grpc.CarrierAdapterServiceAsyncStub) -> None:
        self._stub = stub

    async def rates(self, shipment: Shipment, *, timeout: float) -> RateShop:
        try:
            answer = await self._stub.GetRates(
                carrier_svc.GetRatesRequest(
                    ship_from=_address(shipment.ship_from),
                    ship_to=_address(shipment.ship_to),
                    parcels=parcels_of(shipment),
                    is_return=shipment.is_return,
                ),
                timeout=timeout,
            )
        except grpc.aio.AioRpcError as error:
            raise CarrierCallFailed(error) from error
        return RateShop(
            quotes=[quote_of(rate) for rate in answer.rates],
            rates={rate.rate_id: rate_to_domain(rate) for rate in answer.rates},
            carrier_errors=[
                CarrierError(e.carrier, e.message, e.retryable) for e in answer.carrier_errors
            ],
        )

    async def book_label(self, shipment: Shipment, rate: Rate, *, timeout: float) -> Label:
        """Book under the shipment id as idempotency key: a call made again after a timeout
        gets the label the first one booked. A return parcel books a return label (customer →
        warehouse) with its return id printed as the reference."""
        try:
            answer = await self._stub.BookLabel(
                carrier_svc.BookLabelRequest(
                    idempotency_key=shipment.shipment_id,
                    rate_id=rate.rate_id,
                    ship_from=_address(shipment.ship_from),
                    ship_to=_address(shipment.ship_to),
                    parcels=parcels_of(shipment),
                    label_format=carrier_pb2.LABEL_FORMAT_PDF,
                    reference=(shipment.return_id or shipment.order_id)[:64],
                    is_return=shipment.is_return,
                ),
                timeout=timeout,
            )
        except grpc.aio.AioRpcError as error:
            raise CarrierCallFailed(error) from error
        return label_of(answer.label)

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
