"""Carrier pushes → new scans → `TrackingUpdated` (and `CarrierCodeUnmapped`) in the outbox.

One unit of work per push: the scans' dedupe keys and the events commit together, so a push the
carrier re-sends (or one we crash in the middle of) publishes each scan exactly once. The
tracking poller (services.carrier_adapter.poller) records its Track answers through `record_batch`
too, so a polled scan is de-duplicated and published exactly like a pushed one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from services.carrier_adapter.api.proto_mapping import tracking_updated_event, unmapped_event
from services.carrier_adapter.connector import CarrierConnector
from services.carrier_adapter.domain.errors import WebhookSignatureInvalid
from services.carrier_adapter.domain.model import InboundWebhook, WebhookBatch
from services.carrier_adapter.registry import ConnectorRegistry
from services.carrier_adapter.reliability.clock import Clock
from services.carrier_adapter.store.scans import keep_unseen
from services.kit import outbox
from services.kit.db import Database
from services.kit.errors import NotFound
from services.kit.request_context import current_correlation_id, new_correlation_id

__all__ = ["IngestResult", "TrackingIngest"]


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int


class TrackingIngest:
    def __init__(self, db: Database, registry: ConnectorRegistry, clock: Clock) -> None:
        self._db = db
        self._registry = registry
        self._clock = clock

    async def ingest(self, carrier: str, webhook: InboundWebhook) -> IngestResult:
        """Verify and normalize a push, then record its new scans and their events."""
        batch = parse(self._registry.for_carrier(carrier), carrier, webhook)
        correlation_id = current_correlation_id() or new_correlation_id()
        return await self._db.run(record_batch, batch, self._clock.now(), correlation_id)


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


def record_batch(
    conn: Connection, batch: WebhookBatch, received_at: datetime, correlation_id: str
) -> IngestResult:
    accepted = duplicates = 0
    for result in batch.results:
        fresh = keep_unseen(conn, result.scans, received_at)
        accepted += len(fresh)
        duplicates += len(result.scans) - len(fresh)
        if not fresh:
            continue
        event = tracking_updated_event(
            batch.carrier,
            result.tracking_number,
            tuple(fresh),
            received_at,
            batch.final_charges.get(result.tracking_number),
        )
        outbox.append(conn, event, result.tracking_number, correlation_id=correlation_id)
        # Unmapped codes of scans already seen were raised when they were first seen.
        fresh_scans = {(s.occurred_at, s.carrier_status_code) for s in fresh}
        for code in result.unmapped:
            if (code.occurred_at, code.carrier_status_code) in fresh_scans:
                outbox.append(
                    conn, unmapped_event(code), code.tracking_number, correlation_id=correlation_id
                )
    return IngestResult(accepted, duplicates)
