"""CarrierAdapterService over gRPC: thin translation between proto and the connectors.

protovalidate (kit interceptor) has checked every request's shape; domain and carrier errors
propagate unchanged and the kit maps them to status codes (a bad webhook signature is
UNAUTHENTICATED, a carrier outage UNAVAILABLE). Quotes, labels and scans live in the store.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from crossdock.carrier.v1 import carrier_service_pb2 as svc
from crossdock.carrier.v1 import carrier_service_pb2_grpc as svc_grpc

from services.carrier_adapter.api import proto_mapping as pm
from services.carrier_adapter.api.booking import LabelBooker
from services.carrier_adapter.api.tracking import TrackingIngest
from services.carrier_adapter.connector import CarrierConnector
from services.carrier_adapter.domain.errors import is_retryable
from services.carrier_adapter.domain.model import CancelRequest, LabelRequest, RateQuote
from services.carrier_adapter.registry import ConnectorRegistry
from services.carrier_adapter.reliability.clock import Clock
from services.carrier_adapter.store import labels as label_store
from services.carrier_adapter.store.ids import new_rate_id
from services.carrier_adapter.store.quotes import StoredQuote, save_quotes
from services.kit.db import Database
from services.kit.errors import DomainError, FailedPrecondition, NotFound
from services.kit.server import ServiceServer

__all__ = ["CarrierAdapterApi", "add_to_server"]

log = logging.getLogger(__name__)

Context = Any  # grpc.aio.ServicerContext; the kit's interceptor owns status handling


class CarrierAdapterApi(svc_grpc.CarrierAdapterServiceServicer):
    def __init__(
        self,
        db: Database,
        registry: ConnectorRegistry,
        booker: LabelBooker,
        ingest: TrackingIngest,
        clock: Clock,
        quote_ttl: timedelta = timedelta(hours=24),
    ) -> None:
        self._db = db
        self._registry = registry
        self._booker = booker
        self._ingest = ingest
        self._clock = clock
        self._quote_ttl = quote_ttl

    async def GetRates(self, request: svc.GetRatesRequest, context: Context) -> Any:
        wanted = set(request.carriers)
        connectors = [c for c in self._registry if not wanted or c.carrier in wanted]
        rate_request = pm.rate_request_from_proto(request)
        # Concurrently: the answer takes as long as the slowest carrier, not their sum.
        answers = await asyncio.gather(
            *(c.rate(rate_request) for c in connectors), return_exceptions=True
        )
        quotes: list[RateQuote] = []
        errors = [
            svc.CarrierError(carrier=name, message="no account is configured for this carrier")
            for name in sorted(wanted - {c.carrier for c in connectors})
        ]
        for connector, answer in zip(connectors, answers, strict=True):
            if isinstance(answer, BaseException):
                errors.append(_carrier_error(connector, answer))
            else:
                quotes.extend(answer)
        quotes.sort(key=lambda q: (q.total_charge.amount, q.carrier, q.service_code))
        quoted = [(new_rate_id(), quote) for quote in quotes]
        now = self._clock.now()
        await self._db.run(save_quotes, quoted, now, now + self._quote_ttl)
        return svc.GetRatesResponse(
            rates=[pm.rate_to_proto(quote, rate_id) for rate_id, quote in quoted],
            carrier_errors=errors,
        )

    async def BookLabel(self, request: svc.BookLabelRequest, context: Context) -> Any:
        def build(quote: StoredQuote) -> LabelRequest:
            return pm.label_request_from_proto(request, quote.quote.service_code)

        stored, replayed = await self._booker.book(
            request.idempotency_key,
            request.rate_id,
            pm.label_request_from_proto(request, "").label_format,
            build,
            request.SerializeToString(deterministic=True),
        )
        assert stored.label is not None
        return svc.BookLabelResponse(
            label=pm.label_to_proto(stored.label, stored.label_id, stored.cancelled),
            replayed=replayed,
        )

    async def CancelLabel(self, request: svc.CancelLabelRequest, context: Context) -> Any:
        stored = await self._db.run(label_store.get_label, request.label_id)
        if stored is None or stored.label is None:
            raise NotFound(
                f"label {request.label_id} does not exist",
                resource_type="label",
                resource_name=request.label_id,
            )
        label = stored.label
        if not stored.cancelled:
            connector = self._registry.get(stored.carrier_account_id)
            await connector.cancel_label(
                CancelRequest(label.tracking_number, label.service_code, label.carrier_shipment_id)
            )
            await self._db.run(label_store.mark_cancelled, stored.label_id, self._clock.now())
        return svc.CancelLabelResponse(label=pm.label_to_proto(label, stored.label_id, True))

    async def Track(self, request: svc.TrackRequest, context: Context) -> Any:
        connector = await self._tracking_connector(request.carrier, request.tracking_number)
        result = await connector.track(request.tracking_number)
        return svc.TrackResponse(events=[pm.scan_to_proto(scan) for scan in result.scans])

    async def IngestWebhook(self, request: svc.IngestWebhookRequest, context: Context) -> Any:
        result = await self._ingest.ingest(request.carrier, pm.webhook_from_proto(request))
        return svc.IngestWebhookResponse(
            accepted_events=result.accepted, duplicate_events=result.duplicates
        )

    async def _tracking_connector(self, carrier: str, tracking_number: str) -> CarrierConnector:
        # The account that booked the label tracks it; a number booked elsewhere goes to the
        # carrier's first account.
        stored = await self._db.run(label_store.get_label_by_tracking, tracking_number)
        if stored is not None and stored.carrier == carrier:
            try:
                return self._registry.get(stored.carrier_account_id)
            except KeyError:
                pass
        accounts = self._registry.for_carrier(carrier)
        if not accounts:
            raise FailedPrecondition(
                f"no {carrier} account is configured", reason="CARRIER_NOT_CONFIGURED"
            )
        return accounts[0]


def _carrier_error(connector: CarrierConnector, error: BaseException) -> svc.CarrierError:
    if isinstance(error, DomainError):
        message = error.message
    else:
        # Our bug, not the carrier's answer: keep internals out of the response.
        log.error("rating with %s failed", connector.account_id, exc_info=error)
        message = "internal error while rating"
    return svc.CarrierError(
        carrier=connector.carrier, message=message, retryable=is_retryable(error)
    )


def add_to_server(server: ServiceServer, api: CarrierAdapterApi) -> None:
    server.add_servicer(
        svc_grpc.add_CarrierAdapterServiceServicer_to_server,
        api,
        svc.DESCRIPTOR.services_by_name["CarrierAdapterService"],
    )
