"""The shared half of every karrio-backed connector.

Each operation runs karrio's own three steps, on a worker thread because karrio blocks:
`mapper.create_*_request` (karrio's request builder) → `proxy.*` (karrio's HTTP calls, which
reach the network only through carriers.karrio_http) → `mapper.parse_*_response` (karrio's
parser). We call those steps directly rather than karrio's fluent `Shipment.create(...)` API
because the fluent API folds transport failures into text messages, and we need them typed to
decide about retries. A fresh karrio Gateway per call gives a per-call Tracer, whose records
become the raw payload log; the token cache is shared per account so OAuth tokens are reused.

A carrier subclass supplies its karrio settings, its units, and `raw_scans`: karrio's unified
TrackingEvent drops fields we need (UPS gmt time, FedEx exceptionCode, structured locations),
so the subclass reads those from the same answer through karrio's own schema types.

A return label goes through karrio's return-shipment steps (`create_return_shipment_request`
…), only for carriers whose capabilities say `return_label`; see each carrier's module for why
it does or does not.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import karrio.core.errors as karrio_errors
import karrio.core.models as karrio_models
import karrio.lib as karrio_lib
import karrio.sdk as karrio_sdk

from services.carrier_adapter.adapters.carriers.karrio_http import (
    CarrierHttpUnavailable,
    TransportConnectFailed,
)
from services.carrier_adapter.adapters.carriers.karrio_mapping import (
    UnitSystem,
    decode_document,
    to_karrio_address,
    to_karrio_parcel,
    to_rate_quote,
)
from services.carrier_adapter.adapters.reliability.clock import Clock, SystemClock
from services.carrier_adapter.config import CarrierAccount
from services.carrier_adapter.domain.connector import Capabilities
from services.carrier_adapter.domain.errors import (
    CarrierError,
    CarrierRejected,
    CarrierRequestInvalid,
    CarrierTimeout,
    CarrierUnavailable,
    UnknownService,
    UnsupportedOperation,
)
from services.carrier_adapter.domain.model import (
    BookedLabel,
    CancelRequest,
    InboundWebhook,
    LabelFormat,
    LabelRequest,
    RateQuote,
    RateRequest,
    TrackingResult,
    WebhookBatch,
)
from services.carrier_adapter.domain.normalize import RawScan, ScanNormalizer, UnmappedSink
from services.carrier_adapter.domain.payload_log import PayloadDirection, PayloadRecorder
from services.carrier_adapter.domain.service_table import ServiceTable
from services.carrier_adapter.domain.status_table import CodeTable
from services.kit.values import Money

__all__ = ["KarrioConnector"]

T = TypeVar("T")
Gateway = Any  # karrio.api.gateway.Gateway; karrio ships no type information

_TRACE_DIRECTIONS = {
    "request": PayloadDirection.REQUEST,
    "response": PayloadDirection.RESPONSE,
    "error": PayloadDirection.ERROR,
}


class KarrioConnector:
    carrier: ClassVar[str]
    units: ClassVar[UnitSystem] = "imperial"
    # Our label formats → the karrio label_type this carrier accepts.
    label_types: ClassVar[Mapping[LabelFormat, str]] = {
        LabelFormat.PDF: "PDF",
        LabelFormat.ZPL: "ZPL",
    }
    capabilities: ClassVar[Capabilities] = Capabilities(
        push_tracking=False, idempotent_booking=False
    )
    # karrio shipment options a return label needs at this carrier, on top of karrio's own.
    return_options: ClassVar[Mapping[str, Any]] = {}

    def __init__(
        self,
        account: CarrierAccount,
        *,
        status_table: CodeTable,
        service_table: ServiceTable,
        on_unmapped: UnmappedSink | None = None,
        payloads: PayloadRecorder | None = None,
        clock: Clock | None = None,
    ) -> None:
        if account.carrier != self.carrier:
            raise ValueError(f"{type(self).__name__} cannot serve a {account.carrier} account")
        self.account = account
        self.services = service_table
        self.normalizer = ScanNormalizer(status_table, on_unmapped)
        self._payloads = payloads
        self._clock = clock or SystemClock()
        # One token cache per account for the process: karrio refreshes OAuth tokens in it.
        self._token_cache = karrio_lib.Cache()

    @property
    def account_id(self) -> str:
        return self.account.account_id

    # ---- carrier hooks -------------------------------------------------------------------

    def karrio_settings(self) -> dict[str, Any]:
        """The karrio Settings fields for this account (credentials come from config)."""
        raise NotImplementedError

    def raw_scans(self, details: karrio_models.TrackingDetails, answer: Any) -> list[RawScan]:
        """One tracking number's scans, from karrio's parsed details and the raw answer."""
        raise NotImplementedError

    # ---- operations ----------------------------------------------------------------------

    async def rate(self, request: RateRequest) -> list[RateQuote]:
        payload = karrio_models.RateRequest(
            shipper=to_karrio_address(request.ship_from),
            recipient=to_karrio_address(request.ship_to),
            parcels=[to_karrio_parcel(p, self.units) for p in request.parcels],
            services=[],  # every service: the level filter below is ours, the same for all
        )

        rates, messages = await self._run(
            "rate",
            "",
            lambda gw: gw.mapper.create_rate_request(payload),
            lambda gw, request: gw.proxy.get_rates(request),
            lambda gw, answer: gw.mapper.parse_rate_response(answer),
        )
        quotes = [to_rate_quote(rate, self.services, self.account_id) for rate in rates or []]
        if not quotes and messages:
            raise CarrierRejected(self.carrier, _texts(messages))
        if request.service_level is not None:
            quotes = [q for q in quotes if q.service_level == request.service_level]
        return sorted(quotes, key=lambda q: q.total_charge.amount)

    async def book_label(self, request: LabelRequest) -> BookedLabel:
        if request.is_return and not self.capabilities.return_label:
            raise UnsupportedOperation(self.carrier, "return labels")
        if request.service_code not in self.services.services:
            raise UnknownService(self.carrier, request.service_code)
        label_type = self.label_types.get(request.label_format)
        if label_type is None:
            raise UnsupportedOperation(self.carrier, f"{request.label_format} labels")
        payload = karrio_models.ShipmentRequest(
            service=request.service_code,
            shipper=to_karrio_address(request.ship_from),
            recipient=to_karrio_address(request.ship_to),
            parcels=[
                to_karrio_parcel(p, self.units, _RETURN_CONTENTS if request.is_return else None)
                for p in request.parcels
            ],
            label_type=label_type,
            reference=request.reference,
            # Bill the configured account; karrio needs it spelled out for some carriers.
            payment=karrio_models.Payment(
                paid_by="sender", account_number=self.account.get("account_number") or None
            ),
            options=dict(self.return_options) if request.is_return else {},
        )

        shipment, messages = await self._run(
            "book_label", request.idempotency_key, *_shipment_steps(payload, request.is_return)
        )
        if shipment is None or not shipment.tracking_number or not shipment.docs.label:
            raise CarrierRejected(self.carrier, _texts(messages) or ["no label in the answer"])
        meta = shipment.meta or {}
        packages = tuple(meta.get("tracking_numbers") or [shipment.tracking_number])
        rate = shipment.selected_rate
        return BookedLabel(
            carrier=self.carrier,
            carrier_account_id=self.account_id,
            service_code=request.service_code,
            tracking_number=shipment.tracking_number,
            package_tracking_numbers=packages,
            label_format=_format_of(shipment.label_type, request.label_format),
            document=decode_document(shipment.docs.label),
            idempotency_key=request.idempotency_key,
            created_at=self._clock.now(),
            quoted_charge=(
                Money.of(rate.total_charge, rate.currency).rounded()
                if rate is not None and rate.currency
                else None
            ),
            carrier_shipment_id=shipment.shipment_identifier or shipment.tracking_number,
            is_return=request.is_return,
        )

    async def cancel_label(self, request: CancelRequest) -> None:
        payload = karrio_models.ShipmentCancelRequest(
            shipment_identifier=request.carrier_shipment_id or request.tracking_number,
            service=request.service_code or None,
            options={"tracking_numbers": [request.tracking_number]},
        )

        confirmation, messages = await self._run(
            "cancel_label",
            request.tracking_number,
            lambda gw: gw.mapper.create_cancel_shipment_request(payload),
            lambda gw, cancel_request: gw.proxy.cancel_shipment(cancel_request),
            lambda gw, answer: gw.mapper.parse_cancel_shipment_response(answer),
        )
        if confirmation is None or not confirmation.success:
            raise CarrierRejected(self.carrier, _texts(messages) or ["void not confirmed"])

    async def find_label(self, idempotency_key: str) -> BookedLabel | None:
        # karrio has no shipment search by reference: an unknown outcome stays an operator's.
        raise UnsupportedOperation(self.carrier, "label lookup by reference")

    async def track(self, tracking_number: str) -> TrackingResult:
        payload = karrio_models.TrackingRequest(tracking_numbers=[tracking_number])

        def send(gateway: Gateway, tracking_request: Any) -> Any:
            answer = gateway.proxy.get_tracking(tracking_request)
            _raise_swallowed(answer)
            return answer

        def parse(gateway: Gateway, answer: Any) -> Any:
            details, messages = gateway.mapper.parse_tracking_response(answer)
            return details, messages, answer.deserialize()

        details, messages, raw = await self._run(
            "track",
            tracking_number,
            lambda gw: gw.mapper.create_tracking_request(payload),
            send,
            parse,
        )
        found = [d for d in details or [] if d.tracking_number == tracking_number]
        if not found:
            raise CarrierRejected(self.carrier, _texts(messages) or ["no tracking details"])
        return self.normalizer.normalize(tracking_number, self.raw_scans(found[0], raw))

    def parse_webhook(self, webhook: InboundWebhook) -> WebhookBatch:
        # None of the karrio carriers here push through karrio; they are polled.
        raise UnsupportedOperation(self.carrier, "webhooks")

    # ---- plumbing ------------------------------------------------------------------------

    async def _run(
        self,
        operation: str,
        reference: str,
        build: Callable[[Gateway], Any],
        send: Callable[[Gateway, Any], Any],
        parse: Callable[[Gateway, Any], T],
    ) -> T:
        """karrio's build → send → parse on a worker thread; failures classified by phase."""

        def work() -> T:
            tracer = karrio_lib.Tracer()
            phase = "build"
            try:
                gateway = karrio_sdk.gateway[self.carrier].create(
                    self.karrio_settings(), tracer=tracer, cache=self._token_cache
                )
                request = build(gateway)
                phase = "send"
                answer = send(gateway, request)
                phase = "parse"
                return parse(gateway, answer)
            except Exception as error:
                raise _PhaseError(phase, error) from error
            finally:
                self._record(operation, tracer, reference)

        try:
            return await asyncio.to_thread(work)
        except _PhaseError as failure:
            raise self._classify(operation, reference, failure) from failure.error

    def _classify(self, operation: str, reference: str, failure: _PhaseError) -> CarrierError:
        error, carrier = failure.error, self.carrier
        if isinstance(error, CarrierError):
            return error
        if failure.phase == "build":
            # Nothing was sent: karrio could not express our input for this carrier.
            return CarrierRequestInvalid(carrier, f"{operation}: {error}")
        if isinstance(error, karrio_errors.ParsedMessagesError):
            # karrio raises this while fetching a token: bad credentials, refused account.
            return CarrierRejected(carrier, _texts(error.messages))
        self._record_failure(operation, reference, f"{failure.phase}: {error!r}")
        if isinstance(error, CarrierHttpUnavailable):
            return CarrierUnavailable(
                carrier,
                f"{operation}: HTTP {error.status}",
                maybe_committed=error.maybe_committed,
                retry_after_seconds=error.retry_after,
            )
        if isinstance(error, TransportConnectFailed):
            return CarrierUnavailable(carrier, f"{operation}: {error}", maybe_committed=False)
        if isinstance(error, TimeoutError):
            return CarrierTimeout(carrier, operation, None)
        if isinstance(error, OSError):
            return CarrierUnavailable(carrier, f"{operation}: {error}", maybe_committed=True)
        # karrio failed mid-exchange or could not read the answer (a maintenance page, a changed
        # shape): we cannot know whether the carrier acted, so retryable but maybe committed.
        return CarrierUnavailable(
            carrier,
            f"{operation}: unreadable answer ({type(error).__name__})",
            maybe_committed=True,
        )

    def _record(self, operation: str, tracer: Any, reference: str) -> None:
        if self._payloads is None:
            return
        records = sorted(tracer.records, key=lambda record: record.timestamp)
        urls: dict[str, str] = {}
        for record in records:
            data = record.data if isinstance(record.data, dict) else {"data": record.data}
            direction = _TRACE_DIRECTIONS.get(record.key)
            if direction is None:
                continue
            request_id = str(data.get("request_id", ""))
            if direction is PayloadDirection.REQUEST:
                urls[request_id] = str(data.get("url", ""))
            body = data.get({"request": "data", "response": "response"}.get(record.key, "error"))
            self._payloads.record(
                operation=operation,
                direction=direction,
                body=body if isinstance(body, str) else json.dumps(body, default=str),
                url=urls.get(request_id, ""),
                reference=reference,
            )

    def _record_failure(self, operation: str, reference: str, text: str) -> None:
        if self._payloads is not None:
            self._payloads.record(
                operation=operation,
                direction=PayloadDirection.ERROR,
                body=text,
                reference=reference,
            )


