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

import json
import urllib.parse
from typing import Any

import aiohttp

from services.carrier_adapter.adapters.carriers.sandbox import api, webhooks
from services.carrier_adapter.adapters.carriers.sandbox.connector import (
    CARRIER,
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
from services.carrier_adapter.domain.status_table import CodeTable

__all__ = ["RemoteSandboxConnector"]


class RemoteSandboxConnector:
    carrier = CARRIER

    def __init__(
        self,
        account_id: str,
        endpoint: str,
        settings: SandboxSettings,
        *,
        status_table: CodeTable,
        service_table: ServiceTable,
        clock: Clock,
        on_unmapped: UnmappedSink | None = None,
        payloads: PayloadRecorder | None = None,
        timeout_seconds: float = 20.0,
    ) -> None:
        self._account_id = account_id
        self.endpoint = endpoint.rstrip("/")
        self.settings = settings
        # The process's own --no-dedupe must match the account's DEDUPE_BOOKINGS.
        self.capabilities: Capabilities = settings.capabilities()
        self.services = service_table
        self.normalizer = ScanNormalizer(status_table, on_unmapped)
        self._clock = clock
        self._payloads = payloads
        self._timeout = timeout_seconds
        self._session: aiohttp.ClientSession | None = None

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

    async def find_label(self, idempotency_key: str) -> BookedLabel | None:
        query = urllib.parse.urlencode({"idempotency_key": idempotency_key})
        answer = await self._call("find_label", "GET", f"/v1/labels?{query}", None)
        live = [
            api.label_from_json(found["label"]) for found in answer["labels"] if not found["voided"]
        ]
        self._log("find_label", f"{len(live)} live", idempotency_key)
        return live[0] if live else None

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
        """Close the HTTP session and its keep-alive connections (a later call opens another)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # ---- transport -----------------------------------------------------------------------

    async def _call(
        self, operation: str, method: str, path: str, body: dict[str, Any] | None
    ) -> dict[str, Any]:
        session = self._session or self._open_session()
        data, headers = None, None
        if body is not None:
            # Compact UTF-8 JSON; a NaN fails here rather than going out as invalid JSON.
            text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            data, headers = text.encode(), _JSON
        try:
            async with session.request(
                method, self.endpoint + path, data=data, headers=headers
            ) as response:
                status, content, charset = response.status, await response.read(), response.charset
        except TimeoutError:  # aiohttp's connect and read timeouts are TimeoutErrors too
            raise CarrierTimeout(CARRIER, operation, self._timeout) from None
        except aiohttp.ClientConnectorError as error:  # refused, DNS, TLS: nothing was sent
            raise CarrierUnavailable(
                CARRIER, f"{operation}: {error}", maybe_committed=False
            ) from None
        except aiohttp.ClientError as error:
            raise CarrierUnavailable(
                CARRIER, f"{operation}: {error}", maybe_committed=True
            ) from None
        if status >= 500 or status == 429:
            self._log_error(operation, path, _text(content, charset))
            raise CarrierUnavailable(CARRIER, f"{operation}: HTTP {status}", maybe_committed=True)
        if status >= 400:
            self._log_error(operation, path, _text(content, charset))
            raise _refusal(status, content)
        answer: dict[str, Any] = json.loads(content)
        return answer

    def _open_session(self) -> aiohttp.ClientSession:
        # Opened on first use, inside the service's event loop, and kept: calls reuse its
        # keep-alive connections. The timeout bounds the connect (the wait for a free pooled
        # connection included) and each read; there is no total (aiohttp's default is 300 s).
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=self._timeout,
            sock_connect=self._timeout,
            sock_read=self._timeout,
        )
        # No cookie jar: the carrier's API is stateless; nothing an answer sets rides on later
        # calls. Idle connections are dropped after 4 s, before the sandbox's server (uvicorn,
        # 5 s) closes them, so a call never goes out on a socket the server is closing.
        self._session = aiohttp.ClientSession(
            timeout=timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
            connector=aiohttp.TCPConnector(keepalive_timeout=4.0),
        )
        return self._session

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


_JSON = {"Content-Type": "application/json"}


def _text(content: bytes, charset: str | None) -> str:
    """The body as text for the payload log: its declared charset, else UTF-8, never raising."""
    try:
        return content.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return content.decode("utf-8", errors="replace")


def _refusal(status: int, content: bytes) -> Exception:
    try:
        problem = json.loads(content)
        kind, detail = str(problem["error"]), str(problem.get("detail") or "")
    except (ValueError, KeyError, TypeError):
        return CarrierRejected(CARRIER, [f"HTTP {status}"])
    if kind == api.ERROR_UNKNOWN_SERVICE:
        return UnknownService(CARRIER, detail)
    if kind == api.ERROR_UNSUPPORTED:
        return UnsupportedOperation(CARRIER, detail)
    return CarrierRejected(CARRIER, [detail] if detail else [])
