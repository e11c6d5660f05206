"""The sandbox carrier reached over HTTP, when it runs as its own process.

`tools/sandbox_carrier.py` serves the same simulation (quotes, label documents, tracking
lifecycles, signed pushes) as a remote carrier would, so its CPU is not carrier-adapter's; this
connector is what carrier-adapter keeps: HTTP calls in the sandbox API format (sandbox.api),
error mapping, the payload log, and verifying and normalizing pushes (the same parse_push as the
in-process sandbox). An account selects it by setting ENDPOINT; its pushes arrive through the
gateway's carrier route or IngestWebhook like any carrier's, so carrier-adapter runs no pusher
for it.
"""

from __future__ import annotations

from typing import Any

import httpx

from services.carrier_adapter.adapters.carriers.sandbox import api, webhooks
from services.carrier_adapter.adapters.carriers.sandbox.connector import (
    CARRIER,
    SandboxConnector,
    SandboxSettings,
    parse_push,
)
from services.carrier_adapter.adapters.reliability.clock import Clock
from services.carrier_adapter.domain.connector import Capabilities
from services.carrier_adapter.domain.errors import (
    CarrierRejected,
    CarrierTimeout,
    CarrierUnavailable,
    UnknownService,
    UnsupportedOperation,
)
from services.carrier_adapter.domain.model import (
    BookedLabel,
    CancelRequest,
    InboundWebhook,
    LabelRequest,
    RateQuote,
    RateRequest,
    TrackingResult,
    WebhookBatch,
)
from services.carrier_adapter.domain.normalize import ScanNormalizer, UnmappedSink
from services.carrier_adapter.domain.payload_log import PayloadDirection, PayloadRecorder
from services.carrier_adapter.domain.service_table import ServiceTable
from services.carrier_adapter.domain.status_table import StatusTable

__all__ = ["RemoteSandboxConnector"]


class RemoteSandboxConnector:
    carrier = CARRIER
    capabilities: Capabilities = SandboxConnector.capabilities

    def __init__(
        self,
        account_id: str,
        endpoint: str,
        settings: SandboxSettings,
        *,
        status_table: StatusTable,
        service_table: ServiceTable,
        clock: Clock,
        on_unmapped: UnmappedSink | None = None,
        payloads: PayloadRecorder | None = None,
        timeout_seconds: float = 20.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._account_id = account_id
        self.endpoint = endpoint.rstrip("/")
        self.settings = settings
        self.services = service_table
        self.normalizer = ScanNormalizer(status_table, on_unmapped)
        self._clock = clock
        self._payloads = payloads
        self._timeout = timeout_seconds
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    @property
    def account_id(self) -> str:
        return self._account_id

    async def rate(self, request: RateRequest) -> list[RateQuote]:
        answer = await self._call("rate", "POST", "/v1/rates", api.rate_request_to_json(request))
        return [api.quote_from_json(quote) for quote in answer["quotes"]]

    async def book_label(self, request: LabelRequest) -> BookedLabel:
        body = api.label_request_to_json(request)
        answer = await self._call("book_label", "POST", "/v1/labels", body)
        label = api.label_from_json(answer)
        self._log("book_label", label.tracking_number, request.idempotency_key)
        return label

    async def cancel_label(self, request: CancelRequest) -> None:
        path = f"/v1/labels/{request.tracking_number}/void"
        await self._call("cancel_label", "POST", path, {})

    async def track(self, tracking_number: str) -> TrackingResult:
        answer = await self._call("track", "GET", f"/v1/tracking/{tracking_number}", None)
        scans = webhooks.scans_from_json(answer["scans"])
        self._log("track", f"{len(scans)} scans", tracking_number)
        return self.normalizer.normalize(tracking_number, scans)

    def parse_webhook(self, webhook: InboundWebhook) -> WebhookBatch:
        return parse_push(webhook, self.settings, self._clock, self.normalizer, self._payloads)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ---- transport -----------------------------------------------------------------------

    async def _call(
        self, operation: str, method: str, path: str, body: dict[str, Any] | None
    ) -> dict[str, Any]:
        if self._client is None:
            # Created on first use, inside the service's event loop.
            self._client = httpx.AsyncClient(
                base_url=self.endpoint, timeout=self._timeout, transport=self._transport
            )
        try:
            response = await self._client.request(method, path, json=body)
        except httpx.TimeoutException:
            raise CarrierTimeout(CARRIER, operation, self._timeout) from None
        except httpx.ConnectError as error:
            raise CarrierUnavailable(
                CARRIER, f"{operation}: {error}", maybe_committed=False
            ) from None
        except httpx.HTTPError as error:
            raise CarrierUnavailable(
                CARRIER, f"{operation}: {error}", maybe_committed=True
            ) from None
        if response.status_code >= 500 or response.status_code == 429:
            self._log_error(operation, path, response.text)
            raise CarrierUnavailable(
                CARRIER, f"{operation}: HTTP {response.status_code}", maybe_committed=True
            )
        if response.status_code >= 400:
            self._log_error(operation, path, response.text)
            raise _refusal(response)
        answer: dict[str, Any] = response.json()
        return answer

    def _log(self, operation: str, body: str, reference: str) -> None:
        # What the in-process sandbox logs too, so both modes cost carrier-adapter the same.
        if self._payloads is not None:
            self._payloads.record(
                operation=operation,
                direction=PayloadDirection.RESPONSE,
                body=body,
                reference=reference,
            )

    def _log_error(self, operation: str, path: str, text: str) -> None:
        if self._payloads is not None:
            self._payloads.record(
                operation=operation,
                direction=PayloadDirection.ERROR,
                body=text,
                url=self.endpoint + path,
            )


def _refusal(response: httpx.Response) -> Exception:
    try:
        problem = response.json()
        kind, detail = str(problem["error"]), str(problem.get("detail") or "")
    except (ValueError, KeyError, TypeError):
        return CarrierRejected(CARRIER, [f"HTTP {response.status_code}"])
    if kind == api.ERROR_UNKNOWN_SERVICE:
        return UnknownService(CARRIER, detail)
    if kind == api.ERROR_UNSUPPORTED:
        return UnsupportedOperation(CARRIER, detail)
    return CarrierRejected(CARRIER, [detail] if detail else [])
