"""Carrier pushes → new scans → `TrackingUpdated` (and `CarrierCodeUnmapped`) published.

One unit of work per push: the scans' dedupe keys and the events commit together, so a push the
carrier re-sends (or one we crash in the middle of) publishes each scan exactly once. The
tracking poller (app.polling) records its Track answers through `record_tracking` too, so a
polled scan is de-duplicated and published exactly like a pushed one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.carrier_adapter.adapters.carriers.connectors import ConnectorRegistry
from services.carrier_adapter.adapters.reliability.clock import Clock
from services.carrier_adapter.adapters.store import labels as label_store
from services.carrier_adapter.adapters.store.scans import keep_unseen_groups
from services.carrier_adapter.adapters.store.unmapped import keep_unmapped
from services.carrier_adapter.domain.connector import CarrierConnector
from services.carrier_adapter.domain.errors import WebhookSignatureInvalid
from services.carrier_adapter.domain.events import TrackingUpdated
from services.carrier_adapter.domain.model import (
    InboundWebhook,
    TrackingResult,
    TrackingScan,
    TrackingStatus,
    WebhookBatch,
)
from services.kit.db import Database
from services.kit.errors import FailedPrecondition, NotFound
from services.kit.request_context import current_correlation_id, new_correlation_id
from services.kit.uow import UnitOfWork, UnitsOfWork

__all__ = ["IngestResult", "TrackingIngest", "parse", "record_all", "record_tracking", "track"]


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int


class TrackingIngest:
    def __init__(self, units: UnitsOfWork, registry: ConnectorRegistry, clock: Clock) -> None:
        self._units = units
        self._registry = registry
        self._clock = clock

    async def ingest(self, carrier: str, webhook: InboundWebhook) -> IngestResult:
        """Verify and normalize a push, then record its new scans and their events."""
        batch = parse(self._registry.for_carrier(carrier), carrier, webhook)
        correlation_id = current_correlation_id() or new_correlation_id()
        return await self._units.run(record_tracking, batch, self._clock.now(), correlation_id)


async def track(
    db: Database, registry: ConnectorRegistry, carrier: str, tracking_number: str
) -> TrackingResult:
    """The carrier's scans for one parcel, asked of the account that booked it."""
    connector = await _tracking_connector(db, registry, carrier, tracking_number)
    return await connector.track(tracking_number)


async def _tracking_connector(
    db: Database, registry: ConnectorRegistry, carrier: str, tracking_number: str
) -> CarrierConnector:
    # The account that booked the label tracks it; a number booked elsewhere goes to the
    # carrier's first account.
    stored = await db.run(label_store.get_label_by_tracking, tracking_number)
    if stored is not None and stored.carrier == carrier:
        try:
            return registry.get(stored.carrier_account_id)
        except KeyError:
            pass
    accounts = registry.for_carrier(carrier)
    if not accounts:
        raise FailedPrecondition(
            f"no {carrier} account is configured", reason="CARRIER_NOT_CONFIGURED"
        )
    return accounts[0]


def parse(
    connectors: Sequence[CarrierConnector], carrier: str, webhook: InboundWebhook
) -> WebhookBatch:
    """The first account of `carrier` whose secret verifies the push parses it."""
    if not connectors:
        raise NotFound(
            f"no {carrier} account is configured", resource_type="carrier", resource_name=carrier
        )
    rejection: WebhookSignatureInvalid | None = None
    for connector in connectors:
        try:
            return connector.parse_webhook(webhook)
        except WebhookSignatureInvalid as error:
            rejection = rejection or error
    assert rejection is not None
    raise rejection


def record_tracking(
    uow: UnitOfWork, batch: WebhookBatch, received_at: datetime, correlation_id: str
) -> IngestResult:
    """Keep the scans not seen before and publish them, with their unmapped codes."""
    return record_all(uow, [(batch, correlation_id)], received_at)[0]


def record_all(
    uow: UnitOfWork, batches: Sequence[tuple[WebhookBatch, str]], received_at: datetime
) -> list[IngestResult]:
    """`record_tracking` of several (batch, correlation id) in order, as if one after another,
    with one dedupe INSERT for all their scans (`keep_unseen_groups`)."""
    results = [(batch, result) for batch, _ in batches for result in batch.results]
    fresh_by_result = iter(keep_unseen_groups(uow.conn, [r.scans for _, r in results], received_at))
    ingested: list[IngestResult] = []
    for batch, correlation_id in batches:
        accepted = duplicates = 0
        for result in batch.results:
            fresh = next(fresh_by_result)
            accepted += len(fresh)
            duplicates += len(result.scans) - len(fresh)
            if fresh:
                _publish(uow, batch, result, fresh, received_at, correlation_id)
        ingested.append(IngestResult(accepted, duplicates))
    return ingested


def _publish(
    uow: UnitOfWork,
    batch: WebhookBatch,
    result: TrackingResult,
    fresh: list[TrackingScan],
    received_at: datetime,
    correlation_id: str,
) -> None:
    """One parcel's new scans as TrackingUpdated, then the unmapped codes they carry."""
    uow.publish(
        TrackingUpdated(
            batch.carrier,
            result.tracking_number,
            tuple(fresh),
            received_at,
            batch.final_charges.get(result.tracking_number),
        ),
        correlation_id=correlation_id,
    )
    if not result.unmapped:
        return
    # Kept so that mapping the code later can normalize these scans again (app.code_mapping).
    keep_unmapped(uow.conn, [s for s in fresh if s.status is TrackingStatus.UNKNOWN], received_at)
    # Unmapped codes of scans already seen were raised when they were first seen.
    fresh_scans = {(s.occurred_at, s.carrier_status_code) for s in fresh}
    for code in result.unmapped:
        if (code.occurred_at, code.carrier_status_code) in fresh_scans:
            uow.publish(code, correlation_id=correlation_id)
