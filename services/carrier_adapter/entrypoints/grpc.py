"""CarrierAdapterService over gRPC: request translation only (proto → app → proto).

protovalidate (kit interceptor) has checked every request's shape; domain and carrier errors
propagate unchanged and the kit maps them to status codes (a bad webhook signature is
UNAUTHENTICATED, a carrier outage UNAVAILABLE). Quotes, labels and scans live in the store.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from crossdock.carrier.v1 import carrier_service_pb2 as svc
from crossdock.carrier.v1 import carrier_service_pb2_grpc as svc_grpc

from services.carrier_adapter.adapters import contracts as pm
from services.carrier_adapter.adapters.carriers.connectors import ConnectorRegistry
from services.carrier_adapter.adapters.reliability.clock import Clock
from services.carrier_adapter.adapters.store.quotes import StoredQuote
from services.carrier_adapter.app.booking import LabelBooker, cancel_label
from services.carrier_adapter.app.push_batch import PushOutcome, ingest_pushes
from services.carrier_adapter.app.rating import get_rates
from services.carrier_adapter.app.tracking import IngestResult, TrackingIngest, track
from services.carrier_adapter.config import SERVICE
from services.carrier_adapter.domain.model import LabelRequest
from services.kit.errors import DomainError
from services.kit.grpc_errors import status_of_failure
from services.kit.server import ServiceServer
from services.kit.uow import UnitsOfWork

__all__ = ["CarrierAdapterApi", "add_to_server"]

Context = Any  # grpc.aio.ServicerContext; the kit's interceptor owns status handling
# The ErrorInfo domain of a batched push's own error, as the kit's interceptor names it.
ERROR_DOMAIN = f"{SERVICE}.crossdock"
log = logging.getLogger(__name__)


class CarrierAdapterApi(svc_grpc.CarrierAdapterServiceServicer):
    def __init__(
        self,
        units: UnitsOfWork,
        registry: ConnectorRegistry,
        booker: LabelBooker,
        ingest: TrackingIngest,
        clock: Clock,
        quote_ttl: timedelta = timedelta(hours=24),
    ) -> None:
        self._units = units
        self._registry = registry
        self._booker = booker
        self._ingest = ingest
        self._clock = clock
        self._quote_ttl = quote_ttl

    async def GetRates(self, request: svc.GetRatesRequest, context: Context) -> Any:
        rates = await get_rates(
            self._units,
            self._registry,
            self._clock,
            pm.rate_request_from_proto(request),
            list(request.carriers),
            self._quote_ttl,
            is_return=request.is_return,
        )
        return svc.GetRatesResponse(
            rates=[pm.rate_to_proto(quote, rate_id) for rate_id, quote in rates.quoted],
            carrier_errors=[
                svc.CarrierError(
                    carrier=failure.carrier, message=failure.message, retryable=failure.retryable
                )
                for failure in rates.failures
            ],
        )

    async def BookLabel(self, request: svc.BookLabelRequest, context: Context) -> Any:
        def build(quote: StoredQuote) -> LabelRequest:
            return pm.label_request_from_proto(request, quote.quote.service_code)

        stored, replayed = await self._booker.book(
            request.idempotency_key,
            request.rate_id,
            pm.label_format_from_proto(request.label_format),
            request.is_return,
            build,
            request.SerializeToString(deterministic=True),
        )
        assert stored.label is not None
        return svc.BookLabelResponse(
            label=pm.label_to_proto(stored.label, stored.label_id, stored.cancelled),
            replayed=replayed,
        )

    async def CancelLabel(self, request: svc.CancelLabelRequest, context: Context) -> Any:
        stored = await cancel_label(self._units.db, self._registry, self._clock, request.label_id)
        assert stored.label is not None
        return svc.CancelLabelResponse(label=pm.label_to_proto(stored.label, stored.label_id, True))

    async def Track(self, request: svc.TrackRequest, context: Context) -> Any:
        result = await track(
            self._units.db, self._registry, request.carrier, request.tracking_number
        )
        return svc.TrackResponse(events=[pm.scan_to_proto(scan) for scan in result.scans])

    async def IngestWebhook(self, request: svc.IngestWebhookRequest, context: Context) -> Any:
        result = await self._ingest.ingest(request.carrier, pm.webhook_from_proto(request))
        return svc.IngestWebhookResponse(
            accepted_events=result.accepted, duplicate_events=result.duplicates
        )

    async def IngestWebhooks(self, request: svc.IngestWebhooksRequest, context: Context) -> Any:
        pushes = [
            (item.push.carrier, pm.webhook_from_proto(item.push), item.correlation_id)
            for item in request.pushes
        ]
        outcomes = await ingest_pushes(self._units, self._registry, self._clock.now(), pushes)
        return svc.IngestWebhooksResponse(
            results=[
                _push_result(outcome, item.correlation_id)
                for outcome, item in zip(outcomes, request.pushes, strict=True)
            ]
        )


def _push_result(outcome: PushOutcome, correlation_id: str) -> svc.IngestWebhookResult:
    """One push's result: its response, or the status IngestWebhook would have failed with."""
    if isinstance(outcome, IngestResult):
        return svc.IngestWebhookResult(
            ingested=svc.IngestWebhookResponse(
                accepted_events=outcome.accepted, duplicate_events=outcome.duplicates
            )
        )
    if not isinstance(outcome, DomainError):
        log.error("a batched push failed unexpectedly", exc_info=outcome)
    return svc.IngestWebhookResult(
        error=status_of_failure(outcome, domain=ERROR_DOMAIN, correlation_id=correlation_id)
    )


def add_to_server(server: ServiceServer, api: CarrierAdapterApi) -> None:
    server.add_servicer(
        svc_grpc.add_CarrierAdapterServiceServicer_to_server,
        api,
        svc.DESCRIPTOR.services_by_name["CarrierAdapterService"],
    )
