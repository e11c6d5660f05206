"""event_flow: every event a producer's outbox published was applied by each declared consumer.

Producers and consumers come from the event catalog (services.kit.catalog); each side answers
for its own records through its EventLedgerService (crossdock.common.v1). Per producer the tower
has a ledger for, and per subject it produces:
- ListPublished(subject) page by page, the events sent in [now - lookback, now], with the
  re-emitted ones still waiting to go out again (include_requeued);
- an event is judged by when it was CREATED (written to the outbox), not when it was sent:
  one created within the grace is still in flight and not judged. Not by its send time: a
  re-emitted event is sent again, so its send time is always recent right after a correction,
  and judging by it would leave it unjudged and close its finding before the consumer applied
  it. (A relay that lags past the grace makes an event look lost until it is applied: its
  Reemit is harmless, the inboxes keep it once.)
- for each page and each consumer service with a ledger, CheckApplied(its durable, the page's
  ids): an id it did not apply is lost, unless it was sent before either side's
  retained_since (the outbox or the inbox no longer holds that far back: not judged).
One drift per lost event (subject = the event id), corrected by the producer's Reemit: the
event keeps its id, so every consumer's inbox applies it at most once.

Per producer also ListUnsent(written before now - unsent_minutes): outbox rows the relay has not
published are one drift `unsent:<producer>`, never corrected here (re-emitting does not help a
relay that does not publish: it must be fixed, so the finding stays for an operator).

Not judged: the gateway's webhook consumers (the gateway is not a kit service, it serves no
ledger) and the tower's own `control-tower-projections` (its inbox is the tower's own; a lost
event there shows in its timelines and flows, not between two owners).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import grpc
from crossdock.common.v1 import event_ledger_pb2 as ledger_pb2
from crossdock.common.v1 import event_ledger_pb2_grpc as ledger_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from services.control_tower.adapters.clients import OwnerRefused
from services.control_tower.app.reconciliation.checks import (
    CheckContext,
    EventFlowSettings,
    ScanPage,
)
from services.control_tower.domain.reconciliation import Drift
from services.kit.catalog import EventType, load_catalog

PAGE_SIZE = 500
UNSENT = "unsent:"

# Each consuming kit service's durable consumer (`<service>-<purpose>`, its `PURPOSE` in
# entrypoints/consumers.py): the name its inbox records applied events under.
CONSUMER_DURABLES = {
    "order": "order-events",
    "inventory": "inventory-order-events",
    "shipment": "shipment-events",
    "billing": "billing-events",
}

_PUBLISHED_BY = re.compile(r" published by (?P<producer>[a-z][a-z-]*) at ")
# Reemit's reason: at most 500 characters (its contract).
_REASON_MAX = 500


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _seconds(stamp: Timestamp) -> float:
    return stamp.seconds + stamp.nanos / 1e9


def _stamp(moment: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(moment * 1e9))
    return stamp


def lost_evidence(
    event: ledger_pb2.PublishedEvent, producer: str, missing_at: Sequence[str]
) -> str:
    if event.HasField("send_time"):
        sent = _iso(_seconds(event.send_time))
    else:
        sent = f"{_iso(_seconds(event.create_time))}, re-emitted and not sent again yet"
    return (
        f"{event.subject} {event.event_id} published by {producer} at {sent}, "
        f"not applied by {', '.join(missing_at)}"
    )


class EventFlow:
    name = "event_flow"
    # The findings are between two services; the producer is named in each evidence (it is the
    # one whose Reemit corrects a lost event, or whose relay holds unsent rows).
    owner = "control-tower"
    action = "EventLedgerService.Reemit"
    default_interval_seconds = 600.0

    async def scan(self, ctx: CheckContext) -> AsyncIterator[ScanPage]:
        ledgers = ctx.ledgers
        if not ledgers:
            raise RuntimeError(f"{self.name} needs the services' event ledgers")
        settings = ctx.event_flow
        now = ctx.clock()
        since, created_before = now - settings.lookback_seconds, now - settings.grace_seconds
        producers = sorted({event.producer for event in load_catalog()} & set(ledgers))
        for producer in producers:
            yield await self._unsent(ledgers[producer], producer, now, settings)
            for event_type in load_catalog():
                if event_type.producer != producer:
                    continue
                # Kit consumers the tower can ask (the gateway and the tower itself: not judged).
                consumers = [
                    c for c in event_type.consumers if c in CONSUMER_DURABLES and c in ledgers
                ]
                if not consumers:
                    continue
                async for page in self._published(
                    ledgers, producer, event_type, consumers, since, now, created_before
                ):
                    yield page

    async def _unsent(
        self,
        ledger: ledger_grpc.EventLedgerServiceAsyncStub,
        producer: str,
        now: float,
        settings: EventFlowSettings,
    ) -> ScanPage:
        """One drift when the producer's outbox holds rows unsent past the cut-off."""
        cutoff = settings.unsent_minutes * 60
        try:
            answer = await ledger.ListUnsent(
                ledger_pb2.ListUnsentRequest(before=_stamp(now - cutoff), page_size=1)
            )
        except grpc.aio.AioRpcError as error:
            raise OwnerRefused.of(f"{producer}.ListUnsent", error) from error
        if answer.total == 0:
            return ScanPage(0)
        oldest = answer.events[0] if answer.events else None
        evidence = (
            f"{answer.total} outbox rows of {producer} unsent for more than "
            f"{settings.unsent_minutes:g} min"
        )
        if oldest is not None:
            age = now - _seconds(oldest.create_time)
            evidence += (
                f", the oldest {oldest.subject} {oldest.event_id} written at "
                f"{_iso(_seconds(oldest.create_time))} ({age / 60:.0f} min ago)"
            )
        return ScanPage(int(answer.total), [Drift(f"{UNSENT}{producer}", "", evidence)])

    async def _published(
        self,
        ledgers: dict[str, ledger_grpc.EventLedgerServiceAsyncStub],
        producer: str,
        event_type: EventType,
        consumers: list[str],
        since: float,
        until: float,
        created_before: float,
    ) -> AsyncIterator[ScanPage]:
        token = ""
        while True:
            try:
                page = await ledgers[producer].ListPublished(
                    ledger_pb2.ListPublishedRequest(
                        subject=event_type.subject,
                        since=_stamp(since),
                        until=_stamp(until),
                        page_size=PAGE_SIZE,
                        page_token=token,
                        include_requeued=True,
                    )
                )
            except grpc.aio.AioRpcError as error:
                raise OwnerRefused.of(f"{producer}.ListPublished", error) from error
            # By id: a row re-sent while the ledger read may be in both lists.
            by_id = {event.event_id: event for event in (*page.requeued, *page.events)}
            events = [e for e in by_id.values() if _seconds(e.create_time) < created_before]
            if events:
                yield await self._judge(
                    ledgers, producer, events, _seconds(page.retained_since), consumers
                )
            token = page.next_page_token
            if not token:
                return

    @staticmethod
    async def _judge(
        ledgers: dict[str, ledger_grpc.EventLedgerServiceAsyncStub],
        producer: str,
        events: Sequence[ledger_pb2.PublishedEvent],
        outbox_since: float,
        consumers: list[str],
    ) -> ScanPage:
        """The page's lost events: one drift each, naming the consumers that did not apply it."""
        ids = [event.event_id for event in events]
        missing_at: dict[str, list[str]] = {}
        for consumer in consumers:
            durable = CONSUMER_DURABLES[consumer]
            try:
                answer = await ledgers[consumer].CheckApplied(
                    ledger_pb2.CheckAppliedRequest(
                        consumer=durable, event_ids=ids, subject=events[0].subject
                    )
                )
            except grpc.aio.AioRpcError as error:
                raise OwnerRefused.of(f"{consumer}.CheckApplied", error) from error
            if not answer.handles_subject:
                continue  # declared in the catalog, not handled (yet): nothing to lose
            applied = set(answer.applied_event_ids)
            judged_from = max(outbox_since, _seconds(answer.retained_since))
            for event in events:
                # Sent before a side's retention horizon: its absence proves nothing. (A row
                # waiting to be re-sent is in the outbox, and goes out now.)
                sent = _seconds(event.send_time) if event.HasField("send_time") else None
                if event.event_id in applied or (sent is not None and sent < judged_from):
                    continue
                missing_at.setdefault(event.event_id, []).append(durable)
        drifts = [
            Drift(event.event_id, "", lost_evidence(event, producer, missing_at[event.event_id]))
            for event in events
            if event.event_id in missing_at
        ]
        return ScanPage(len(ids), drifts)

    async def correct(self, ctx: CheckContext, drift: Drift) -> str:
        if drift.subject_id.startswith(UNSENT):
            raise OwnerRefused(
                self.action,
                "NOT_CORRECTABLE",
                f"{drift.evidence}: re-emitting does not help a relay that does not publish; "
                f"fix {drift.subject_id.removeprefix(UNSENT)}'s relay, the finding closes once "
                "its outbox drains",
            )
        found = _PUBLISHED_BY.search(drift.evidence)
        if found is None:
            raise OwnerRefused(
                self.action, "NOT_CORRECTABLE", f"no producer named in evidence {drift.evidence!r}"
            )
        producer = found["producer"]
        ledger = ctx.ledgers.get(producer)
        if ledger is None:
            raise OwnerRefused(
                self.action, "UNIMPLEMENTED", f"the tower has no event ledger target for {producer}"
            )
        reason = f"reconciliation {self.name}: {drift.evidence}"[:_REASON_MAX].rstrip()
        try:
            answer = await ledger.Reemit(
                ledger_pb2.ReemitRequest(event_id=drift.subject_id, reason=reason)
            )
        except grpc.aio.AioRpcError as error:
            raise OwnerRefused.of(f"{producer}.Reemit", error) from error
        if not answer.reemitted:
            return f"event {drift.subject_id} still waiting in {producer}'s outbox"
        return f"event {drift.subject_id} re-emitted by {producer}"
