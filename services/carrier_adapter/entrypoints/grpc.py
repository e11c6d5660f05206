"""CarrierAdapterService over gRPC: request translation only (proto → app → proto).

protovalidate (kit interceptor) has checked every request's shape; domain and carrier errors
propagate unchanged and the kit maps them to status codes (a bad webhook signature is
UNAUTHENTICATED, a carrier outage UNAVAILABLE). Quotes, labels and scans live in the store.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from crossdock.carrier.v1 import carrier_service_pb2 as svc
from crossdock.carrier.v1 import carrier_service_pb2_grpc as svc_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from services.carrier_adapter.adapters import contracts as pm
from services.carrier_adapter.adapters.carriers.connectors import ConnectorRegistry
from services.carrier_adapter.adapters.reliability.clock import Clock
from services.carrier_adapter.adapters.store.labels import LabelStatus, StoredLabel
from services.carrier_adapter.adapters.store.quotes import StoredQuote
from services.carrier_adapter.app.booking import LabelBooker, Shopping, cancel_label
from services.carrier_adapter.app.code_mapping import CodeMappings
from services.carrier_adapter.app.polling import poll_now
from services.carrier_adapter.app.push_batch import PushOutcome, ingest_pushes
from services.carrier_adapter.app.rating import get_rates
from services.carrier_adapter.app.resolution import LabelFilter, list_labels, resolve_label
from services.carrier_adapter.app.tracking import IngestResult, TrackingIngest, track
from services.carrier_adapter.config import SERVICE
from services.carrier_adapter.domain.code_mapping import MapCode
from services.carrier_adapter.domain.model import LabelRequest, RateRequest
from services.kit.errors import DomainError
from services.kit.grpc_errors import status_of_failure
from services.kit.paging import page_size
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
        code_mappings: CodeMappings,
        quote_ttl: timedelta = timedelta(hours=24),
    ) -> None:
        self._units = units
        self._code_mappings = code_mappings
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
        if request.HasField("shop"):
            return await self._shop_and_book(request)

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

    async def _shop_and_book(self, request: svc.BookLabelRequest) -> svc.BookLabelResponse:
        """BookLabel with `shop`: the quote is chosen here (the addresses and parcels are read
        once, for both the quotes and the label)."""
        # The service code is the chosen quote's, set by `build`.
        unpriced = pm.label_request_from_proto(request, service_code="")
        shopping = Shopping(
            RateRequest(unpriced.ship_from, unpriced.ship_to, unpriced.parcels),
            pm.service_level_from_proto(request.shop.service_level),
            tuple(request.shop.carrier_preference),
            self._quote_ttl,
        )

        def build(quote: StoredQuote) -> LabelRequest:
            return replace(unpriced, service_code=quote.quote.service_code)

        stored, replayed, quote = await self._booker.shop_and_book(
            request.idempotency_key,
            shopping,
            unpriced.label_format,
            request.is_return,
            build,
            request.SerializeToString(deterministic=True),
        )
        assert stored.label is not None
        return svc.BookLabelResponse(
            label=pm.label_to_proto(stored.label, stored.label_id, stored.cancelled),
            replayed=replayed,
            rate=None if quote is None else pm.rate_to_proto(quote.quote, quote.rate_id),
        )

    async def ListLabels(self, request: svc.ListLabelsRequest, context: Context) -> Any:
        where = LabelFilter(
            status=_STATUS_FROM_PROTO.get(request.status),
            created_after=_instant(request, "created_after"),
            created_before=_instant(request, "created_before"),
            include_cancelled=request.include_cancelled,
        )
        page, token = await list_labels(
            self._units.db, where, request.page_token, page_size(request.page_size)
        )
        return svc.ListLabelsResponse(
            labels=[_label_summary(stored, record) for stored, record in page],
            next_page_token=token,
        )

    async def ResolveLabel(self, request: svc.ResolveLabelRequest, context: Context) -> Any:
        resolution = await resolve_label(
            self._units.db,
            self._registry,
            self._clock,
            label_id=request.label_id,
            idempotency_key=request.idempotency_key,
        )
        stored = resolution.stored
        if stored is None or stored.label is None:
            return svc.ResolveLabelResponse(booked=False)
        return svc.ResolveLabelResponse(
            booked=True, label=pm.label_to_proto(stored.label, stored.label_id, stored.cancelled)
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

    async def PollTracking(self, request: svc.PollTrackingRequest, context: Context) -> Any:
        result = await poll_now(
            self._units, self._registry, self._clock, request.carrier, request.tracking_number
        )
        return svc.PollTrackingResponse(
            new_scans=result.accepted, duplicate_scans=result.duplicates
        )

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
        response = svc.IngestWebhooksResponse()
        for outcome, item in zip(outcomes, request.pushes, strict=True):
            _set_push_result(response.results.add(), outcome, item.correlation_id)
        return response

    async def MapCarrierCode(self, request: svc.MapCarrierCodeRequest, context: Context) -> Any:
        outcome = await self._code_mappings.map_code(
            MapCode(
                carrier=request.carrier,
                carrier_status_code=request.carrier_status_code,
                status=pm.status_from_proto(request.status),
                operator=request.operator,
                note=request.note,
            )
        )
        return svc.MapCarrierCodeResponse(
            mapping=pm.code_mapping_to_proto(outcome.mapping),
            created=outcome.created,
            renormalized_scans=outcome.renormalized_scans,
        )

    async def ListCodeMappings(self, request: svc.ListCodeMappingsRequest, context: Context) -> Any:
        mappings, token = await self._code_mappings.list_mappings(
            request.carrier, request.page_token, page_size(request.page_size)
        )
        return svc.ListCodeMappingsResponse(
            mappings=[pm.code_mapping_to_proto(mapping) for mapping in mappings],
            next_page_token=token,
        )


_STATUS_TO_PROTO = {
    LabelStatus.BOOKED: svc.LABEL_STATUS_BOOKED,
    LabelStatus.UNKNOWN: svc.LABEL_STATUS_UNKNOWN,
    LabelStatus.BOOKING: svc.LABEL_STATUS_BOOKING,
}
_STATUS_FROM_PROTO = {value: status for status, value in _STATUS_TO_PROTO.items()}


def _instant(request: svc.ListLabelsRequest, name: str) -> datetime | None:
    if not request.HasField(name):  # type: ignore[arg-type]
        return None
    stamp: Timestamp = getattr(request, name)
    return stamp.ToDatetime(tzinfo=UTC)


def _label_summary(stored: StoredLabel, record: bytes) -> svc.LabelSummary:
    """One listed label; its reference is the one its BookLabel asked to print."""
    summary = svc.LabelSummary(
        label_id=stored.label_id,
        idempotency_key=stored.idempotency_key,
        status=_STATUS_TO_PROTO[stored.status],
        carrier=stored.carrier,
        carrier_account_id=stored.carrier_account_id,
        reference=svc.BookLabelRequest.FromString(record).reference,
        cancelled=stored.cancelled,
    )
    if stored.created_at is not None:
        summary.create_time.FromDatetime(stored.created_at)
    if stored.label is not None:
        summary.tracking_number = stored.label.tracking_number
        summary.is_return = stored.label.is_return
        summary.book_time.FromDatetime(stored.label.created_at)
    return summary


def _set_push_result(
    result: svc.IngestWebhookResult, outcome: PushOutcome, correlation_id: str
) -> None:
    """One push's result, filled in place (building it and copying it into the response cost
    twice as much): its response, or the status IngestWebhook would have failed with."""
    if isinstance(outcome, IngestResult):
        ingested = result.ingested
        ingested.SetInParent()  # present even when both counts are 0
        ingested.accepted_events = outcome.accepted
        ingested.duplicate_events = outcome.duplicates
        return
    if not isinstance(outcome, DomainError):
        log.error("a batched push failed unexpectedly", exc_info=outcome)
    result.error.CopyFrom(
        status_of_failure(outcome, domain=ERROR_DOMAIN, correlation_id=correlation_id)
    )


def add_to_server(server: ServiceServer, api: CarrierAdapterApi) -> None:
    server.add_servicer(
        svc_grpc.add_CarrierAdapterServiceServicer_to_server,
        api,
        svc.DESCRIPTOR.services_by_name["CarrierAdapterService"],
    )
