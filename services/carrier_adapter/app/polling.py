"""The tracking poller: carriers that do not push are asked for their scans on a timer.

Each sweep enrolls newly booked labels of the polled accounts (`ConnectorRegistry.polled`), loads
their PollStates and lets `domain.polling.due_for_poll` pick what is due. Each pick is leased (so
no two replicas poll one label at once), tracked through the account's guarded connector (the
deadline, retries and circuit breaker the Track RPC goes through), and its answer goes to
`app.tracking.record_tracking`, the webhook path: the same dedupe, TrackingUpdated and
CarrierCodeUnmapped events. New scans and the poll's outcome commit in one unit of work.

The lease is `adapters.store.polls.claim_poll`, a compare-and-set on one row the domain picked
(its lease has lapsed AND nobody polled it since it was read), writing an owner token that the
outcome must match. That is not the kit's `lease_due` ("lease whatever a due-rows query
returns"): which rows are due is decided in Python by `domain.polling.due_for_poll` between the
read and the claim.

`poll_now` (PollTracking) polls one parcel at once, outside the schedule and its lease: the same
guarded Track and the same `record_tracking` of its answer; dedupe makes a concurrent sweep's
copy of the same scans harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from services.carrier_adapter.adapters.carriers.connectors import ConnectorRegistry
from services.carrier_adapter.adapters.metrics import CarrierMetrics
from services.carrier_adapter.adapters.reliability.clock import Clock
from services.carrier_adapter.adapters.store import labels as label_store
from services.carrier_adapter.adapters.store.polls import (
    PolledLabel,
    claim_poll,
    enroll_labels,
    finish_poll,
    pollable,
    release_poll,
)
from services.carrier_adapter.app.tracking import IngestResult, record_tracking
from services.carrier_adapter.domain.connector import CarrierConnector
from services.carrier_adapter.domain.errors import CarrierError, CircuitOpen
from services.carrier_adapter.domain.model import TrackingResult, WebhookBatch
from services.carrier_adapter.domain.polling import PollPolicy, due_for_poll
from services.kit.db import Database
from services.kit.errors import NotFound
from services.kit.ids import resource_id
from services.kit.request_context import (
    correlation_scope,
    current_correlation_id,
    new_correlation_id,
)
from services.kit.uow import UnitOfWork, UnitsOfWork

__all__ = ["PollSettings", "TrackingPoller", "poll_now", "record_poll", "record_poll_failure"]

log = logging.getLogger(__name__)

Outcome = Literal["news", "no_news", "failed", "circuit_open", "taken"]


@dataclass(frozen=True)
class PollSettings:
    policy: PollPolicy
    # How long a replica keeps a label it polls; must exceed a Track call with its retries.
    lease: timedelta = timedelta(minutes=2)
    # Most rows one sweep reads from the store, so a huge backlog cannot exhaust memory.
    max_candidates: int = 20_000


class TrackingPoller:
    def __init__(
        self,
        db: Database,
        registry: ConnectorRegistry,
        clock: Clock,
        settings: PollSettings,
        metrics: CarrierMetrics | None = None,
    ) -> None:
        self._db = db
        self._units = UnitsOfWork(db)
        self._registry = registry
        self._clock = clock
        self._settings = settings
        self._metrics = metrics

    async def sweep(self, stopping: Callable[[], bool] | None = None) -> int:
        """Poll whatever is due now; returns how many labels were polled."""
        accounts = {c.account_id: c for c in self._registry.polled()}
        polled = 0
        if accounts:
            polled = await self._sweep(accounts, stopping)
        if self._metrics is not None:
            self._metrics.poll_sweeps.inc()
        return polled

    async def _sweep(
        self, accounts: dict[str, CarrierConnector], stopping: Callable[[], bool] | None
    ) -> int:
        policy = self._settings.policy
        now = self._clock.now()
        account_ids = sorted(accounts)
        await self._db.run(enroll_labels, account_ids, now - policy.give_up_after)
        candidates = await self._db.run(
            pollable,
            account_ids,
            now,
            policy.give_up_after,
            now - policy.shortest_interval(),
            self._settings.max_candidates,
        )
        by_state = {id(candidate.state): candidate for candidate in candidates}
        picks: dict[str, list[PolledLabel]] = defaultdict(list)
        for state in due_for_poll([c.state for c in candidates], now, policy):
            pick = by_state[id(state)]
            picks[pick.carrier_account_id].append(pick)
        # Accounts in parallel (each has its own breaker and rate limits), labels one by one.
        counts = await asyncio.gather(
            *(
                self._poll_account(accounts[account_id], labels, stopping)
                for account_id, labels in picks.items()
            )
        )
        return sum(counts)

    async def _poll_account(
        self,
        connector: CarrierConnector,
        picks: list[PolledLabel],
        stopping: Callable[[], bool] | None,
    ) -> int:
        polled = 0
        for pick in picks:
            if stopping is not None and stopping():
                break
            outcome = await self._poll_one(connector, pick)
            if self._metrics is not None and outcome != "taken":
                self._metrics.polls.labels(connector.carrier, outcome).inc()
            if outcome == "circuit_open":
                break  # the rest of this account's picks would be refused the same way
            polled += outcome in ("news", "no_news", "failed")
        return polled

    async def _poll_one(self, connector: CarrierConnector, pick: PolledLabel) -> Outcome:
        token = resource_id("clm")  # this poll's claim on the row
        now = self._clock.now()
        claimed = await self._db.run(
            claim_poll, pick.label_id, pick.polled_version, token, now, now + self._settings.lease
        )
        if not claimed:
            return "taken"  # another replica is polling it, or just did
        number = pick.state.tracking_number
        with correlation_scope(new_correlation_id()) as correlation_id:
            try:
                result = await connector.track(number)
            except CircuitOpen:
                await self._db.run(release_poll, pick.label_id, token)
                return "circuit_open"
            except Exception as error:
                if isinstance(error, CarrierError):
                    log.warning("polling %s %s failed: %s", connector.carrier, number, error)
                else:
                    log.exception("polling %s %s failed", connector.carrier, number)
                await self._units.run(
                    record_poll_failure, pick.label_id, token, self._clock.now(), _describe(error)
                )
                return "failed"
            ingested = await self._units.run(
                record_poll, pick.label_id, token, result, self._clock.now(), correlation_id
            )
        return "news" if ingested.accepted else "no_news"


async def poll_now(
    units: UnitsOfWork,
    registry: ConnectorRegistry,
    clock: Clock,
    carrier: str,
    tracking_number: str,
) -> IngestResult:
    """Poll one parcel now (PollTracking), as a sweep polls a pick: the account that booked its
    label tracks it through its guarded connector, and the answer is recorded by
    `record_tracking` (the same dedupe and TrackingUpdated events). Carrier failures propagate
    (a carrier that is down is UNAVAILABLE). The poll schedule is left alone: a poll now is
    extra, and the schedule's next poll just finds nothing new."""
    stored = await units.db.run(label_store.get_label_by_tracking, tracking_number)
    if stored is None or stored.carrier != carrier:
        raise NotFound(
            f"carrier-adapter booked no {carrier} label with tracking number {tracking_number}",
            resource_type="tracking_number",
            resource_name=f"{carrier}/{tracking_number}",
        )
    try:
        connector = registry.get(stored.carrier_account_id)
    except KeyError:
        raise NotFound(
            f"the {carrier} account {stored.carrier_account_id} that booked {tracking_number} "
            "is no longer configured",
            resource_type="carrier_account",
            resource_name=stored.carrier_account_id,
        ) from None
    result = await connector.track(tracking_number)
    batch = _poll_batch(stored.label_id, resource_id("clm"), result)
    correlation_id = current_correlation_id() or new_correlation_id()
    return await units.run(record_tracking, batch, clock.now(), correlation_id)


def _poll_batch(label_id: str, token: str, result: TrackingResult) -> WebhookBatch:
    """A poll's answer as a push of one parcel (a sweep's and PollTracking's alike)."""
    return WebhookBatch(result.carrier, f"poll:{label_id}:{token}", (result,))


def record_poll(
    uow: UnitOfWork,
    label_id: str,
    token: str,
    result: TrackingResult,
    polled_at: datetime,
    correlation_id: str,
) -> IngestResult:
    """A poll's answer, recorded as if the carrier had pushed it, and the poll's outcome.

    The scans go in even if the lease lapsed meanwhile: dedupe makes a second copy harmless.
    """
    ingested = record_tracking(uow, _poll_batch(label_id, token, result), polled_at, correlation_id)
    latest = result.scans[-1].status if result.scans else None
    finish_poll(uow.conn, label_id, token, polled_at, status=latest, news=ingested.accepted > 0)
    return ingested


def record_poll_failure(
    uow: UnitOfWork, label_id: str, token: str, polled_at: datetime, error: str
) -> None:
    """A failed poll, counted as a poll: the next try waits one interval, so a failing number
    costs no more calls than a healthy one, and give_up_after still ends it."""
    finish_poll(uow.conn, label_id, token, polled_at, error=error)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
