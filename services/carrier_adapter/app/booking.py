"""Book a label exactly once per idempotency key, whatever the callers do; void a label.

The carrier call runs in a task of its own, not in the RPC's: a caller whose deadline expires
(or who disconnects) cancels only its wait, so the booking still completes and is stored, and the
caller's retry gets that label back. Callers with the same key in this process join the running
task; callers in another replica see the `booking` row and poll the store until it is booked.
Return labels book the same way; a key names one label, so a replay asking for the other kind
(outbound vs return) is refused instead of answered with a label the caller did not ask for.

"Shop and book" (`shop_and_book`, BookLabel with `shop`): the carriers quote, the cheapest
quote that meets the level is chosen, and that quote is stored in the same unit of work that
claims the key, so one call and one transaction replace GetRates' call and transaction. A key
claimed before keeps the quote it was claimed with: a replay answers the first label, and a
takeover books the first quote, whatever the carriers quote now.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection

from services.carrier_adapter.adapters.carriers.connectors import ConnectorRegistry
from services.carrier_adapter.adapters.reliability.clock import Clock
from services.carrier_adapter.adapters.store import labels as label_store
from services.carrier_adapter.adapters.store.labels import Claim, ClaimOutcome, StoredLabel
from services.carrier_adapter.adapters.store.quotes import StoredQuote, get_quote, save_quotes
from services.carrier_adapter.app.rating import CarrierFailure, quote_carriers
from services.carrier_adapter.domain.connector import CarrierConnector
from services.carrier_adapter.domain.errors import maybe_committed
from services.carrier_adapter.domain.model import (
    BookedLabel,
    CancelRequest,
    LabelFormat,
    LabelRequest,
    RateRequest,
    ServiceLevel,
)
from services.carrier_adapter.domain.rating import choose_quote
from services.kit.db import Database, database_unavailable
from services.kit.errors import AlreadyExists, Conflict, FailedPrecondition, NotFound, Unavailable
from services.kit.ids import resource_id

__all__ = ["BookingSettings", "LabelBooker", "Shopping", "cancel_label"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# The longest pause between attempts to store a booking's outcome while the database is down.
STORE_RETRY_MAX_DELAY_SECONDS = 2.0

# Builds the carrier request from the quote the caller booked (its service code).
RequestBuilder = Callable[[StoredQuote], LabelRequest]


class BookingSettings:
    def __init__(
        self,
        *,
        lease: timedelta = timedelta(seconds=30),
        wait: timedelta = timedelta(seconds=30),
        poll_interval_seconds: float = 0.1,
    ) -> None:
        # lease: how long a claim stays someone's without renewal before another replica may
        # take it over. A running booking renews it every third of it, so only a dead
        # replica's claim goes stale, however long the carrier takes.
        self.lease = lease
        # wait: how long a caller waits for another caller's booking before getting ABORTED.
        self.wait = wait
        self.poll_interval_seconds = poll_interval_seconds


@dataclass(frozen=True)
class Shopping:
    """What a booking that shops needs: whom to ask for quotes and how to choose among them."""

    request: RateRequest
    service_level: ServiceLevel | None  # None: standard
    carrier_preference: Sequence[str]
    # How long the chosen quote stays bookable when its carrier states no expiry.
    quote_ttl: timedelta


class LabelBooker:
    def __init__(
        self,
        db: Database,
        registry: ConnectorRegistry,
        clock: Clock,
        settings: BookingSettings | None = None,
    ) -> None:
        self._db = db
        self._registry = registry
        self._clock = clock
        self._settings = settings or BookingSettings()
        self._running: dict[str, asyncio.Task[StoredLabel]] = {}

    async def book(
        self,
        key: str,
        rate_id: str,
        label_format: LabelFormat,
        is_return: bool,
        build: RequestBuilder,
        request_record: bytes,
    ) -> tuple[StoredLabel, bool]:
        """The label for `key` and whether it was booked by an earlier call (replayed)."""
        stored, replayed = await self._book_or_replay(
            key, rate_id, label_format, is_return, build, request_record
        )
        if replayed and stored.label is not None and stored.label.is_return != is_return:
            raise _key_reused(stored.label_id, stored.label)
        return stored, replayed

    async def _book_or_replay(
        self,
        key: str,
        rate_id: str,
        label_format: LabelFormat,
        is_return: bool,
        build: RequestBuilder,
        request_record: bytes,
    ) -> tuple[StoredLabel, bool]:
        running = self._running.get(key)
        if running is not None:
            return await asyncio.shield(running), True
        quote, connector, claim = await self._db.run(
            self._quote_and_claim,
            key,
            rate_id,
            label_format,
            is_return,
            request_record,
            self._clock.now(),
        )
        return await self._settle(key, quote, connector, claim, build)

    async def shop_and_book(
        self,
        key: str,
        shopping: Shopping,
        label_format: LabelFormat,
        is_return: bool,
        build: RequestBuilder,
        request_record: bytes,
    ) -> tuple[StoredLabel, bool, StoredQuote | None]:
        """Quote, choose, then book like `book`: the label for `key`, whether an earlier call
        booked it (replayed), and the quote it was booked at (None when no longer stored).
        No quote meeting the level books nothing: Unavailable when a carrier that gave none may
        answer later, else FailedPrecondition (NO_RATE_MEETS_SERVICE_LEVEL)."""
        running = self._running.get(key)
        if running is not None:
            stored, replayed, quote = await asyncio.shield(running), True, None
        else:
            stored, replayed, quote = await self._shop_or_replay(
                key, shopping, label_format, is_return, build, request_record
            )
        if replayed and stored.label is not None and stored.label.is_return != is_return:
            raise _key_reused(stored.label_id, stored.label)
        if quote is None or quote.rate_id != stored.rate_id:
            # A replay answered outside the claim's unit of work (rare): read its quote.
            quote = await self._db.run(get_quote, stored.rate_id)
        return stored, replayed, quote

    async def _shop_or_replay(
        self,
        key: str,
        shopping: Shopping,
        label_format: LabelFormat,
        is_return: bool,
        build: RequestBuilder,
        request_record: bytes,
    ) -> tuple[StoredLabel, bool, StoredQuote | None]:
        found = await quote_carriers(self._registry, shopping.request, is_return=is_return)
        chosen = choose_quote(found.quotes, shopping.service_level, shopping.carrier_preference)
        if chosen is None:
            stored, replayed = await self._replay_without_quote(key, shopping, found.failures)
            return stored, replayed, None
        now = self._clock.now()
        # A carrier that states no expiry gets ours, as GetRates' stored quotes do.
        expires_at = chosen.expires_at or now + shopping.quote_ttl
        offered = StoredQuote(
            resource_id("rte"), replace(chosen, expires_at=expires_at), expires_at
        )
        quote, connector, claim = await self._db.run(
            self._store_quote_and_claim, key, offered, label_format, is_return, request_record, now
        )
        stored, replayed = await self._settle(key, quote, connector, claim, build)
        return stored, replayed, quote

    async def _replay_without_quote(
        self, key: str, shopping: Shopping, failures: Sequence[CarrierFailure]
    ) -> tuple[StoredLabel, bool]:
        """No quote meets the level now; a label the key already has (or is getting) is still
        its answer, so a replay never turns into a refusal."""
        stored = await self._db.run(label_store.get_label_by_key, key)
        if stored is not None and stored.status is label_store.LabelStatus.BOOKED:
            return stored, True
        if stored is not None and stored.status is label_store.LabelStatus.UNKNOWN:
            raise _outcome_unknown(key)
        if stored is not None:
            return await self._wait_for(key), True
        retryable = [f for f in failures if f.retryable]
        if retryable:
            reasons = "; ".join(f"{f.carrier}: {f.message}" for f in retryable)
            raise Unavailable(f"no rate yet: {reasons}", reason="NO_RATE_YET")
        level = (shopping.service_level or ServiceLevel.STANDARD).value
        raise FailedPrecondition(
            f"no carrier rate meets service level {level}", reason="NO_RATE_MEETS_SERVICE_LEVEL"
        )

    async def _settle(
        self,
        key: str,
        quote: StoredQuote | None,
        connector: CarrierConnector | None,
        claim: Claim,
        build: RequestBuilder,
    ) -> tuple[StoredLabel, bool]:
        """Act on a claim: replay, wait, refuse, or book `quote` with `connector`."""
        if claim.outcome is ClaimOutcome.BOOKED:
            return claim.stored, True
        if claim.outcome is ClaimOutcome.UNKNOWN:
            raise _outcome_unknown(key)
        if claim.outcome is ClaimOutcome.IN_FLIGHT:
            return await self._wait_for(key), True
        # A replayed key books at its first quote even if that has expired since: the expiry
        # check belongs to new bookings only. A first quote no longer stored has expired.
        if quote is None or connector is None or quote.expires_at <= self._clock.now():
            await self._db.run(label_store.release_booking, key, claim.stored.claim_token, False)
            rate_id = claim.stored.rate_id
            raise FailedPrecondition(
                f"rate {rate_id} expired; get new rates", reason="RATE_EXPIRED"
            )
        task = asyncio.create_task(
            self._book(connector, key, claim.stored.claim_token, build(quote)),
            name=f"book-label-{key}",
        )
        self._running[key] = task
        task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task), False

    def _quote_and_claim(
        self,
        conn: Connection,
        key: str,
        rate_id: str,
        label_format: LabelFormat,
        is_return: bool,
        request_record: bytes,
        now: datetime,
    ) -> tuple[StoredQuote, CarrierConnector, Claim]:
        """The quote, the connector of its account and the claim on `key`: one unit of work."""
        quote = get_quote(conn, rate_id)
        if quote is None:
            raise NotFound(
                f"rate {rate_id} does not exist", resource_type="rate", resource_name=rate_id
            )
        connector = self._connector(quote.quote.carrier_account_id)
        claim = label_store.claim_booking(
            conn,
            key,
            quote,
            label_format,
            is_return,
            request_record,
            now,
            self._settings.lease,
            self._may_take_over,
        )
        return quote, connector, claim

    def _store_quote_and_claim(
        self,
        conn: Connection,
        key: str,
        offered: StoredQuote,
        label_format: LabelFormat,
        is_return: bool,
        request_record: bytes,
        now: datetime,
    ) -> tuple[StoredQuote | None, CarrierConnector | None, Claim]:
        """The chosen quote stored and the claim on `key`: one unit of work. A key claimed
        before keeps its first quote (and its carrier account); that quote comes back instead,
        None when it is no longer stored."""
        save_quotes(conn, [(offered.rate_id, offered.quote)], now, offered.expires_at)
        claim = label_store.claim_booking(
            conn,
            key,
            offered,
            label_format,
            is_return,
            request_record,
            now,
            self._settings.lease,
            self._may_take_over,
        )
        quote: StoredQuote | None = offered
        if claim.stored.rate_id != offered.rate_id:
            quote = get_quote(conn, claim.stored.rate_id)
        if claim.outcome is not ClaimOutcome.CLAIMED or quote is None:
            return quote, None, claim
        # Looked up here so an account no longer configured rolls a takeover back.
        return quote, self._connector(quote.quote.carrier_account_id), claim

    def _may_take_over(self, account_id: str) -> bool:
        """A stale claim may be taken over only when the carrier that may have booked it (the
        claim's account) dedupes bookings by our key."""
        try:
            return self._registry.get(account_id).capabilities.idempotent_booking
        except KeyError:
            return False

    async def drain(self) -> None:
        """Let running bookings finish and store their labels (called at shutdown)."""
        if self._running:
            # asyncio.wait, not gather: if this wait is cut short, the bookings must not be.
            await asyncio.wait(list(self._running.values()))

    async def _book(
        self, connector: CarrierConnector, key: str, token: str, request: LabelRequest
    ) -> StoredLabel:
        keeping = asyncio.create_task(self._keep_claim(key, token), name=f"keep-claim-{key}")
        try:
            return await self._book_holding(connector, key, token, request)
        finally:
            keeping.cancel()

    async def _keep_claim(self, key: str, token: str) -> None:
        """Renew the claim on `key` while this booking runs (a slow carrier, a database that
        is back after an outage), so that no other replica takes over a live booking."""
        interval = self._settings.lease.total_seconds() / 3
        while True:
            # Real time, not the injected clock: a renewal is a safeguard, not part of what a
            # booking does step by step (tests that drive the clock never see it).
            await asyncio.sleep(interval)
            try:
                held = await self._db.run(label_store.renew_booking, key, token, self._clock.now())
            except Exception as error:
                if not database_unavailable(error):
                    log.exception("renewing the claim on %s failed", key)
                continue  # the next renewal may still come within the lease
            if not held:
                return  # taken over or finished: storing under our token will tell

    async def _book_holding(
        self, connector: CarrierConnector, key: str, token: str, request: LabelRequest
    ) -> StoredLabel:
        try:
            label = await connector.book_label(request)
        except BaseException as error:
            # Only a carrier that dedupes by our key may be asked again after a maybe-booked
            # failure; for the others the key is parked as unknown for reconciliation.
            # A cancellation (shutdown past its grace) may also have hit after the request left.
            sent = maybe_committed(error) or isinstance(error, asyncio.CancelledError)
            unknown = sent and not connector.capabilities.idempotent_booking
            await self._store_outcome(label_store.release_booking, key, token, unknown)
            raise
        stored = await self._store_outcome(
            label_store.complete_booking, key, token, label, self._clock.now()
        )
        if stored is None:
            raise Conflict(f"the booking for {key} was taken over; retry to get its label")
        return stored

    async def _store_outcome(self, fn: Callable[..., T], key: str, *args: Any) -> T:
        """Store a booking's outcome, waiting out a database that is unavailable (restarting,
        failing over): the carrier has answered, and a label bought but not stored would hold
        the key in flight until the lease ends, then cost a takeover. Retried until the lease
        the claim holds would end; storing is guarded by the claim's token, so a retry that
        comes after a takeover changes nothing."""
        deadline = self._clock.monotonic() + self._settings.lease.total_seconds()
        delay = self._settings.poll_interval_seconds
        while True:
            try:
                return await self._db.run(fn, key, *args)
            except Exception as error:
                if not database_unavailable(error) or self._clock.monotonic() + delay > deadline:
                    raise
                log.warning("storing the booking of %s waits for the database: %s", key, error)
            await self._clock.sleep(delay)
            delay = min(delay * 2, STORE_RETRY_MAX_DELAY_SECONDS)

    async def _wait_for(self, key: str) -> StoredLabel:
        """Wait for another caller's booking of `key` (here or in another replica)."""
        deadline = self._clock.monotonic() + self._settings.wait.total_seconds()
        while self._clock.monotonic() < deadline:
            running = self._running.get(key)
            if running is not None:
                return await asyncio.shield(running)
            stored = await self._db.run(label_store.get_label_by_key, key)
            if stored is None:
                break  # the other booking failed and gave the key up: the caller may retry
            if stored.status is label_store.LabelStatus.BOOKED:
                return stored
            if stored.status is label_store.LabelStatus.UNKNOWN:
                raise _outcome_unknown(key)
            await self._clock.sleep(self._settings.poll_interval_seconds)
        raise Conflict(
            f"a booking with idempotency key {key} is in progress; retry shortly",
            reason="BOOKING_IN_PROGRESS",
        )

    def _connector(self, account_id: str) -> CarrierConnector:
        try:
            return self._registry.get(account_id)
        except KeyError:
            raise FailedPrecondition(
                f"carrier account {account_id} is no longer configured; get new rates",
                reason="CARRIER_ACCOUNT_UNKNOWN",
            ) from None

    def _finished(self, key: str, task: asyncio.Task[StoredLabel]) -> None:
        self._running.pop(key, None)
        if not task.cancelled() and task.exception() is not None:
            # Retrieved here so a booking nobody waits for any more still gets logged.
            log.warning("label booking %s failed: %s", key, task.exception())


def _key_reused(label_id: str, booked: BookedLabel) -> AlreadyExists:
    kind = "a return" if booked.is_return else "an outbound"
    return AlreadyExists(
        f"idempotency key {booked.idempotency_key} already booked {kind} label {label_id}",
        resource_type="label",
        resource_name=label_id,
        reason="IDEMPOTENCY_KEY_REUSED",
    )


def _outcome_unknown(key: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"the carrier may have booked {key} before failing and cannot be asked again safely; "
        "reconcile with the carrier",
        reason="LABEL_OUTCOME_UNKNOWN",
    )


async def cancel_label(
    db: Database, registry: ConnectorRegistry, clock: Clock, label_id: str
) -> StoredLabel:
    """Void a label at its carrier (once) and mark it cancelled; NotFound for an unknown id."""
    stored = await db.run(label_store.get_label, label_id)
    if stored is None or stored.label is None:
        raise NotFound(
            f"label {label_id} does not exist", resource_type="label", resource_name=label_id
        )
    label = stored.label
    if not stored.cancelled:
        connector = registry.get(stored.carrier_account_id)
        await connector.cancel_label(
            CancelRequest(label.tracking_number, label.service_code, label.carrier_shipment_id)
        )
        await db.run(label_store.mark_cancelled, stored.label_id, clock.now())
    return stored