# UPS refuses a return package without a description of its goods; we do not know the items.
_RETURN_CONTENTS = "Returned merchandise"

_ShipmentSteps = tuple[
    Callable[[Gateway], Any], Callable[[Gateway, Any], Any], Callable[[Gateway, Any], Any]
]


def _shipment_steps(payload: karrio_models.ShipmentRequest, is_return: bool) -> _ShipmentSteps:
    """karrio's build → send → parse for an outbound or a return shipment.

    karrio's return builders take the parties as the parcel travels (shipper = the customer,
    recipient = the warehouse), which is already how a return LabelRequest names them.
    """
    if is_return:
        return (
            lambda gw: gw.mapper.create_return_shipment_request(payload),
            lambda gw, shipment_request: gw.proxy.create_return_shipment(shipment_request),
            lambda gw, answer: gw.mapper.parse_return_shipment_response(answer),
        )
    return (
        lambda gw: gw.mapper.create_shipment_request(payload),
        lambda gw, shipment_request: gw.proxy.create_shipment(shipment_request),
        lambda gw, answer: gw.mapper.parse_shipment_response(answer),
    )


class _PhaseError(Exception):
    """Carries a failure out of the worker thread with the phase it happened in."""

    def __init__(self, phase: str, error: Exception) -> None:
        super().__init__(f"{phase}: {error!r}")
        self.phase = phase
        self.error = error


def _raise_swallowed(answer: Any) -> None:
    """karrio's thread-pool helper returns a failed call's exception as a value; raise it."""
    value = getattr(answer, "value", None)
    if isinstance(value, list):
        for item in value:
            if isinstance(item, BaseException):
                raise item


def _texts(messages: Sequence[Any] | None) -> list[str]:
    texts = []
    for message in messages or []:
        code = getattr(message, "code", None)
        text = getattr(message, "message", None) or str(message)
        texts.append(f"{code}: {text}" if code else str(text))
    return texts


def _format_of(label_type: str | None, asked: LabelFormat) -> LabelFormat:
    try:
        return LabelFormat((label_type or asked.value).upper())
    except ValueError:
        return asked
