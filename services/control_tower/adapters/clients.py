"""The control tower's gRPC clients: the owners' RPCs an operator's action goes through, and
the consuming services' DeadLetterService (the kit's) for redrives.

The tower never writes another service's state: a retry or a mapping is the owner's own RPC,
called with the channel's deadline. Each answers a one-line result for the audit trail, or
raises OwnerRefused with the owner's status code and message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import grpc
from crossdock.carrier.v1 import carrier_service_pb2 as carrier_svc
from crossdock.carrier.v1 import carrier_service_pb2_grpc as carrier_grpc
from crossdock.carrier.v1 import tracking_pb2
from crossdock.common.v1 import dead_letters_pb2 as dlq_pb2
from crossdock.common.v1 import dead_letters_pb2_grpc as dlq_grpc
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as order_svc
from crossdock.order.v1 import order_service_pb2_grpc as order_grpc
from crossdock.shipment.v1 import shipment_service_pb2 as shipment_svc
from crossdock.shipment.v1 import shipment_service_pb2_grpc as shipment_grpc
from crossdock.shipment.v1.shipment_pb2 import ShipmentStatus

from services.kit.client import is_transient


class OwnerRefused(Exception):
    """The owner's RPC failed, or answered that it could not do it: `code` is its status code's
    name (or its outcome's), `transient` whether calling again later may help."""

    def __init__(self, call: str, code: str, details: str, *, transient: bool = False) -> None:
        self.call = call
        self.code = code
        self.details = details
        self.transient = transient
        super().__init__(f"{code}: {details}")

    @classmethod
    def of(cls, call: str, error: grpc.aio.AioRpcError) -> OwnerRefused:
        return cls(call, error.code().name, error.details() or "", transient=is_transient(error))


@dataclass(frozen=True)
class CodeMapping:
    """MapCarrierCode's question."""

    carrier: str
    code: str
    status: int
    note: str
    operator: str


class OwnerClients:
    """shipment, carrier-adapter and order, as the workbench's actions call them."""

    def __init__(
        self,
        shipment: shipment_grpc.ShipmentServiceAsyncStub,
        carrier_adapter: carrier_grpc.CarrierAdapterServiceAsyncStub,
        order: order_grpc.OrderServiceAsyncStub | None = None,
    ) -> None:
        self._shipment = shipment
        self._carrier = carrier_adapter
        self._order = order

    async def retry(self, call: str, subject_id: str) -> str:
        """shipment.RetryLabel or shipment.RetryLabelVoid on one shipment, or
        order.RetryOrderStep on one order."""
        if call == "order.RetryOrderStep":
            return await self._retry_order(call, subject_id)
        shipment_id = subject_id
        answer: shipment_svc.RetryLabelResponse | shipment_svc.RetryLabelVoidResponse
        try:
            if call == "shipment.RetryLabel":
                answer = await self._shipment.RetryLabel(
                    shipment_svc.RetryLabelRequest(shipment_id=shipment_id)
                )
            elif call == "shipment.RetryLabelVoid":
                answer = await self._shipment.RetryLabelVoid(
                    shipment_svc.RetryLabelVoidRequest(shipment_id=shipment_id)
                )
            else:
                raise ValueError(f"no owner call {call!r}")
        except grpc.aio.AioRpcError as error:
            raise OwnerRefused.of(call, error) from error
        status = ShipmentStatus.Name(answer.shipment.status)
        return f"shipment {shipment_id} is {status}"

    async def _retry_order(self, call: str, order_id: str) -> str:
        """The order's failed step again; it leaves EXCEPTION (its exception_cleared follows)."""
        if self._order is None:
            raise OwnerRefused(call, "UNIMPLEMENTED", "the tower has no target for order")
        try:
            answer = await self._order.RetryOrderStep(
                order_svc.RetryOrderStepRequest(order_id=order_id)
            )
        except grpc.aio.AioRpcError as error:
            raise OwnerRefused.of(call, error) from error
        order = answer.order
        status = order_pb2.OrderStatus.Name(order.status)
        step = order_pb2.FulfillmentStep.Name(order.fulfillment_step)
        return f"order {order_id} is {status} ({step})"

    async def map_code(self, mapping: CodeMapping) -> str:
        """carrier-adapter.MapCarrierCode: a new version of the code's mapping."""
        call = "carrier-adapter.MapCarrierCode"
        try:
            answer = await self._carrier.MapCarrierCode(
                carrier_svc.MapCarrierCodeRequest(
                    carrier=mapping.carrier,
                    carrier_status_code=mapping.code,
                    status=mapping.status,  # type: ignore[arg-type]
                    note=mapping.note,
                    operator=mapping.operator,
                )
            )
        except grpc.aio.AioRpcError as error:
            raise OwnerRefused.of(call, error) from error
        status = tracking_pb2.TrackingStatus.Name(answer.mapping.status)
        made = "mapped" if answer.created else "already mapped"
        return (
            f"{mapping.carrier}:{mapping.code} {made} to {status} "
            f"(version {answer.mapping.version}, {answer.renormalized_scans} scans renormalized)"
        )


class DeadLetterClients:
    """Each consuming service's DeadLetterService (the kit's), by service name."""

    def __init__(self, stubs: Mapping[str, dlq_grpc.DeadLetterServiceAsyncStub]) -> None:
        self._stubs = dict(stubs)

    @staticmethod
    def call_of(service: str) -> str:
        return f"{service}.RedriveDeadLetter"

    async def redrive(
        self, service: str, durable: str, sequence: int, operator: str, reason: str
    ) -> str:
        """Redrive one letter in place through its consumer; the outcome for the audit trail.
        OwnerRefused when the service cannot (unknown to the tower, an RPC error, or the event
        failed again)."""
        call = self.call_of(service)
        stub = self._stubs.get(service)
        if stub is None:
            raise OwnerRefused(
                call, "UNIMPLEMENTED", f"the tower has no target for {service or durable!r}"
            )
        try:
            answer = await stub.RedriveDeadLetter(
                dlq_pb2.RedriveDeadLetterRequest(
                    sequence=sequence, consumer=durable, operator=operator, reason=reason
                )
            )
        except grpc.aio.AioRpcError as error:
            raise OwnerRefused.of(call, error) from error
        outcome = dlq_pb2.RedriveOutcome.Name(answer.outcome).removeprefix("REDRIVE_OUTCOME_")
        if answer.outcome == dlq_pb2.REDRIVE_OUTCOME_FAILED_AGAIN:
            what = f"{answer.subject} {answer.event_id}: {answer.reason}"
            raise OwnerRefused(call, outcome, what)
        return f"{outcome}: {answer.subject} {answer.event_id}" + (
            f" ({answer.reason})" if answer.reason else ""
        )
