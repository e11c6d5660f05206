"""The built-in sandbox carrier: quotes, real label documents, a simulated tracking lifecycle
and signed webhooks, with no network. Local runs and e2e tests book with it.

It behaves like a well-run carrier: booking is idempotent by our key (the same key returns the
same label), voiding works until pickup, tracking shows the scans whose time has come, and the
pusher (carriers.sandbox.pusher) sends them as signed webhooks. Return labels are ordinary
parcels travelling from the customer to the warehouse, with "RETURN" printed on the label.
State is in memory, like a real carrier's own database; after a restart the service hands its
live labels back with `restore`.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from services.carrier_adapter.adapters.carriers.sandbox import documents, pricing, webhooks
from services.carrier_adapter.adapters.carriers.sandbox.lifecycle import (
    LifecycleRates,
    PlannedScan,
    Timings,
    plan_lifecycle,
)
from services.carrier_adapter.adapters.reliability.clock import Clock
from services.carrier_adapter.config import CarrierAccount
from services.carrier_adapter.domain.connector import Capabilities
from services.carrier_adapter.domain.errors import (
    CarrierRejected,
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
from services.kit.values import Address, Money, WeightUnit

__all__ = ["SandboxConnector", "SandboxSettings", "parse_push"]

CARRIER = "sandbox"


@dataclass(frozen=True)
class SandboxSettings:
    webhook_secrets: tuple[str, ...]
    seed: int = 0
    # Simulated seconds per wall-clock second: 1 is real time, 3600 turns a day into 24 s.
    time_scale: float = 1.0
    rates: LifecycleRates = field(default_factory=LifecycleRates)
    timings: Timings = field(default_factory=Timings)
    currency: str = "USD"
    quote_ttl: timedelta = timedelta(hours=24)
    webhook_tolerance: timedelta = webhooks.DEFAULT_TOLERANCE
    # Pusher behaviour for e2e realism: re-send a push, or hold one back behind the next.
    duplicate_webhook_rate: float = 0.0
    late_webhook_rate: float = 0.0
    # Share of deliveries whose final charge differs from the quote (an address correction).
    final_charge_adjustment_rate: float = 0.0
    # Real seconds each new booking takes (a slow carrier), for timeout and retry rehearsals.
    label_delay_seconds: float = 0.0
    # False: a carrier that does not dedupe bookings by our key (a repeated key books another
    # label), so carrier-adapter parks a booking whose reply timed out as outcome unknown.
    dedupe_bookings: bool = True

    def __post_init__(self) -> None:
        if not self.webhook_secrets or not all(self.webhook_secrets):
            raise ValueError("the sandbox needs a webhook secret")
        if self.time_scale < 1.0:
            raise ValueError("time_scale must be at least 1")

    @classmethod
    def from_account(cls, account: CarrierAccount) -> SandboxSettings:
        """Settings from a validated config account (config.CARRIER_FIELDS["sandbox"])."""

        def number(name: str, default: float) -> float:
            raw = account.get(name)
            return float(raw) if raw else default

        return cls(
            webhook_secrets=tuple(s.strip() for s in account.get("webhook_secret").split(",")),
            seed=int(account.get("seed") or 0),
            time_scale=number("time_scale", 1.0),
            rates=LifecycleRates(
                exception=number("exception_rate", 0.05),
                return_to_sender=number("return_rate", 0.01),
            ),
            duplicate_webhook_rate=number("duplicate_webhook_rate", 0.0),
            late_webhook_rate=number("late_webhook_rate", 0.0),
            label_delay_seconds=number("label_delay_seconds", 0.0),
            dedupe_bookings=(account.get("dedupe_bookings") or "true").lower()
            in {"1", "true", "yes", "on"},
        )

    def capabilities(self) -> Capabilities:
        """What the sandbox offers; whether it dedupes bookings is a setting."""
        return Capabilities(
            push_tracking=True,
            idempotent_booking=self.dedupe_bookings,
            cancel_label=True,
            return_label=True,
        )


@dataclass
class _Parcel:
    label: BookedLabel
    request: LabelRequest
    plan: list[PlannedScan]
    cancelled_at: datetime | None = None


class SandboxConnector:
    carrier = CARRIER

    def __init__(
        self,
        account_id: str,
        settings: SandboxSettings,
        *,
        status_table: CodeTable,
        service_table: ServiceTable,
        clock: Clock,
        on_unmapped: UnmappedSink | None = None,
        payloads: PayloadRecorder | None = None,
    ) -> None:
        missing = set(service_table.services) ^ set(pricing.SERVICES)
        if missing:
            raise ValueError(f"sandbox services.json and pricing disagree on {sorted(missing)}")
        self._account_id = account_id
        self.settings = settings
        self.capabilities = settings.capabilities()
        self.services = service_table
        self.normalizer = ScanNormalizer(status_table, on_unmapped)
        self._clock = clock
        self._payloads = payloads
        self._parcels: dict[str, _Parcel] = {}
        # key → tracking numbers booked under it, oldest first (more than one only when the
        # sandbox does not dedupe bookings).
        self._by_key: dict[str, list[str]] = {}

    @property
    def account_id(self) -> str:
        return self._account_id

    # ---- connector operations ------------------------------------------------------------

    async def rate(self, request: RateRequest) -> list[RateQuote]:
        now = self._clock.now()
        quotes = []
        for service in pricing.SERVICES.values():
            if request.service_level is not None and service.level != request.service_level:
                continue
            days = pricing.transit_days(service, request.ship_from, request.ship_to)
            amount = pricing.price(service, request.ship_from, request.ship_to, request.parcels)
            quotes.append(
                RateQuote(
                    carrier=CARRIER,
                    carrier_account_id=self._account_id,
                    service_code=service.code,
                    service_name=self.services.name_of(service.code),
                    service_level=service.level,
                    total_charge=Money(self.settings.currency, amount),
                    transit_days=days,
                    estimated_delivery=now + timedelta(days=days) / self.settings.time_scale,
                    expires_at=now + self.settings.quote_ttl,
                )
            )
        return sorted(quotes, key=lambda quote: quote.total_charge.amount)

    async def book_label(self, request: LabelRequest) -> BookedLabel:
        known = self._by_key.get(request.idempotency_key, [])
        if known and self.settings.dedupe_bookings:
            parcel = self._parcels[known[0]]
            if parcel.request != request:
                raise CarrierRejected(CARRIER, ["idempotency key reused for a different label"])
            return parcel.label
        service = pricing.SERVICES.get(request.service_code)
        if service is None:
            raise UnknownService(CARRIER, request.service_code)
        if request.label_format not in (LabelFormat.PDF, LabelFormat.ZPL):
            raise UnsupportedOperation(CARRIER, f"{request.label_format} labels")
        if self.settings.label_delay_seconds > 0:
            await self._clock.sleep(self.settings.label_delay_seconds)
        # Without dedupe, each booking with a key is another parcel (another number).
        tracking_number = self._tracking_number(request.idempotency_key, len(known))
        amount = pricing.price(service, request.ship_from, request.ship_to, request.parcels)
        content = documents.LabelContent(
            carrier_name="Sandbox Carrier",
            service_name=self.services.name_of(service.code),
            tracking_number=tracking_number,
            ship_from=_lines(request.ship_from),
            ship_to=_lines(request.ship_to),
            weight_text=_weight_text(request),
            reference=request.reference,
            package_text=f"1 of {len(request.parcels)}",
            is_return=request.is_return,
        )
        render = (
            documents.render_pdf
            if request.label_format is LabelFormat.PDF
            else (documents.render_zpl)
        )
        label = BookedLabel(
            carrier=CARRIER,
            carrier_account_id=self._account_id,
            service_code=service.code,
            tracking_number=tracking_number,
            package_tracking_numbers=tuple(
                tracking_number if i == 0 else f"{tracking_number}{i:02d}"
                for i in range(len(request.parcels))
            ),
            label_format=request.label_format,
            document=render(content),
            idempotency_key=request.idempotency_key,
            created_at=self._clock.now(),
            quoted_charge=Money(self.settings.currency, amount),
            carrier_shipment_id=tracking_number,
            is_return=request.is_return,
        )
        self._adopt(label, request)
        self._log("book_label", PayloadDirection.RESPONSE, tracking_number, request.idempotency_key)
        return label

    async def cancel_label(self, request: CancelRequest) -> None:
        parcel = self._parcel(request.tracking_number)
        now = self._clock.now()
        if parcel.cancelled_at is not None:
            return  # voiding twice is a no-op, as with most carriers
        if any(s.code != "LBL" for s in self._due(parcel, now)):
            raise CarrierRejected(CARRIER, ["the parcel has already been picked up"])
        parcel.cancelled_at = now

    async def track(self, tracking_number: str) -> TrackingResult:
        parcel = self._parcel(tracking_number)
        raw = self.scans_due(tracking_number, self._clock.now())
        self._log("track", PayloadDirection.RESPONSE, f"{len(raw)} scans", tracking_number)
        return self.normalizer.normalize(parcel.label.tracking_number, raw)

    def parse_webhook(self, webhook: InboundWebhook) -> WebhookBatch:
        return parse_push(webhook, self.settings, self._clock, self.normalizer, self._payloads)

    # ---- simulator -----------------------------------------------------------------------

    def restore(
        self, label: BookedLabel, request: LabelRequest, cancelled_at: datetime | None = None
    ) -> None:
        """Re-register a label booked before a restart (the service keeps them in its store;
        the sandbox process, in its journal), voided at `cancelled_at` if it was."""
        if label.tracking_number not in self._parcels:
            self._adopt(label, request)
        if cancelled_at is not None:
            self._parcels[label.tracking_number].cancelled_at = cancelled_at

    def find_labels(self, idempotency_key: str) -> list[tuple[BookedLabel, bool]]:
        """The labels booked under `idempotency_key` (the customer reference a carrier's
        shipment search takes), oldest first, each with whether it was voided."""
        parcels = [self._parcels[n] for n in self._by_key.get(idempotency_key, [])]
        return [(parcel.label, parcel.cancelled_at is not None) for parcel in parcels]

    async def find_label(self, idempotency_key: str) -> BookedLabel | None:
        """The first live label booked under `idempotency_key`, None when there is none."""
        live = [label for label, voided in self.find_labels(idempotency_key) if not voided]
        self._log("find_label", PayloadDirection.RESPONSE, f"{len(live)} live", idempotency_key)
        return live[0] if live else None

    def labels_booked(self, since: datetime, until: datetime) -> list[tuple[BookedLabel, bool]]:
        """Every label booked in [since, until), in booking order, each with whether it was
        voided (a carrier's shipment search by date)."""
        return [
            (parcel.label, parcel.cancelled_at is not None)
            for parcel in self._parcels.values()
            if since <= parcel.label.created_at < until
        ]

    def live_tracking_numbers(self) -> list[str]:
        return sorted(self._parcels)

    def settled(self, tracking_number: str, now: datetime) -> bool:
        """True once nothing more will ever happen to the parcel: voided, or its last planned
        scan is due. scans_due answers the same from then on."""
        parcel = self._parcel(tracking_number)
        if parcel.cancelled_at is not None:
            return True
        return not parcel.plan or self._wall_time(parcel, parcel.plan[-1]) <= now

    def scans_due(self, tracking_number: str, now: datetime) -> list[RawScan]:
        """The scans that have happened by `now`, oldest first, with wall-clock times."""
        parcel = self._parcel(tracking_number)
        scans = [self._raw(parcel, planned) for planned in self._due(parcel, now)]
        if parcel.cancelled_at is not None:
            scans.append(
                RawScan("CXL", "Label voided by shipper", parcel.cancelled_at, signed_by="")
            )
        return scans

    def final_charge(self, tracking_number: str) -> Money | None:
        """The billed amount once delivered: the quote, or the quote plus a correction."""
        parcel = self._parcel(tracking_number)
        quoted = parcel.label.quoted_charge
        if quoted is None:
            return None
        rng = random.Random(f"{self.settings.seed}:{tracking_number}:charge")
        if rng.random() < self.settings.final_charge_adjustment_rate:
            return Money(quoted.currency_code, quoted.amount + Decimal("4.75"))
        return quoted

    def _adopt(self, label: BookedLabel, request: LabelRequest) -> None:
        service = pricing.SERVICES[label.service_code]
        plan = plan_lifecycle(
            seed=self.settings.seed,
            tracking_number=label.tracking_number,
            ship_from=request.ship_from,
            ship_to=request.ship_to,
            transit_days=pricing.transit_days(service, request.ship_from, request.ship_to),
            rates=self.settings.rates,
            timings=self.settings.timings,
        )
        self._parcels[label.tracking_number] = _Parcel(label, request, plan)
        self._by_key.setdefault(label.idempotency_key, []).append(label.tracking_number)

    def _due(self, parcel: _Parcel, now: datetime) -> list[PlannedScan]:
        until = parcel.cancelled_at or now
        return [s for s in parcel.plan if self._wall_time(parcel, s) <= min(now, until)]

    def _wall_time(self, parcel: _Parcel, planned: PlannedScan) -> datetime:
        return parcel.label.created_at + planned.offset / self.settings.time_scale

    def _raw(self, parcel: _Parcel, planned: PlannedScan) -> RawScan:
        return RawScan(
            status_code=planned.code,
            incident_code=planned.reason,
            description=planned.description,
            occurred_at=self._wall_time(parcel, planned),
            location=planned.location,
            signed_by=planned.signed_by,
        )

    def _parcel(self, tracking_number: str) -> _Parcel:
        parcel = self._parcels.get(tracking_number)
        if parcel is None:
            raise CarrierRejected(CARRIER, [f"unknown tracking number {tracking_number}"])
        return parcel

    def _tracking_number(self, idempotency_key: str, earlier: int = 0) -> str:
        # Derived from the key: the same booking gets the same number even across restarts
        # (the nth booking of a key, for a sandbox that does not dedupe, its own).
        seed = f"{self._account_id}:{idempotency_key}" + (f":{earlier}" if earlier else "")
        digest = hashlib.sha256(seed.encode()).hexdigest()
        return "SBX" + str(int(digest[:15], 16)).zfill(12)[-12:]

    def _log(self, operation: str, direction: PayloadDirection, body: str, ref: str) -> None:
        if self._payloads is not None:
            self._payloads.record(
                operation=operation, direction=direction, body=body, reference=ref
            )


def parse_push(
    webhook: InboundWebhook,
    settings: SandboxSettings,
    clock: Clock,
    normalizer: ScanNormalizer,
    payloads: PayloadRecorder | None,
) -> WebhookBatch:
    """Verify a sandbox push, log it, normalize its scans: the same whether the sandbox runs
    in this process or as its own (sandbox.remote)."""
    webhooks.verify(
        webhook.body,
        webhook.headers,
        settings.webhook_secrets,
        clock.now(),
        settings.webhook_tolerance,
    )
    push = webhooks.decode_push(webhook.body)
    if payloads is not None:
        payloads.record(
            operation="webhook",
            direction=PayloadDirection.INBOUND,
            body=webhook.body.decode("utf-8", "replace"),
            reference=push.tracking_number,
        )
    result = normalizer.normalize(push.tracking_number, push.scans)
    charges = {push.tracking_number: push.final_charge} if push.final_charge else {}
    return WebhookBatch(CARRIER, push.event_id, (result,), charges)


def _lines(address: Address) -> tuple[str, ...]:
    place = " ".join(p for p in (address.city, address.region, address.postal_code) if p)
    return tuple(
        p
        for p in (address.name, address.company, *address.lines, f"{place} {address.country_code}")
        if p
    )


def _weight_text(request: LabelRequest) -> str:
    total = sum((p.weight.to(WeightUnit.KILOGRAM) for p in request.parcels), Decimal(0))
    return f"{total.quantize(Decimal('0.01'))} kg"
